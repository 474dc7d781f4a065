import { EventStoreStateMachine, EventStoreOptions } from './state-machine';
import { appendEntry, collect, ev, removeDir, tempDir } from './testing/fixtures';
import { EventEnvelope } from './types';

jest.setTimeout(60_000);

describe('subscriptions', () => {
  let dir: string;
  let sm: EventStoreStateMachine;

  async function openStore(opts: EventStoreOptions = {}) {
    dir = tempDir();
    sm = await EventStoreStateMachine.open(dir, opts);
  }

  function append(streamId: string, n = 1, type = 'E') {
    const events = Array.from({ length: n }, (_, k) => ev(type, { k }));
    return sm.apply(appendEntry(sm.appliedIndex() + 1, streamId, events));
  }

  afterEach(async () => {
    await sm.close();
    removeDir(dir);
  });

  it('$all from 0 yields history then live with no gap and no duplicate at the switch', async () => {
    await openStore();
    for (let i = 0; i < 300; i++) append(`s-${i % 5}`);
    const sub = sm.subscribe({ all: true }, { from: 0 });
    const first = await collect(sub, 250);
    // Appends interleave with consumption: some land while history is still being delivered.
    for (let i = 0; i < 200; i++) append(`s-${i % 5}`, 2);
    const rest = await collect(sub, 450);
    const positions = [...first, ...rest].map((e) => e.position);
    expect(positions).toEqual(Array.from({ length: 700 }, (_, i) => i));
    const waiting = sub.next();
    append('late');
    expect(((await waiting).value as EventEnvelope).position).toBe(700);
    sub.close();
    expect((await sub.next()).done).toBe(true);
  });

  it('nextBatch delivers the same sequence as next, in pages, mixed with next, through history and live', async () => {
    await openStore();
    for (let i = 0; i < 600; i++) append(`s-${i % 7}`);
    const sub = sm.subscribe({ all: true }, { from: 3 });
    const got: number[] = [];
    let batches = 0;
    let k = 0;
    let appended = false;
    while (got.length < 1200 - 3) {
      if (!appended && got.length >= 500) {
        appended = true;
        for (let i = 0; i < 300; i++) append(`s-${i % 7}`, 2); // live appends before history is done
      }
      if (k++ % 3 === 2) {
        const r = await sub.next();
        got.push((r.value as EventEnvelope).position);
      } else {
        const b = await sub.nextBatch();
        expect(b).not.toBeNull();
        expect(b!.length).toBeGreaterThan(0);
        batches++;
        for (const e of b!) got.push(e.position);
      }
    }
    expect(got).toEqual(Array.from({ length: 1200 - 3 }, (_, i) => i + 3));
    expect(batches).toBeLessThan(got.length / 2); // pages, not one event per call
    const waiting = sub.nextBatch();
    append('late', 3);
    expect((await waiting)!.map((e) => e.position)).toEqual([1200, 1201, 1202]);
    sub.close();
    expect(await sub.nextBatch()).toBeNull();
  });

  it('with no `from` delivers only events appended after the call', async () => {
    await openStore();
    append('a', 3);
    const sub = sm.subscribe({ all: true });
    const next = sub.next();
    append('b');
    expect(((await next).value as EventEnvelope).streamId).toBe('b');
    await sub.return!();
  });

  it('a stream subscription resumes from a revision and follows only that stream', async () => {
    await openStore();
    append('order-1', 3);
    append('order-2', 2);
    const sub = sm.subscribe({ streamId: 'order-1' }, { from: 1 });
    const got = await collect(sub, 2);
    expect(got.map((e) => e.revision)).toEqual([1, 2]);
    const pending = collect(sub, 3);
    append('order-2');
    append('order-1', 3);
    expect((await pending).map((e) => [e.streamId, e.revision])).toEqual([
      ['order-1', 3],
      ['order-1', 4],
      ['order-1', 5],
    ]);
    sub.close();
  });

  it('a subscription to a stream that does not exist yet starts at revision 0', async () => {
    await openStore();
    const sub = sm.subscribe({ streamId: 'new-1' });
    const pending = collect(sub, 2);
    append('other');
    append('new-1', 2);
    expect((await pending).map((e) => e.revision)).toEqual([0, 1]);
    sub.close();
  });

  it('$all with type and prefix filters skips non-matching events', async () => {
    await openStore();
    for (let i = 0; i < 100; i++) append(i % 2 ? `order-${i}` : `cart-${i}`, 1, i % 3 ? 'A' : 'B');
    const sub = sm.subscribe({ all: true, types: ['B'], streamPrefix: 'order-' }, { from: 0 });
    const got = await collect(sub, 17);
    expect(got.every((e) => e.type === 'B' && e.streamId.startsWith('order-'))).toBe(true);
    expect(got.map((e) => e.position)).toEqual(
      Array.from({ length: 100 }, (_, i) => i).filter((i) => i % 2 === 1 && i % 3 === 0),
    );
    const pending = sub.next();
    append('cart-x', 1, 'B');
    append('order-x', 1, 'A');
    append('order-y', 1, 'B');
    expect(((await pending).value as EventEnvelope).streamId).toBe('order-y');
    sub.close();
  });

  it('a slow consumer falls back to reading history: a burst far larger than any cache is delivered in order', async () => {
    await openStore({ recentCacheEvents: 8, recentCacheBytesMax: 4096, fileBytesMax: 64 * 1024 });
    const sub = sm.subscribe({ all: true }, { from: 0 });
    const firstPending = sub.next();
    append('s', 1);
    expect(((await firstPending).value as EventEnvelope).position).toBe(0);
    // The consumer stalls while 5,000 events are committed; nothing is buffered for it meanwhile.
    for (let i = 0; i < 1000; i++) append(`s-${i % 13}`, 5);
    const rest = await collect(sub, 5000);
    expect(rest.map((e) => e.position)).toEqual(Array.from({ length: 5000 }, (_, i) => i + 1));
    sub.close();
  });

  it('keeps going across a snapshot restore (same history, more of it)', async () => {
    await openStore();
    const leaderDir = tempDir();
    const leader = await EventStoreStateMachine.open(leaderDir);
    try {
      const entries = Array.from({ length: 20 }, (_, i) =>
        appendEntry(i + 1, `s-${i % 3}`, [ev('E', { i })]),
      );
      for (const e of entries.slice(0, 5)) sm.apply(e);
      for (const e of entries) leader.apply(e);
      const sub = sm.subscribe({ all: true }, { from: 0 });
      expect((await collect(sub, 5)).map((e) => e.position)).toEqual([0, 1, 2, 3, 4]);
      const pending = collect(sub, 15);
      const snap = await leader.snapshot();
      await sm.restore(
        { index: snap.index, term: 1, config: { voters: [], outgoing: [], learners: [], addresses: {} } },
        snap.data,
      );
      expect((await pending).map((e) => e.position)).toEqual(Array.from({ length: 15 }, (_, i) => i + 5));
      sub.close();
    } finally {
      await leader.close();
      removeDir(leaderDir);
    }
  });

  it('onAppended listeners see each applied append once (not idempotent retries nor rejected appends)', async () => {
    await openStore();
    const seen: unknown[] = [];
    const unsubscribe = sm.onAppended((b) => seen.push(b));
    const entry = appendEntry(1, 'order-1', [ev('A', {}, '00000000-0000-4000-8000-000000000001'), ev('B')]);
    sm.apply(entry);
    sm.apply({
      ...appendEntry(2, 'order-1', [ev('A', {}, '00000000-0000-4000-8000-000000000001'), ev('B')]),
      data: entry.data,
    });
    sm.apply(appendEntry(3, 'order-1', [ev('C')], 'no_stream'));
    append('order-2');
    unsubscribe();
    expect(seen).toEqual([
      { streamId: 'order-1', firstRevision: 0, lastRevision: 1, firstPosition: 0, lastPosition: 1 },
      { streamId: 'order-2', firstRevision: 0, lastRevision: 0, firstPosition: 2, lastPosition: 2 },
    ]);
    expect(sm.stats()).toMatchObject({ appliedIndex: 4, lastPosition: 2, streams: 2, eventFiles: 1 });
  });

  it('closing the store ends every subscription', async () => {
    await openStore();
    const sub = sm.subscribe({ all: true });
    const pending = sub.next();
    await sm.close();
    expect((await pending).done).toBe(true);
    sm = await EventStoreStateMachine.open(dir);
  });
});
