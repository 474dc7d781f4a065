import { randomUUID } from 'node:crypto';
import {
  EventEnvelope,
  EventStoreClient,
  StreamNotFoundError,
  UnknownOutcomeError,
  WrongExpectedRevisionError,
} from '@app/client';
import { waitFor } from '@app/consensus/testing';
import { ClusterHarness } from '../support/cluster-harness';
import { sleep } from '../support/e2e-client';
import { stableEnv } from '../support/workload';

/**
 * libs/client against a real 3-process cluster: writes through a follower (307), expected revisions, paging,
 * and a $all subscription that survives kill -9 of the node it reads from: every position exactly once, in
 * order, no gap.
 */

jest.setTimeout(300_000);

let h: ClusterHarness;
const clients: EventStoreClient[] = [];

/** Generous bounds: elections under CPU load take a while; a test must not fail on one. */
function client(urls: string[], debug?: string[]): EventStoreClient {
  const c = new EventStoreClient({
    urls,
    requestTimeoutMs: 5_000,
    retry: { attempts: 100, initialDelayMs: 50, maxDelayMs: 1_000, totalTimeoutMs: 90_000 },
    logger: { warn: () => undefined, debug: debug ? (m) => debug.push(m) : undefined },
  });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  h = await ClusterHarness.start({ nodes: 3, env: stableEnv });
  await h.waitForLeader();
}, 180_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await h?.cleanup();
});

it('appends through a follower (307 to the leader), maps expected-revision conflicts, reads page by page', async () => {
  const leader = await h.waitForLeader();
  const follower = h.running().find((n) => n.id !== leader.id)!;
  const debug: string[] = [];
  const c = client([follower.url], debug);

  const first = await c.append('client-order-1', [{ type: 'OrderPlaced', data: { n: 0 } }], {
    expectedRevision: 'no_stream',
  });
  expect(first).toMatchObject({ streamId: 'client-order-1', firstRevision: 0, lastRevision: 0 });
  expect(debug.some((m) => m.includes(`redirected to the leader at ${leader.url}`))).toBe(true);

  const more = await c.append(
    'client-order-1',
    [
      { type: 'OrderPaid', data: { n: 1 } },
      { type: 'OrderShipped', data: { n: 2 } },
    ],
    { expectedRevision: 0 },
  );
  expect([more.firstRevision, more.lastRevision]).toEqual([1, 2]);
  expect(more.lastPosition - more.firstPosition).toBe(1);

  const conflict = await c
    .append('client-order-1', [{ type: 'OrderPaid' }], { expectedRevision: 0 })
    .catch((e) => e);
  expect(conflict).toBeInstanceOf(WrongExpectedRevisionError);
  expect([conflict.streamId, conflict.expectedRevision, conflict.actualRevision]).toEqual([
    'client-order-1',
    0,
    2,
  ]);
  const noStream = await c
    .append('client-order-1', [{ type: 'OrderPlaced' }], { expectedRevision: 'no_stream' })
    .catch((e) => e);
  expect(noStream).toBeInstanceOf(WrongExpectedRevisionError);
  expect(noStream.actualRevision).toBe(2);

  // The identical request again (same event id) is deduplicated by the server: same coordinates, nothing written.
  const firstId = (await c.readStream('client-order-1', { limit: 1 })).events[0].id;
  const again = await c.append('client-order-1', [{ id: firstId, type: 'OrderPlaced', data: { n: 0 } }], {
    expectedRevision: 'no_stream',
  });
  expect([again.firstRevision, again.firstPosition]).toEqual([0, first.firstPosition]);

  const p1 = await c.readStream('client-order-1', { limit: 2 });
  expect(p1.events.map((e) => e.revision)).toEqual([0, 1]);
  expect(p1.next).toBe(2);
  const p2 = await c.readStream('client-order-1', { from: p1.next!, limit: 2 });
  expect(p2.events.map((e) => e.type)).toEqual(['OrderShipped']);
  expect(p2.next).toBeNull();
  expect(p2.lastRevision).toBe(2);
  const back = await c.readStream('client-order-1', {
    direction: 'backward',
    limit: 1,
    consistency: 'local',
  });
  expect(back.events[0].revision).toBeLessThanOrEqual(2);
  await expect(c.readStream('client-nope')).rejects.toBeInstanceOf(StreamNotFoundError);

  for (let i = 0; i < 7; i++) await c.append(`client-other-${i % 2}`, [{ type: 'Other', data: { i } }]);
  const head = await c.headPosition();
  const positions: number[] = [];
  for await (const page of c.readAllPages({ limit: 3 })) {
    expect(page.length).toBeLessThanOrEqual(3);
    positions.push(...page.map((e) => e.position));
  }
  expect(positions).toEqual(Array.from({ length: head + 1 }, (_, i) => i));
  const filtered = await c.readAll({ types: ['Other'], streamPrefix: 'client-other-1' });
  expect(filtered.events.every((e) => e.type === 'Other' && e.streamId === 'client-other-1')).toBe(true);
  expect(filtered.events).toHaveLength(3);

  // Default `from`: only events committed after the subscription was made.
  const sub = c.subscribeAll();
  const it = sub[Symbol.asyncIterator]();
  const nextBatch = it.next();
  await sleep(200);
  const late = await c.append('client-late', [{ type: 'Late' }]);
  const got = await nextBatch;
  expect((got.value as EventEnvelope[])[0]).toMatchObject({ position: late.firstPosition, type: 'Late' });
  sub.close();
  await expect(it.next()).resolves.toMatchObject({ done: true });

  const view = await c.cluster();
  expect(view.members.map((m) => m.id).sort()).toEqual(['n1', 'n2', 'n3']);
});

it('a $all subscription from 0 survives kill -9 of its node while appends go on: every position once, in order', async () => {
  const writer = client(h.urls());
  // The reader starts on a follower: the leader goes on committing while the reader's node is dead, so a
  // resume that is not exact (a lost Last-Event-ID, no dedup) shows up as a gap or a duplicate.
  const leader = await h.waitForLeader();
  const followers = h.urls().filter((u) => u !== leader.url);
  const reader = client([...followers, leader.url]);
  const sub = reader.subscribeAll({ from: 0, maxBatchEvents: 50, idleTimeoutMs: 20_000 });
  const delivered: EventEnvelope[] = [];
  const consumed = (async () => {
    for await (const batch of sub) delivered.push(...batch);
  })();
  // A subscription error (a gap, giving up) fails the test at once instead of at a wait's timeout.
  const failed = consumed.then(() => {
    throw new Error(`the subscription ended early after ${delivered.length} events`);
  });
  failed.catch(() => undefined);
  const until = (what: string, check: () => boolean, timeoutMs: number) =>
    Promise.race([waitFor(what, check, { timeoutMs }), failed]);

  let writing = true;
  const acked: string[] = [];
  const unknown: string[] = [];
  const writers = [0, 1, 2].map(async (w) => {
    for (let i = 0; writing && i < 100_000; i++) {
      const id = randomUUID();
      try {
        await writer.append(`client-sub-${w}`, [{ id, type: 'Tick', data: { w, i } }]);
        acked.push(id);
      } catch (err) {
        if (!(err instanceof UnknownOutcomeError)) throw err;
        unknown.push(id);
      }
    }
  });

  try {
    await until('60 delivered events', () => delivered.length >= 60, 60_000);
    const url = sub.connectedUrl;
    const victim = h.running().find((n) => n.url === url);
    expect(victim).toBeDefined();
    const before = delivered.length;
    await h.kill(victim!.id, 'SIGKILL');
    await until(
      'the subscription to resume on another node and deliver 100 more events',
      () => sub.reconnects >= 1 && sub.connectedUrl !== url && delivered.length >= before + 100,
      120_000,
    );
  } finally {
    writing = false;
    await Promise.all(writers);
  }
  const head = await writer.headPosition();
  await until(`every position up to ${head} delivered`, () => delivered.length >= head + 1, 60_000);
  sub.close();
  await consumed;

  expect(delivered.map((e) => e.position)).toEqual(Array.from({ length: head + 1 }, (_, i) => i));
  expect(new Set(delivered.map((e) => e.id)).size).toBe(delivered.length);
  const ids = new Set(delivered.map((e) => e.id));
  expect(acked.filter((id) => !ids.has(id))).toEqual([]);
  expect(sub.lastId).toBe(head);
  expect(acked.length).toBeGreaterThan(100);
});
