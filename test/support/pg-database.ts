import { randomBytes } from 'node:crypto';
import { Client, QueryResultRow } from 'pg';

/**
 * Throw-away databases on the shared Postgres server (127.0.0.1:5432, user postgres, trust auth) for
 * the projector's e2e suites: one per test file or case, so suites running in parallel never see each
 * other's read models. `TEST_PG_ADMIN_URL` points elsewhere if needed (it names the maintenance
 * database used to create and drop).
 */

export const sharedAdminUrl = process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const connectTimeoutMs = 10_000;
const queryTimeoutMsDefault = 30_000;

export interface TestDatabase {
  name: string;
  url: string;
  /** Ends every connection to it (pg_terminate_backend) and drops it. Safe to call twice. */
  drop(): Promise<void>;
}

export interface QueryOptions {
  /** Bound of connect + query together. */
  timeoutMs?: number;
}

/** One connection, one statement, closed again. Returns the rows. */
export async function query<R extends QueryResultRow = any>(
  url: string,
  sql: string,
  params: unknown[] = [],
  opts: QueryOptions = {},
): Promise<R[]> {
  const timeoutMs = opts.timeoutMs ?? queryTimeoutMsDefault;
  const client = new Client({
    connectionString: url,
    connectionTimeoutMillis: Math.min(connectTimeoutMs, timeoutMs),
    query_timeout: timeoutMs,
  });
  // A server that goes away mid-query emits 'error' on the client; the query's rejection reports it.
  client.on('error', () => undefined);
  try {
    await client.connect();
    const res = await client.query<R>(sql, params);
    return res.rows;
  } catch (err) {
    throw new Error(`query on ${redact(url)} failed (${sql.slice(0, 80)}): ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** `url` with its database replaced by `db`. */
export function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(db)}`;
  return u.toString();
}

/** A fresh, uniquely named database; its name starts with `prefix` (lower-cased, [a-z0-9_] only). */
export async function createTestDatabase(prefix: string, adminUrl = sharedAdminUrl): Promise<TestDatabase> {
  const clean =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9_]/g, '_')
      .slice(0, 30) || 'test';
  const name = `${clean}_${process.pid}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  await query(adminUrl, `CREATE DATABASE ${quoteIdent(name)}`);
  let dropped = false;
  return {
    name,
    url: withDatabase(adminUrl, name),
    async drop(): Promise<void> {
      if (dropped) return;
      await dropDatabase(name, adminUrl);
      dropped = true;
    },
  };
}

/** Terminates the database's connections and drops it (no error if it is already gone). */
export async function dropDatabase(name: string, adminUrl = sharedAdminUrl): Promise<void> {
  await query(
    adminUrl,
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [name],
  );
  // FORCE (PG 13+) covers a client that reconnected between the two statements.
  await query(adminUrl, `DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
}

export async function databaseExists(name: string, adminUrl = sharedAdminUrl): Promise<boolean> {
  const rows = await query(adminUrl, 'SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return rows.length > 0;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<bad url>';
  }
}
