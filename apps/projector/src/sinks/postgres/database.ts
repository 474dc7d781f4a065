import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { builtInMigrations, ReadModel } from '../../read-models';
import { SinkUnavailableError } from '../sink';

/** Connection errors and server states after which the write's outcome must be re-read from the database. */
const unavailableCodes = new Set([
  '57P01',
  '57P02',
  '57P03',
  '53300',
  '08000',
  '08003',
  '08006',
  '08001',
  '08004',
]);

export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string; driverError?: unknown };
  if (e?.driverError) return isConnectionError(e.driverError);
  if (typeof e?.code === 'string') {
    if (unavailableCodes.has(e.code)) return true;
    if (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EHOSTUNREACH|ECONNABORTED)$/.test(e.code))
      return true;
  }
  return /Connection terminated|connection is closed|Query runner already released|Client has encountered a connection error|not queryable|timeout exceeded when trying to connect|Connection lost/i.test(
    e?.message ?? '',
  );
}

export function unavailable(what: string, err: unknown): SinkUnavailableError {
  if (err instanceof SinkUnavailableError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new SinkUnavailableError(`postgres: ${what}: ${msg}`, err);
}

export interface DatabaseOptions {
  url: string;
  schema: string;
  models: ReadModel[];
  /** 1 for the embedded PGlite socket (it serves one connection at a time). */
  poolSize: number;
  /** Take per-model advisory locks on a dedicated connection (off for the embedded database: one process owns it). */
  advisoryLocks: boolean;
  connectTimeoutMs: number;
}

/**
 * One connected database: a TypeORM DataSource (pooled, migrations run at open) plus, for a shared server,
 * a dedicated session holding one advisory lock per read model, so that a second projector on the same
 * database waits until this one is gone.
 */
export class Database {
  private lockClient: Client | null = null;
  private lockLost: Error | null = null;

  private constructor(
    readonly dataSource: DataSource,
    private readonly opts: DatabaseOptions,
  ) {}

  static async open(opts: DatabaseOptions): Promise<Database> {
    const migrations = [...builtInMigrations, ...opts.models.flatMap((m) => m.migrations)];
    const ds = new DataSource({
      type: 'postgres',
      url: opts.url,
      schema: opts.schema,
      entities: opts.models.map((m) => m.entity),
      migrations,
      migrationsTableName: 'migrations',
      migrationsTransactionMode: 'each',
      synchronize: false,
      logging: false,
      poolSize: opts.poolSize,
      connectTimeoutMS: opts.connectTimeoutMs,
      extra: { idleTimeoutMillis: 0, application_name: 'projector' },
    });
    try {
      await ds.initialize();
    } catch (err) {
      throw unavailable('connect', err);
    }
    const db = new Database(ds, opts);
    try {
      await ds.query(`CREATE SCHEMA IF NOT EXISTS "${opts.schema}"`);
      if (opts.advisoryLocks) await db.lockModels();
      await ds.runMigrations({ transaction: 'each' });
    } catch (err) {
      await db.close();
      if (err instanceof SinkUnavailableError) throw err;
      if (isConnectionError(err)) throw unavailable('migrations', err);
      throw err;
    }
    return db;
  }

  /** Throws if the session holding the advisory locks ended (a restarted server): reopen to take them again. */
  checkLocks(): void {
    if (this.lockLost) throw unavailable('advisory lock session', this.lockLost);
  }

  private async lockModels(): Promise<void> {
    const client = new Client({
      connectionString: this.opts.url,
      connectionTimeoutMillis: this.opts.connectTimeoutMs,
      application_name: 'projector-lock',
    });
    client.on('error', (err) => (this.lockLost ??= err));
    client.on('end', () => (this.lockLost ??= new Error('advisory lock connection ended')));
    try {
      await client.connect();
    } catch (err) {
      throw unavailable('advisory lock connection', err);
    }
    this.lockClient = client;
    const held: string[] = [];
    for (const m of this.opts.models) {
      const key = `projector:${this.opts.schema}:${m.name}`;
      const r = await client.query('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok', [key]);
      if (!r.rows[0].ok) {
        throw new SinkUnavailableError(
          `postgres: read model ${m.name} is written by another projector (advisory lock "${key}" is held); waiting for it to go`,
        );
      }
      held.push(key);
    }
  }

  async close(): Promise<void> {
    const c = this.lockClient;
    this.lockClient = null;
    if (c) await c.end().catch(() => undefined);
    if (this.dataSource.isInitialized) await this.dataSource.destroy().catch(() => undefined);
  }
}
