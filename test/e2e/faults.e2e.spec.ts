import { randomUUID } from 'node:crypto';
import { waitFor } from '@app/consensus/testing';
import { ClusterHarness } from '../support/cluster-harness';
import { E2EClient, event, request, SseReader } from '../support/e2e-client';
import { assertAckedPresent, convergedAll, stableEnv, WriteLoad } from '../support/workload';

/**
 * Crashes and restarts under a write load, against the event-store API of a real 3-process cluster:
 * nothing acknowledged is lost or duplicated, every node ends with the same $all, subscribers see
 * each committed event once and in order across a leader kill, snapshot installs give identical
 * reads, projections are equal after a reset and after a restart.
 */

jest.setTimeout(300_000);

let h: ClusterHarness;
let client: E2EClient;

beforeAll(async () => {
  h = await ClusterHarness.start({
    nodes: 3,
    env: {
      ...stableEnv,
      SNAPSHOT_EVERY_ENTRIES: '150',
      SNAPSHOT_KEEP_ENTRIES: '10',
      RAFT_SEGMENT_BYTES: '16384',
    },
  });
  client = new E2EClient(() => h.urls());
  await h.waitForLeader();
}, 180_000);

afterAll(async () => {
  await h?.cleanup();
});

it('kill -9 and restart of nodes during a write load: every acknowledged event exactly once on every node', async () => {
  const load = new WriteLoad(client, { streams: ['crash-a', 'crash-b', 'crash-c'], concurrency: 6 }).start();
  try {
    await load.waitAcked(30);
    const leader = await h.waitForLeader();
    await h.kill(leader.id);
    await load.waitAcked(30);
    await h.restart(leader.id);
    await load.waitAcked(20);
    const current = await h.waitForLeader();
    const follower = h.running().find((n) => n.id !== current.id)!;
    await h.kill(follower.id);
    await load.waitAcked(30);
    await h.restart(follower.id);
    await load.waitAcked(20);
  } finally {
    await load.stop();
  }
  const all = await convergedAll(h, client);
  assertAckedPresent(load.acked, all);
  expect(load.rejected).toEqual([]);
  // Ids whose fate was unknown to the client are present at most once (convergedAll checks uniqueness).
  expect(load.acked.length).toBeGreaterThanOrEqual(130);
});

it('a subscriber on a surviving node receives every committed event once and in order across a leader kill', async () => {
  const leader = await h.waitForLeader();
  const watcher = h.running().find((n) => n.id !== leader.id)!;
  const start =
    (await request('GET', `${watcher.url}/streams/$all?direction=backward&limit=1&consistency=local`)).body
      .lastPosition + 1;
  const sub = new SseReader(`${watcher.url}/streams/$all/subscribe?from=${start}`);
  const load = new WriteLoad(client, { streams: ['subkill-1', 'subkill-2'], concurrency: 4 }).start();
  try {
    await sub.opened;
    expect(sub.status).toBe(200);
    await load.waitAcked(30);
    await h.kill(leader.id);
    await load.waitAcked(40);
    await h.restart(leader.id);
    await load.waitAcked(10);
  } finally {
    await load.stop();
  }
  try {
    const all = await convergedAll(h, client);
    const expected = all.filter((e) => e.position >= start);
    await waitFor(
      `the subscriber to receive ${expected.length} events (has ${sub.envelopes().length})`,
      () => sub.ended || sub.envelopes().length >= expected.length,
      { timeoutMs: 120_000 },
    );
    expect(sub.ended).toBe(false);
    const got = sub.envelopes();
    expect(got.map((e) => e.position)).toEqual(expected.map((e) => e.position));
    expect(got.map((e) => e.id)).toEqual(expected.map((e) => e.id));
    expect(sub.messages.filter((m) => m.event === null).map((m) => Number(m.id))).toEqual(
      expected.map((e) => e.position),
    );
    assertAckedPresent(load.acked, all);
  } finally {
    sub.close();
  }
});

it('a lagging node catches up by snapshot install, then serves identical reads', async () => {
  const leader = await h.waitForLeader();
  const lagging = h.running().find((n) => n.id !== leader.id)!;
  const behind = (await h.clusterView(lagging.id))!.lastLogIndex;
  await h.kill(lagging.id);
  const s = `snap-${randomUUID()}`;
  for (let i = 0; i < 40; i++)
    await client.appendOk(s, { events: Array.from({ length: 5 }, (_, k) => event('Snap', { i, k })) });
  for (let i = 0; i < 200; i++)
    await client.appendOk(`snap-single-${i % 7}`, { events: [event('One', { i })] });
  await client.send('POST', '/cluster/snapshot', { startAt: (await h.waitForLeader()).url });
  await waitFor('the log of the live nodes to be compacted past the lagging node', async () => {
    const views = await Promise.all(h.running().map((n) => h.clusterView(n.id)));
    return views.every((v) => v !== null && v.snapshot.index > behind + 50);
  });
  await h.restart(lagging.id);
  const all = await convergedAll(h, client);
  expect(all.filter((e) => e.streamId === s)).toHaveLength(200);
  expect(h.logsSinceStart(lagging.id).some((l) => /installed snapshot at index/.test(l))).toBe(true);
  const reads = await Promise.all(h.running().map((n) => client.readStreamFrom(n.url, s, 'local')));
  for (const r of reads) expect(r).toEqual(reads[0]);
  const backward = await Promise.all(
    h
      .running()
      .map((n) => request('GET', `${n.url}/streams/${s}?direction=backward&limit=7&consistency=local`)),
  );
  for (const b of backward) expect(b.body).toEqual(backward[0].body);
});

it('projections are equal on every node, after a reset and after a restart', async () => {
  await client.appendOk(`order-${randomUUID()}`, {
    events: [event('OrderPlaced', { customer: 'ada', lines: [{ sku: 'a', qty: 2, price: 3 }] })],
  });
  await convergedAll(h, client);
  const names = ['streams', 'event-types', 'categories'];
  const snapshotOf = async (url: string) =>
    Promise.all(
      names.map(async (n) => (await request('GET', `${url}/projections/${n}?consistency=local`)).body.state),
    );
  const settled = async (url: string) =>
    waitFor(`projections on ${url} to be running with no lag`, async () => {
      const list = (await request('GET', `${url}/projections`)).body as {
        name: string;
        status: string;
        lag: number;
      }[];
      return list.filter((p) => names.includes(p.name)).every((p) => p.status === 'running' && p.lag === 0);
    });
  for (const n of h.running()) await settled(n.url);
  const reference = await snapshotOf(h.running()[0].url);
  for (const n of h.running()) expect(await snapshotOf(n.url)).toEqual(reference);

  const target = h.running()[1];
  for (const name of names)
    expect((await request('POST', `${target.url}/projections/${name}/reset`)).status).toBe(202);
  await settled(target.url);
  expect(await snapshotOf(target.url)).toEqual(reference);

  await h.kill(target.id);
  await h.restart(target.id);
  await convergedAll(h, client);
  await settled(target.url);
  expect(await snapshotOf(target.url)).toEqual(reference);
});
