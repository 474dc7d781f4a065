import type { EventEnvelope } from '@app/client';
import type { ReadModel, Row } from '../../read-models';
import { Sink, SinkUnavailableError } from '../sink';
import { Database, DatabaseOptions, unavailable } from './database';
import type { DeadLetter } from './fold';
import { ModelTable } from './table';
import { loadCheckpoints, Target, writeBatch } from './writer';

export const rebuildSuffix = '__rebuild';
export const rebuildCheckpointSuffix = '#rebuild';

export interface ModelInfo {
  name: string;
  /** The live model's checkpoint, −1 before any event. */
  position: number;
  stopped: DeadLetter | null;
}

/**
 * The Postgres sink: every live read model, folded batch by batch in one transaction with their checkpoints.
 * The lane calls `open` and `write`; the REST routes call `page`/`get`; rebuilds write beside the live
 * tables through `writeShadow` and swap in through `swap`, all serialized with the live writes by one
 * mutex (one transaction at a time: the embedded database serves a single connection anyway).
 */
export class PostgresSink implements Sink {
  readonly name = 'postgres';
  private db: Database | null = null;
  private tables = new Map<string, ModelTable>();
  private live = new Map<string, Target>();
  private tail: Promise<unknown> = Promise.resolve();
  /** The last position the live lane handed to `write` (or resumes after): every model is complete up to it, or stopped. */
  private delivered = -1;

  constructor(
    private readonly opts: DatabaseOptions,
    private readonly log: { log(m: string): void; warn(m: string): void },
  ) {}

  get models(): readonly ReadModel[] {
    return this.opts.models;
  }

  get schema(): string {
    return this.opts.schema;
  }

  /** Runs `f` after every earlier exclusive section (writes, swaps) has settled. */
  exclusive<T>(f: () => Promise<T>): Promise<T> {
    const run = this.tail.then(f, f);
    this.tail = run.catch(() => undefined);
    return run;
  }

  async open(): Promise<number> {
    await this.close();
    const db = await Database.open(this.opts);
    this.db = db;
    try {
      this.tables = new Map(
        this.opts.models.map((m) => [m.name, new ModelTable(m, this.opts.schema, db.dataSource)]),
      );
      const qr = db.dataSource.createQueryRunner();
      try {
        const cps = await loadCheckpoints(
          qr,
          this.opts.schema,
          this.opts.models.map((m) => m.name),
        );
        const previous = this.live;
        this.live = new Map(
          this.opts.models.map((m) => [
            m.name,
            {
              table: this.tables.get(m.name)!,
              tableName: this.tables.get(m.name)!.table,
              checkpointName: m.name,
              checkpoint: cps.get(m.name) ?? -1,
              // a model stopped by a poison event stays stopped across reconnects (not across restarts:
              // a restarted projector meets the event again and stops again, unless the code was fixed)
              stopped: previous.get(m.name)?.stopped ?? null,
            },
          ]),
        );
      } finally {
        await qr.release();
      }
    } catch (err) {
      await this.close();
      throw unavailable('open', err);
    }
    const running = [...this.live.values()].filter((t) => !t.stopped).map((t) => t.checkpoint);
    const all = [...this.live.values()].map((t) => t.checkpoint);
    this.delivered = running.length > 0 ? Math.min(...running) : all.length > 0 ? Math.max(...all) : -1;
    return this.delivered;
  }

  write(events: readonly EventEnvelope[]): Promise<void> {
    return this.exclusive(async () => {
      const db = this.requireDb();
      db.checkLocks();
      const qr = db.dataSource.createQueryRunner();
      try {
        const outcomes = await writeBatch(qr, this.opts.schema, [...this.live.values()], events);
        for (const { target, result } of outcomes) {
          target.checkpoint = result.position;
          if (result.stopped) {
            target.stopped = result.stopped;
            this.log.warn(
              `read model ${target.checkpointName} stopped at position ${result.stopped.position} (event ${result.stopped.eventId}): ${result.stopped.error}`,
            );
          }
        }
      } catch (err) {
        // a lost connection, a server restart, or a row the database refused: nothing of the batch is
        // assumed written; the lane reopens (re-reading checkpoints) and retries, showing the error
        throw unavailable('write', err);
      } finally {
        await qr.release().catch(() => undefined);
      }
      if (events.length > 0) this.delivered = events[events.length - 1].position;
    });
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = null;
    if (db) await db.close();
  }

  modelInfo(name: string): ModelInfo | null {
    const t = this.live.get(name);
    if (!this.opts.models.some((m) => m.name === name)) return null;
    return {
      name,
      position: t?.checkpoint ?? -1,
      stopped: t?.stopped ?? null,
    };
  }

  table(name: string): ModelTable | null {
    return this.tables.get(name) ?? null;
  }

  isOpen(): boolean {
    return this.db !== null;
  }

  private requireDb(): Database {
    if (!this.db) throw new SinkUnavailableError('postgres: not connected');
    return this.db;
  }

  // ---- reads for the REST routes (outside the write mutex: plain pooled queries) ----

  async page(
    name: string,
    after: string | null,
    limit: number,
  ): Promise<{ items: Row[]; next: string | null }> {
    const t = this.tables.get(name);
    const db = this.requireDb();
    if (!t) throw new Error(`unknown read model ${name}`);
    const k = `"${t.key.db}"`;
    const where = after === null ? '' : `WHERE ${k} > $2::${t.key.sqlType}`;
    const params: unknown[] = [limit + 1];
    if (after !== null) params.push(after);
    const rows = (await db.dataSource.query(
      `SELECT * FROM ${t.qualified()} ${where} ORDER BY ${k} LIMIT $1`,
      params,
    )) as Record<string, unknown>[];
    const items = rows.slice(0, limit).map((r) => t.fromDb(r));
    const next = rows.length > limit ? t.keyOfRow(items[items.length - 1]) : null;
    return { items, next };
  }

  async get(name: string, id: string): Promise<Row | null> {
    const t = this.tables.get(name);
    const db = this.requireDb();
    if (!t) throw new Error(`unknown read model ${name}`);
    const rows = (await db.dataSource.query(
      `SELECT * FROM ${t.qualified()} WHERE "${t.key.db}" = $1::${t.key.sqlType}`,
      [id],
    )) as Record<string, unknown>[];
    return rows.length > 0 ? t.fromDb(rows[0]) : null;
  }

  // ---- rebuilds: a shadow table beside the live one, swapped in under the write mutex ----

  /** Creates (or keeps, when resuming) the shadow table and its checkpoint; returns the shadow's position. */
  prepareShadow(name: string, fresh: boolean): Promise<number> {
    return this.exclusive(async () => {
      const t = this.tables.get(name)!;
      const db = this.requireDb();
      const shadow = t.table + rebuildSuffix;
      const cpName = name + rebuildCheckpointSuffix;
      await db.dataSource.transaction(async (m) => {
        if (fresh) {
          await m.query(`DROP TABLE IF EXISTS ${t.qualified(shadow)}`);
          await m.query(`DELETE FROM "${this.opts.schema}".checkpoints WHERE name = $1`, [cpName]);
          await m.query(`DELETE FROM "${this.opts.schema}".dead_letters WHERE name = $1`, [cpName]);
        }
        await m.query(
          `CREATE TABLE IF NOT EXISTS ${t.qualified(shadow)} (LIKE ${t.qualified()} INCLUDING ALL)`,
        );
        await m.query(
          `INSERT INTO "${this.opts.schema}".checkpoints (name, position) VALUES ($1, -1) ON CONFLICT (name) DO NOTHING`,
          [cpName],
        );
      });
      const rows = (await db.dataSource.query(
        `SELECT position FROM "${this.opts.schema}".checkpoints WHERE name = $1`,
        [cpName],
      )) as { position: string }[];
      return Number(rows[0].position);
    });
  }

  /** Names of models with a rebuild left unfinished by an earlier run (their shadow checkpoint exists). */
  async pendingRebuilds(): Promise<string[]> {
    const db = this.requireDb();
    const rows = (await db.dataSource.query(
      `SELECT name FROM "${this.opts.schema}".checkpoints WHERE name LIKE '%' || $1`,
      [rebuildCheckpointSuffix],
    )) as { name: string }[];
    const names = rows.map((r) => r.name.slice(0, -rebuildCheckpointSuffix.length));
    return names.filter((n) => this.tables.has(n));
  }

  /** One batch into the shadow table; returns the shadow's new position and whether a poison event stopped it. */
  writeShadow(
    name: string,
    checkpoint: number,
    events: readonly EventEnvelope[],
  ): Promise<{ position: number; stopped: DeadLetter | null }> {
    return this.exclusive(async () => {
      const db = this.requireDb();
      const t = this.tables.get(name)!;
      const target: Target = {
        table: t,
        tableName: t.table + rebuildSuffix,
        checkpointName: name + rebuildCheckpointSuffix,
        checkpoint,
        stopped: null,
      };
      const qr = db.dataSource.createQueryRunner();
      try {
        const [o] = await writeBatch(qr, this.opts.schema, [target], events);
        return { position: o.result.position, stopped: o.result.stopped };
      } catch (err) {
        // a lost connection, a server restart, or a row the database refused: nothing of the batch is
        // assumed written; the lane reopens (re-reading checkpoints) and retries, showing the error
        throw unavailable('rebuild write', err);
      } finally {
        await qr.release().catch(() => undefined);
      }
    });
  }

  /**
   * Swaps the shadow in if it has reached the live model: `catchUp(from, to)` supplies the events between the
   * shadow's position and the live checkpoint, if the live model is ahead. Returns false when the shadow is
   * too far behind (the rebuild goes on).
   */
  swap(
    name: string,
    shadowPosition: number,
    catchUp: (after: number, upTo: number) => Promise<EventEnvelope[] | null>,
  ): Promise<{ swapped: boolean; position: number }> {
    return this.exclusive(async () => {
      const db = this.requireDb();
      db.checkLocks();
      const live = this.live.get(name)!;
      const t = live.table;
      let position = shadowPosition;
      let extra: EventEnvelope[] = [];
      // The live lane has delivered up to `delivered` (a stopped model's checkpoint lags behind it): the
      // swapped-in model must cover every event the lane will not deliver again.
      const upTo = Math.max(live.checkpoint, this.delivered);
      if (upTo > shadowPosition) {
        const events = await catchUp(shadowPosition, upTo);
        if (events === null) return { swapped: false, position: shadowPosition };
        extra = events;
      }
      const shadow = t.table + rebuildSuffix;
      const cpName = name + rebuildCheckpointSuffix;
      const qr = db.dataSource.createQueryRunner();
      try {
        if (extra.length > 0) {
          const [o] = await writeBatch(
            qr,
            this.opts.schema,
            [
              {
                table: t,
                tableName: shadow,
                checkpointName: cpName,
                checkpoint: shadowPosition,
                stopped: null,
              },
            ],
            extra,
          );
          if (o.result.stopped) return { swapped: false, position: o.result.position };
          position = o.result.position;
        }
        await qr.startTransaction();
        const old = t.table + '__old';
        await qr.query(`DROP TABLE IF EXISTS ${t.qualified(old)}`);
        await qr.query(`ALTER TABLE ${t.qualified()} RENAME TO "${old}"`);
        await qr.query(`ALTER TABLE ${t.qualified(shadow)} RENAME TO "${t.table}"`);
        await qr.query(`DROP TABLE ${t.qualified(old)}`);
        await qr.query(`UPDATE "${this.opts.schema}".checkpoints SET position = $2 WHERE name = $1`, [
          name,
          position,
        ]);
        await qr.query(`DELETE FROM "${this.opts.schema}".checkpoints WHERE name = $1`, [cpName]);
        await qr.query(`DELETE FROM "${this.opts.schema}".dead_letters WHERE name = $1`, [name]);
        await qr.query(`UPDATE "${this.opts.schema}".dead_letters SET name = $1 WHERE name = $2`, [
          name,
          cpName,
        ]);
        await qr.commitTransaction();
      } catch (err) {
        if (qr.isTransactionActive) await qr.rollbackTransaction().catch(() => undefined);
        // a lost connection, a server restart, or a row the database refused: nothing of the batch is
        // assumed written; the lane reopens (re-reading checkpoints) and retries, showing the error
        throw unavailable('swap', err);
      } finally {
        await qr.release().catch(() => undefined);
      }
      live.checkpoint = position;
      live.stopped = null;
      this.delivered = Math.max(this.delivered, position);
      return { swapped: true, position };
    });
  }
}
