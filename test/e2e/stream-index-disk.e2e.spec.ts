import { waitFor } from '@app/consensus/testing';
import { ClusterHarness } from '../support/cluster-harness';
import { E2EClient, event, getJson, request } from '../support/e2e-client';
import { stableEnv } from '../support/workload';

/**
 * A real 3-process cluster with the stream index and the projections' partition states on disk
 * (STREAM_INDEX=disk, PROJECTION_STATE=disk) and tiny block caches: 100,000 small streams, a follower killed
 * and brought back through a snapshot that carries the run files, then every node answers reads,
 * expected-revision checks and projection queries for streams that live only on disk.
 */

jest.setTimeout(600_000);

const STREAMS = Number(process.env.E2E_INDEX_STREAMS ?? 100_000);
const WORKERS = 64;
const CACHE_BYTES = 64 * 1024;

let h: ClusterHarness;
let client: E2EClient;

beforeAll(async () => {
  h = await ClusterHarness.start({
    nodes: 3,
    env: {
      ...stableEnv,
      STREAM_INDEX: process.env.E2E_STREAM_INDEX ?? 'disk',
      STREAM_INDEX_CACHE_BYTES: String(CACHE_BYTES),
      PROJECTION_STATE: process.env.E2E_PROJECTION_STATE ?? 'disk',
      PROJECTION_CACHE_BYTES: String(CACHE_BYTES),
      SNAPSHOT_EVERY_ENTRIES: '2000',
      SNAPSHOT_KEEP_ENTRIES: '50',
    },
  });
  client = new E2EClient(() => h.urls());
  await h.waitForLeader();
}, 180_000);

afterAll(async () => {
  await h?.cleanup();
});

async function metric(url: string, name: string): Promise<number> {
  const r = await request('GET', `${url}/metrics`);
  const line = r.text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.split(' ')[1]);
}

it(`${STREAMS} new streams: a follower restarted behind gets the index and partition states by snapshot; reads, expected revisions and projections agree`, async () => {
  const counts = new Map<string, number>();
  let next = 0;
  let killed: string | null = null;
  const worker = async (w: number) => {
    for (;;) {
      const n = next++;
      if (n >= STREAMS) return;
      if (n === Math.floor(STREAMS / 3) && w >= 0) {
        const leader = await h.waitForLeader();
        killed = h.running().find((x) => x.id !== leader.id)!.id;
        await h.kill(killed);
      }
      const stream = `order-${n}`;
      const k = 1 + (n % 3);
      await client.appendOk(stream, {
        expectedRevision: 'no_stream',
        events: Array.from({ length: k }, (_, i) => event('OrderEvent', { n, i })),
      });
      counts.set(stream, k);
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  expect(killed).not.toBeNull();
  await h.restart(killed!);

  // Every node reaches the same number of streams (the restarted one through a snapshot install).
  await waitFor(
    `every node to count ${STREAMS} streams`,
    async () => {
      const all = await Promise.all(h.running().map((n) => metric(n.url, 'eventstore_streams')));
      return all.length === 3 && all.every((c) => c === STREAMS);
    },
    { timeoutMs: 180_000, intervalMs: 500 },
  );
  for (const n of h.running()) {
    expect(await metric(n.url, 'eventstore_stream_index_runs')).toBeGreaterThan(0);
    expect(await metric(n.url, 'eventstore_stream_index_cache_bytes')).toBeLessThanOrEqual(CACHE_BYTES);
    // Streams are spread over run files: several times more index bytes on disk than the cache may hold
    // (about 640 KiB for 40,000 entries; what came after the last cut may still be in the table).
    expect(await metric(n.url, 'eventstore_stream_index_run_bytes')).toBeGreaterThan(4 * CACHE_BYTES);
    // Partition states (streams and orders: one per stream) live in runs too, past what the cache holds.
    expect(await metric(n.url, 'eventstore_projection_runs')).toBeGreaterThan(0);
    expect(await metric(n.url, 'eventstore_projection_cache_bytes')).toBeLessThanOrEqual(CACHE_BYTES);
    expect(await metric(n.url, 'eventstore_projection_run_bytes')).toBeGreaterThan(4 * CACHE_BYTES);
  }

  // Reads of streams spread over the whole fill, on every node, from local state.
  const sample = Array.from({ length: 150 }, (_, i) => `order-${Math.floor((i * STREAMS) / 150)}`);
  for (const n of h.running()) {
    for (const stream of sample) {
      const r = await getJson(`${n.url}/streams/${stream}?consistency=local`);
      expect(r.status).toBe(200);
      const page = r.body as { lastRevision: number; events: { revision: number }[] };
      expect(page.lastRevision).toBe(counts.get(stream)! - 1);
      expect(page.events.map((e) => e.revision)).toEqual(
        Array.from({ length: counts.get(stream)! }, (_, i) => i),
      );
    }
  }
  expect((await getJson(`${h.running()[0].url}/streams/order-unknown?consistency=local`)).status).toBe(404);

  // The streams projection agrees on every node, partition by partition, and pages through all of them.
  for (const n of h.running()) {
    await waitFor(
      `${n.id}'s projections to run`,
      async () => {
        const list = (await getJson(`${n.url}/projections`)).body as { status: string; lag: number }[];
        return list.every((p) => p.status === 'running' && p.lag === 0);
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    for (const stream of sample.slice(0, 40)) {
      const r = await getJson(`${n.url}/projections/streams/${stream}?consistency=local`);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ lastRevision: counts.get(stream)! - 1, eventCount: counts.get(stream) });
    }
  }
  let after: string | undefined;
  let partitions = 0;
  let previous = '';
  for (let page = 0; page < 100; page++) {
    const q = `limit=10000${after === undefined ? '' : `&after=${encodeURIComponent(after)}`}`;
    const r = await getJson(`${h.running()[0].url}/projections/streams?consistency=local&${q}`);
    expect(r.status).toBe(200);
    const body = r.body as { state: Record<string, unknown>; next?: string };
    const keys = Object.keys(body.state);
    expect(keys.length).toBeLessThanOrEqual(10_000);
    if (keys.length > 0) expect(keys[0] > previous).toBe(true);
    previous = keys[keys.length - 1] ?? previous;
    partitions += keys.length;
    if (body.next === undefined) break;
    after = body.next;
  }
  expect(partitions).toBe(STREAMS);

  // Expected-revision checks against streams whose revisions are only in run files.
  const old = 'order-7'; // 2 events: revision 1
  const wrong = await client.send('POST', `/streams/${old}/events`, {
    body: { expectedRevision: 0, events: [event('Late')] },
  });
  expect(wrong.status).toBe(409);
  const right = await client.appendOk(old, { expectedRevision: 1, events: [event('Late')] });
  expect(right).toMatchObject({ firstRevision: 2 });
  const fresh = await client.send('POST', `/streams/order-11/events`, {
    body: { expectedRevision: 'no_stream', events: [event('Again')] },
  });
  expect(fresh.status).toBe(409);
});
