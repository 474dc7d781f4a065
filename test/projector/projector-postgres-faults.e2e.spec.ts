import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import { EventStoreClient } from '@app/client';
import { waitFor } from '@app/consensus/testing';
import { ClusterHarness } from '../support/cluster-harness';
import { E2EClient, sleep } from '../support/e2e-client';
import { createTestDatabase, query, TestDatabase } from '../support/pg-database';
import { PrivatePostgres } from '../support/private-postgres';
import { ProjectorProcess, ProjectorStatus } from '../support/projector-harness';
import {
  appendMixed,
  builtInModels,
  dbCheckpoints,
  expectReadModelsExact,
  fixturesDir,
  http,
  metric,
  MixedEvents,
  projectorEnv,
  startCluster,
  storeClient,
  waitCheckpoints,
  Writer,
} from './projector-support';

/**
 * The projector's Postgres sink under faults (PROJECTOR.md "Poison events and faults"), against a real
 * 3-node cluster and real projector processes: a Postgres server stopped and crashed mid-load, a rebuild
 * while appends continue, poison events under both policies, and a second projector on the same database.
 * Every case ends with the exact comparison with a replay of `$all`.
 */

jest.setTimeout(240_000);

let h: ClusterHarness;
let client: EventStoreClient;
let es: E2EClient;
const procs: ProjectorProcess[] = [];
const dbs: TestDatabase[] = [];
let pg: PrivatePostgres | null = null;

async function startProjector(name: string, env: Record<string, string>): Promise<ProjectorProcess> {
  const p = await ProjectorProcess.start({ name, env });
  procs.push(p);
  return p;
}

async function freshDatabase(prefix: string, adminUrl?: string): Promise<TestDatabase> {
  const db = await createTestDatabase(prefix, adminUrl);
  dbs.push(db);
  return db;
}

function model(s: ProjectorStatus, name: string) {
  const m = s.readModels.find((r) => r.name === name);
  if (!m) throw new Error(`no read model ${name} in /status: ${JSON.stringify(s.readModels)}`);
  return m as ProjectorStatus['readModels'][number] & {
    stopped?: { position: number; eventId: string; error: string };
    rebuild?: { position: number; eventsPerSecond: number; etaSeconds: number | null; state: string };
  };
}

beforeAll(async () => {
  h = await startCluster();
  client = storeClient(h);
  es = new E2EClient(() => h.urls());
}, 120_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => p.destroy().catch(() => undefined)));
  client?.close();
  await h?.cleanup();
  await Promise.all(dbs.map((d) => d.drop().catch(() => undefined)));
  await pg?.destroy();
});

it('Postgres stopped (fast), then killed -9, during a load: paused and not ready while down, then resumes exactly', async () => {
  pg = await PrivatePostgres.start();
  const db = await freshDatabase('proj_pgdown', pg.url());
  const p = await startProjector(
    'projector-pgdown',
    projectorEnv(h, db.url, { PROJECTOR_BATCH_EVENTS: '50' }),
  );
  await p.waitReady();
  const w = new Writer(client, new MixedEvents('pgdown', 40), { concurrency: 2 }).start();
  try {
    for (const mode of ['fast', 'kill -9'] as const) {
      await w.waitAppended(100);
      if (mode === 'fast') await pg.stop('fast');
      else await pg.kill9();
      const down = await p.waitFor(
        `postgres paused after ${mode}`,
        (s) => s.sinks.postgres.state === 'paused',
        {
          timeoutMs: 30_000,
        },
      );
      expect(String(down.sinks.postgres.error)).toMatch(/postgres/);
      const ready = await http(p, '/ready');
      expect(ready.status).toBe(503);
      expect(ready.body.message).toMatch(/postgres paused/);
      expect(metric((await http(p, '/metrics')).text, 'projector_sink_up', 'sink="postgres"')).toBe(0);
      expect((await http(p, '/read-models/orders')).status).toBe(503);
      // still down: the appends go on, the projector waits
      await w.waitAppended(50);
      expect((await p.status()).sinks.postgres.state).toBe('paused');
      const pausedAt = (await p.status()).sinks.postgres.position;
      await pg.start();
      await p.waitFor(
        `postgres running again and past ${pausedAt} after ${mode}`,
        (s) => s.sinks.postgres.state === 'running' && s.sinks.postgres.position > pausedAt,
        { timeoutMs: 60_000 },
      );
      await p.waitReady(30_000);
    }
    await w.waitAppended(50);
  } finally {
    await w.stop();
  }
  await expectReadModelsExact(client, es, db.url, p);
  // one log line per state change, not one per retry
  const pausedLines = p.logs.filter((l) => /postgres: paused/.test(l)).length;
  expect(pausedLines).toBeGreaterThanOrEqual(2);
  expect(pausedLines).toBeLessThan(20);
});

it('rebuild of orders while appends continue: rebuilding with progress in /status, queries answer meanwhile, then equal to a full replay', async () => {
  await appendMixed(client, new MixedEvents('rbhist', 150), 5000);
  const db = await freshDatabase('proj_rebuild');
  const p = await startProjector(
    'projector-rebuild',
    // a swap reads at most 200 events itself: the shadow has to catch up batch by batch first
    projectorEnv(h, db.url, { PROJECTOR_BATCH_EVENTS: '100', PROJECTOR_REBUILD_SWAP_EVENTS: '200' }),
  );
  await p.waitReady();
  await waitCheckpoints(db.url, await client.headPosition(), builtInModels, 90_000, p);
  // damage the live table: only a replay from position 0 repairs it
  const victim = (await query(db.url, 'SELECT order_id FROM projector.orders ORDER BY order_id LIMIT 1'))[0]
    .order_id;
  await query(db.url, `UPDATE projector.orders SET status = 'tampered', total = 12345 WHERE order_id = $1`, [
    victim,
  ]);

  const w = new Writer(client, new MixedEvents('rebuild', 40), { concurrency: 2 }).start();
  const seen: { state: string; rebuild?: unknown }[] = [];
  const queryStatuses: number[] = [];
  try {
    await w.waitAppended(50);
    const r = await p.waitFor('ready', (s) => s.sinks.postgres.state === 'running');
    expect(r).toBeTruthy();
    const post = await fetch(`${p.url}/read-models/orders/rebuild`, {
      method: 'POST',
      signal: AbortSignal.timeout(10_000),
    });
    expect(post.status).toBe(202);
    expect(await post.json()).toMatchObject({ name: 'orders', state: 'rebuilding' });
    await waitFor(
      'the rebuild of orders to be swapped in',
      async () => {
        const [s, q] = await Promise.all([p.status(), http(p, '/read-models/orders?limit=5')]);
        const m = model(s, 'orders');
        seen.push({ state: m.state, rebuild: m.rebuild });
        queryStatuses.push(q.status);
        if (q.status === 200) expect(q.body.items.length).toBe(5);
        return (
          m.state === 'running' &&
          p.logs.some((l) => /rebuild of orders caught up at position \d+: swapped in/.test(l))
        );
      },
      { timeoutMs: 120_000, intervalMs: 20 },
    );
    await w.waitAppended(50);
  } finally {
    await w.stop();
  }
  const rebuilding = seen.filter((s) => s.state === 'rebuilding');
  expect(rebuilding.length).toBeGreaterThan(0);
  for (const s of rebuilding)
    expect(s.rebuild).toMatchObject({
      state: 'rebuilding',
      position: expect.any(Number),
      eventsPerSecond: expect.any(Number),
    });
  expect(queryStatuses.every((s) => s === 200)).toBe(true);
  const { head } = await expectReadModelsExact(client, es, db.url, p);
  const s = await p.waitFor('orders running at the head', (st) => model(st, 'orders').position === head);
  expect(model(s, 'orders').state).toBe('running');
  // the shadow table and its checkpoint are gone
  const cps = await dbCheckpoints(db.url);
  expect(Object.keys(cps).sort()).toEqual([...builtInModels].sort());
  const tables = await query(
    db.url,
    `SELECT tablename FROM pg_tables WHERE schemaname = 'projector' ORDER BY tablename`,
  );
  expect(tables.map((t) => t.tablename)).toEqual([
    'checkpoints',
    'dead_letters',
    'migrations',
    'orders',
    'stream_summaries',
  ]);
});

it('poison events: the stop model stops before the event (position and error in /status), the skip model records a dead letter and goes on', async () => {
  const db = await freshDatabase('proj_poison');
  const p = await startProjector(
    'projector-poison',
    projectorEnv(h, db.url, { PROJECTOR_READ_MODELS: path.join(fixturesDir, 'poison-models.js') }),
  );
  await p.waitReady();
  const stream = `poison-${randomUUID().slice(0, 8)}`;
  const ids = { a: randomUUID(), b: randomUUID(), poison: randomUUID(), c: randomUUID(), d: randomUUID() };
  await client.append(stream, [
    { id: ids.a, type: 'A' },
    { id: ids.b, type: 'B' },
  ]);
  const poison = await client.append(stream, [{ id: ids.poison, type: 'Poison' }]);
  const poisonAt = poison.firstPosition;
  await appendMixed(client, new MixedEvents('poison', 10), 30);
  const last = await client.append(stream, [
    { id: ids.c, type: 'C' },
    { id: ids.d, type: 'D' },
  ]);
  await appendMixed(client, new MixedEvents('poison2', 10), 30);

  const check = async (extra: { types: string[]; lastPosition: number }) => {
    const { head } = await expectReadModelsExact(client, es, db.url, p);
    await waitCheckpoints(db.url, head, ['poison_skip'], 30_000, p);
    const s = await p.waitFor('poison_stop stopped and the others at the head', (st) => {
      return (
        model(st, 'poison_stop').state === 'stopped' &&
        ['stream_summaries', 'orders', 'poison_skip'].every((n) => model(st, n).position === head)
      );
    });
    const stop = model(s, 'poison_stop');
    expect(stop.position).toBe(poisonAt - 1);
    expect(stop.stopped).toEqual({
      position: poisonAt,
      eventId: ids.poison,
      error: `refusing Poison event ${ids.poison} at position ${poisonAt}`,
    });
    for (const n of ['stream_summaries', 'orders', 'poison_skip']) expect(model(s, n).state).toBe('running');
    expect(s.sinks.postgres.state).toBe('running');
    expect((await http(p, '/ready')).status).toBe(200);

    const cps = await dbCheckpoints(db.url);
    expect(cps.poison_stop).toBe(poisonAt - 1);
    expect(cps.poison_skip).toBe(head);
    const letters = await query(
      db.url,
      'SELECT name, position, event_id, error FROM projector.dead_letters ORDER BY id',
    );
    expect(letters).toEqual([
      {
        name: 'poison_skip',
        position: String(poisonAt),
        event_id: ids.poison,
        error: `refusing Poison event ${ids.poison} at position ${poisonAt}`,
      },
    ]);
    const rows = (t: string) =>
      query(
        db.url,
        `SELECT stream_id, event_count, last_position, types FROM projector.${t} ORDER BY stream_id`,
      );
    expect(await rows('poison_stop')).toEqual([
      { stream_id: stream, event_count: 2, last_position: String(poisonAt - 1), types: ['A', 'B'] },
    ]);
    expect(await rows('poison_skip')).toEqual([
      {
        stream_id: stream,
        event_count: 2 + extra.types.length,
        last_position: String(extra.lastPosition),
        types: ['A', 'B', ...extra.types],
      },
    ]);
    // the REST routes serve user models like the built-in ones
    const one = await http(p, `/read-models/poison_skip/${stream}`);
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ streamId: stream, eventCount: 2 + extra.types.length });
  };
  await check({ types: ['C', 'D'], lastPosition: last.lastPosition });

  // kill -9 and start again: the stop model meets the event again and stops again; nothing is applied twice
  await p.kill9();
  await p.restart();
  await p.waitReady();
  const e = await client.append(stream, [{ type: 'E' }]);
  await appendMixed(client, new MixedEvents('poison3', 10), 20);
  await check({ types: ['C', 'D', 'E'], lastPosition: e.lastPosition });
});

it('a second projector on the same database waits on the advisory lock, writes nothing, and takes over after kill -9 of the first', async () => {
  const db = await freshDatabase('proj_two');
  const env = projectorEnv(h, db.url, { PROJECTOR_BATCH_EVENTS: '50' });
  const first = await startProjector('projector-first', env);
  await first.waitReady();
  const second = await startProjector('projector-second', env);
  await second.waitHealthy();
  const w = new Writer(client, new MixedEvents('two', 40), { concurrency: 2 }).start();
  let resumedAfter = -2;
  let firstAt = -1;
  try {
    const waiting = await second.waitFor(
      'the second projector to wait on the advisory lock',
      (s) => s.sinks.postgres.state === 'paused' && /advisory lock/.test(String(s.sinks.postgres.error)),
      { timeoutMs: 30_000 },
    );
    expect(waiting.sinks.postgres.position).toBe(-1);
    await w.waitAppended(150);
    firstAt = (await first.status()).sinks.postgres.position;
    await sleep(500);
    expect((await first.status()).sinks.postgres.position).toBeGreaterThan(firstAt - 1);
    // still waiting, nothing written by it
    const s2 = await second.status();
    expect(s2.sinks.postgres.state).toBe('paused');
    expect(s2.sinks.postgres.position).toBe(-1);
    expect((await http(second, '/ready')).status).toBe(503);
    expect(
      metric((await http(second, '/metrics')).text, 'projector_events_total', 'sink="postgres"') ?? 0,
    ).toBe(0);
    expect(second.logs.some((l) => /writing after position/.test(l))).toBe(false);

    await first.kill9();
    const took = await second.waitFor(
      'the second projector to take over',
      (s) => s.sinks.postgres.state === 'running' && s.sinks.postgres.position > firstAt,
      { timeoutMs: 60_000 },
    );
    expect(took.sinks.postgres.error ?? null).toBeNull();
    const line = second.logs.find((l) => /postgres: writing after position (-?\d+)/.test(l))!;
    resumedAfter = Number(/writing after position (-?\d+)/.exec(line)![1]);
    await w.waitAppended(100);
  } finally {
    await w.stop();
  }
  const { head } = await expectReadModelsExact(client, es, db.url, second);
  // it resumed from the first one's checkpoint: every event after it written once, none before it again
  expect(resumedAfter).toBeGreaterThanOrEqual(firstAt);
  await waitFor('the second projector metrics at the head', async () => {
    const t = (await http(second, '/metrics')).text;
    return metric(t, 'projector_position', 'sink="postgres"') === head;
  });
  expect(metric((await http(second, '/metrics')).text, 'projector_events_total', 'sink="postgres"')).toBe(
    head - resumedAfter,
  );
});
