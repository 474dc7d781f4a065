import * as path from 'node:path';
import { EventStoreClient } from '@app/client';
import { ClusterHarness } from '../support/cluster-harness';
import { E2EClient, sleep } from '../support/e2e-client';
import { createTestDatabase, TestDatabase } from '../support/pg-database';
import { ProjectorProcess, runProjectorExpectingExit } from '../support/projector-harness';
import {
  appendMixed,
  builtInModels,
  dbCheckpoints,
  dbOrders,
  dbSummaries,
  expectReadModelsExact,
  http,
  metric,
  MixedEvents,
  projectorEnv,
  randomBetween,
  startCluster,
  storeClient,
  Writer,
} from './projector-support';

/**
 * The projector (PROJECTOR.md) against a real 3-node cluster, the shared Postgres and real projector
 * processes: the read models equal a replay of `$all` computed here (and the event store's own `orders`
 * projection), through the REST routes as well; across kill -9 of the projector mid-batches and of the
 * event-store nodes it reads from; bad configuration exits 2 naming the variable.
 */

jest.setTimeout(240_000);

let h: ClusterHarness;
let client: EventStoreClient;
let es: E2EClient;
const procs: ProjectorProcess[] = [];
const dbs: TestDatabase[] = [];

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function freshDatabase(prefix: string): Promise<TestDatabase> {
  const db = await createTestDatabase(prefix);
  dbs.push(db);
  return db;
}

async function startProjector(name: string, env: Record<string, string>): Promise<ProjectorProcess> {
  const p = await ProjectorProcess.start({ name, env });
  procs.push(p);
  return p;
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
});

describe('bad configuration', () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ['PROJECTOR_BATCH_EVENTS=0', { PROJECTOR_BATCH_EVENTS: '0' }, /PROJECTOR_BATCH_EVENTS/],
    ['EVENT_STORE_URLS=ftp://x', { EVENT_STORE_URLS: 'ftp://x' }, /EVENT_STORE_URLS/],
    ['PROJECTOR_SINKS=kafka without KAFKA_BROKERS', { PROJECTOR_SINKS: 'kafka' }, /PROJECTOR_SINKS/],
    [
      'PROJECTOR_READ_MODELS naming a missing file',
      { PROJECTOR_READ_MODELS: path.join(__dirname, 'fixtures', 'no-such-models.js') },
      /PROJECTOR_READ_MODELS/,
    ],
  ];
  it('exits with code 2 and a message naming the variable', async () => {
    const results = await Promise.all(cases.map(([, env]) => runProjectorExpectingExit(env)));
    results.forEach((r, i) => {
      const [what, , variable] = cases[i];
      const out = r.stdout + r.stderr;
      expect({ what, code: r.code, names: variable.test(out) }).toEqual({ what, code: 2, names: true });
    });
  });
});

it('events appended through the API end up exactly in stream_summaries and orders; REST routes, /status, /metrics, /ready', async () => {
  const db = await freshDatabase('proj_api');
  const gen = new MixedEvents('api', 30);
  await appendMixed(client, gen, 400);
  const p = await startProjector('projector-api', projectorEnv(h, db.url));
  await p.waitReady();
  await expectReadModelsExact(client, es, db.url, p);
  // and what is appended while it runs (the live tail of the subscription)
  await appendMixed(client, gen, 150);
  const { head, all } = await expectReadModelsExact(client, es, db.url, p);
  expect(all.some((e) => e.type === 'ItemRemoved')).toBe(true);
  expect(all.some((e) => e.type === 'OrderNoted')).toBe(true);

  // /status
  const st = await p.waitFor('/status at the head', (s) => s.head === head && s.sinks.postgres.lag === 0);
  expect(st.sinks.postgres).toMatchObject({ state: 'running', position: head, lag: 0 });
  expect(h.urls()).toContain(st.sinks.postgres.source);
  expect(st.sinks.kafka.state).toBe('off');
  expect(st.readModels.map((m) => [m.name, m.state, m.position])).toEqual(
    builtInModels.map((m) => [m, 'running', head]),
  );
  expect((await http(p, '/ready')).status).toBe(200);
  expect((await http(p, '/health')).status).toBe(200);

  // /metrics
  const text = (await http(p, '/metrics')).text;
  expect(metric(text, 'projector_position', 'sink="postgres"')).toBe(head);
  // one process that started at -1: every event written once
  expect(metric(text, 'projector_events_total', 'sink="postgres"')).toBe(head + 1);
  expect(metric(text, 'projector_sink_up', 'sink="postgres"')).toBe(1);
  expect(metric(text, 'projector_lag_events', 'sink="postgres"')).toBe(0);
  expect(metric(text, 'projector_batch_duration_seconds_count', 'sink="postgres"')).toBeGreaterThan(0);
  expect(metric(text, 'projector_read_model_position', 'model="orders"')).toBe(head);

  // GET /read-models
  const list = await http(p, '/read-models');
  expect(list.status).toBe(200);
  expect(list.body.map((m: { name: string }) => m.name)).toEqual(builtInModels);

  // paging walks every row exactly once, in key order, equal to the table
  const walk = async (model: string, limit: number) => {
    const items: Record<string, unknown>[] = [];
    let after: string | null = null;
    for (let page = 0; page < 1000; page++) {
      const r = await http(
        p,
        `/read-models/${model}?limit=${limit}${after === null ? '' : `&after=${encodeURIComponent(after)}`}`,
      );
      expect(r.status).toBe(200);
      expect(r.body.items.length).toBeLessThanOrEqual(limit);
      items.push(...r.body.items);
      if (r.body.next === null) {
        // every row once (the order is the database's collation: compared as sets below)
        const keys = items.map((it) => String(it.streamId ?? it.orderId));
        expect(new Set(keys).size).toBe(keys.length);
        return items.sort((a, b) => cmp(String(a.streamId ?? a.orderId), String(b.streamId ?? b.orderId)));
      }
      after = r.body.next;
    }
    throw new Error(`paging ${model} did not end`);
  };
  const summaries = await dbSummaries(db.url);
  const pagedSummaries = await walk('stream_summaries', 7);
  expect(pagedSummaries).toEqual(
    summaries.map((r) => ({
      streamId: r.stream_id,
      eventCount: r.event_count,
      lastRevision: r.last_revision,
      firstPosition: r.first_position,
      lastPosition: r.last_position,
      lastEventType: r.last_event_type,
      updatedAt: r.updated_at,
    })),
  );
  const orders = await dbOrders(db.url);
  expect(orders.length).toBeGreaterThan(10);
  const asApi = (o: (typeof orders)[number]) => ({
    orderId: o.order_id,
    status: o.status,
    customerId: o.customer_id,
    itemCount: o.item_count,
    total: o.total,
    items: o.items,
    updatedAt: o.updated_at,
  });
  expect(await walk('orders', 5)).toEqual(orders.map(asApi));
  // a limit larger than the table: one page, next null
  const one = await http(p, '/read-models/orders?limit=1000');
  expect(one.body.items).toHaveLength(orders.length);
  expect(one.body.next).toBeNull();

  // one row, 404s, 400s
  const some = orders[Math.floor(orders.length / 2)];
  const row = await http(p, `/read-models/orders/${encodeURIComponent(some.order_id)}`);
  expect(row.status).toBe(200);
  expect(row.body).toEqual(asApi(some));
  expect((await http(p, '/read-models/no-such-model')).status).toBe(404);
  expect((await http(p, '/read-models/no-such-model/x')).status).toBe(404);
  const missing = await http(p, '/read-models/orders/no-such-order');
  expect(missing.status).toBe(404);
  expect(missing.body.error).toBe('row_not_found');
  for (const q of ['limit=0', 'limit=abc', 'limit=-1', 'limit=1001', 'after=']) {
    const r = await http(p, `/read-models/orders?${q}`);
    expect({ q, status: r.status, error: r.body?.error }).toEqual({
      q,
      status: 400,
      error: 'invalid_request',
    });
  }
});

it('kill -9 of the projector in the middle of batches, 4 times, while a writer appends: nothing lost, nothing twice', async () => {
  // history, so that every restart has hundreds of 50-event batches to write
  await appendMixed(client, new MixedEvents('hist', 60), 4000);
  const db = await freshDatabase('proj_kill');
  const p = await startProjector('projector-kill', projectorEnv(h, db.url, { PROJECTOR_BATCH_EVENTS: '50' }));
  const w = new Writer(client, new MixedEvents('kill', 40), { concurrency: 2 }).start();
  const atKill: { checkpoint: number; head: number }[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      await p.waitHealthy();
      await sleep(randomBetween(200, 1500));
      const head = await client.headPosition();
      await p.kill9();
      const cps = await dbCheckpoints(db.url);
      atKill.push({ checkpoint: cps.stream_summaries ?? -1, head });
      await p.restart();
    }
    await p.waitReady();
    await w.waitAppended(100);
  } finally {
    await w.stop();
  }
  await expectReadModelsExact(client, es, db.url, p);
  expect(p.exitCodes).toEqual(['SIGKILL', 'SIGKILL', 'SIGKILL', 'SIGKILL']);
  // the kills landed while it was writing: behind the head, with progress between them
  const behind = atKill.filter((k) => k.checkpoint >= 0 && k.checkpoint < k.head).length;
  const distinct = new Set(atKill.map((k) => k.checkpoint)).size;
  expect({ behind: behind >= 2, distinct: distinct >= 2, atKill }).toEqual({
    behind: true,
    distinct: true,
    atKill,
  });
});

it('kill -9 of the node the projector reads from, then of the leader, during appends: it goes on from another node, exactly', async () => {
  const db = await freshDatabase('proj_nodes');
  const p = await startProjector(
    'projector-nodes',
    projectorEnv(h, db.url, { PROJECTOR_BATCH_EVENTS: '50' }),
  );
  await p.waitReady();
  const w = new Writer(client, new MixedEvents('nodes', 40), { concurrency: 2 }).start();
  try {
    await w.waitAppended(100);
    const s1 = await p.waitFor('a source node', (s) => typeof s.sinks.postgres.source === 'string');
    const sourceUrl = s1.sinks.postgres.source as string;
    const source = [...h.nodes.values()].find((n) => n.url === sourceUrl)!;
    expect(source).toBeDefined();
    await h.kill(source.id);
    const after1 = (await client.headPosition()) + 50;
    await w.waitAppended(60);
    await p.waitFor(
      `reading from a node other than ${source.id}, past position ${after1}`,
      (s) =>
        s.sinks.postgres.state === 'running' &&
        typeof s.sinks.postgres.source === 'string' &&
        s.sinks.postgres.source !== sourceUrl &&
        s.sinks.postgres.position >= after1,
      { timeoutMs: 90_000 },
    );
    await h.restart(source.id);
    const leader = await h.waitForLeader();
    await w.waitAppended(60);
    await h.kill(leader.id);
    await h.waitForLeader({ not: leader.id });
    const after2 = (await client.headPosition()) + 50;
    await w.waitAppended(60);
    await p.waitFor(
      `moving on past position ${after2} after the leader ${leader.id} was killed`,
      (s) =>
        s.sinks.postgres.state === 'running' &&
        s.sinks.postgres.source !== leader.url &&
        s.sinks.postgres.position >= after2,
      { timeoutMs: 90_000 },
    );
    await h.restart(leader.id);
    await h.waitForLeader();
    await w.waitAppended(30);
  } finally {
    await w.stop();
  }
  await expectReadModelsExact(client, es, db.url, p);
  expect(p.running()).toBe(true);
});
