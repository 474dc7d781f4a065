import * as fs from 'node:fs';
import { Client } from 'pg';
import { createTestDatabase, databaseExists, query } from './pg-database';
import { PrivatePostgres, readPostmasterPid } from './private-postgres';

/** Self-test of the Postgres support the projector's e2e suites stand on. */

jest.setTimeout(60_000);

describe('PrivatePostgres', () => {
  let pg: PrivatePostgres | null = null;

  afterAll(async () => {
    await pg?.destroy();
  });

  it('keeps committed rows across a fast stop, and across kill -9 (crash recovery)', async () => {
    pg = await PrivatePostgres.start();
    const url = pg.url();
    expect(url).toBe(`postgres://postgres@127.0.0.1:${pg.port}/postgres`);
    await query(url, 'CREATE TABLE t (id int primary key, v text)');
    await query(url, 'INSERT INTO t VALUES ($1, $2)', [1, 'one']);

    await pg.stop('fast');
    expect(pg.running()).toBe(false);
    await expect(query(url, 'SELECT 1', [], { timeoutMs: 2000 })).rejects.toThrow();

    await pg.start();
    expect(await query(url, 'SELECT v FROM t WHERE id = 1')).toEqual([{ v: 'one' }]);

    // Committed (fsync'd WAL), never checkpointed: only WAL replay brings it back after the crash.
    await query(url, 'INSERT INTO t VALUES ($1, $2)', [2, 'two']);
    const pid = readPostmasterPid(pg.dataDir);
    expect(pid).toBe(pg.pid);
    await pg.kill9();
    await expect(query(url, 'SELECT 1', [], { timeoutMs: 2000 })).rejects.toThrow();

    await pg.start();
    expect(pg.pid).not.toBe(pid);
    expect(await query(url, 'SELECT id, v FROM t ORDER BY id')).toEqual([
      { id: 1, v: 'one' },
      { id: 2, v: 'two' },
    ]);
    expect(pg.logTail(200)).toMatch(/database system was interrupted|not properly shut down/);

    const root = pg.root;
    await pg.destroy();
    expect(fs.existsSync(root)).toBe(false);
    await expect(query(url, 'SELECT 1', [], { timeoutMs: 2000 })).rejects.toThrow();
  });
});

describe('createTestDatabase (shared server)', () => {
  it('creates a usable database and drops it, even with a connection still open', async () => {
    const db = await createTestDatabase('pg-support selftest');
    expect(db.name).toMatch(/^pg_support_selftest_\d+_/);
    await query(db.url, 'CREATE TABLE x (n int)');
    await query(db.url, 'INSERT INTO x SELECT generate_series(1, 3)');
    expect(await query(db.url, 'SELECT count(*)::int AS n FROM x')).toEqual([{ n: 3 }]);

    // An idle connection left open must not block the drop.
    const held = new Client({ connectionString: db.url });
    held.on('error', () => undefined);
    await held.connect();
    try {
      expect(await databaseExists(db.name)).toBe(true);
      await db.drop();
      expect(await databaseExists(db.name)).toBe(false);
      await db.drop(); // twice is fine
    } finally {
      await held.end().catch(() => undefined);
    }
    await expect(query(db.url, 'SELECT 1', [], { timeoutMs: 2000 })).rejects.toThrow(/does not exist/);
  });
});
