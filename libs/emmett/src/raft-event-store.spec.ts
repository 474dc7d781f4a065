import { randomUUID } from 'node:crypto';
import {
  AppendResult,
  EventEnvelope,
  ExpectedRevision,
  NewEvent,
  ReadStreamOptions,
  StreamNotFoundError,
  StreamPage,
  UnavailableError,
  WrongExpectedRevisionError,
} from '@app/client';
import {
  CommandHandler,
  type Event,
  type EventStore,
  ExpectedVersionConflictError,
  getInMemoryEventStore,
  isExpectedVersionConflictError,
  NO_CONCURRENCY_CHECK,
  STREAM_DOES_NOT_EXIST,
  STREAM_EXISTS,
} from '@event-driven-io/emmett';
import { EmmettClient, RaftEventStore } from './raft-event-store';

/**
 * The adapter over a fake of libs/client that keeps API.md's semantics in memory (revisions from 0, expected
 * revisions, 409 / 404, pages with `next` and `lastRevision`, JSON bodies). The parity tests run one script
 * against Emmett's own in-memory store and against the adapter: versions, positions and conflicts must agree.
 */

class FakeClient implements EmmettClient {
  readonly streams = new Map<string, EventEnvelope[]>();
  position = 0;
  readonly reads: ReadStreamOptions[] = [];
  appends = 0;
  /** Runs after each page is served (to append between pages). */
  afterPage: (() => void) | null = null;
  fail: Error | null = null;

  async append(
    streamId: string,
    events: NewEvent[],
    opts: { expectedRevision?: ExpectedRevision } = {},
  ): Promise<AppendResult> {
    this.appends++;
    if (this.fail) throw this.fail;
    // What the real client puts on the wire (a bigint in it would throw here as it would there).
    const body = JSON.parse(JSON.stringify({ events, expectedRevision: opts.expectedRevision })) as {
      events: NewEvent[];
      expectedRevision?: ExpectedRevision;
    };
    const stream = this.streams.get(streamId) ?? [];
    const last = stream.length - 1;
    const expected = body.expectedRevision ?? 'any';
    const ok =
      expected === 'any' ||
      (expected === 'no_stream' && last === -1) ||
      (expected === 'stream_exists' && last >= 0) ||
      expected === last;
    if (!ok) throw new WrongExpectedRevisionError(streamId, expected, last);
    const first = { revision: last + 1, position: this.position };
    for (const e of body.events)
      stream.push({
        id: e.id ?? randomUUID(),
        streamId,
        type: e.type,
        revision: stream.length,
        position: this.position++,
        timestamp: new Date(0).toISOString(),
        data: e.data ?? null,
        metadata: e.metadata ?? null,
      });
    this.streams.set(streamId, stream);
    return {
      streamId,
      firstRevision: first.revision,
      lastRevision: stream.length - 1,
      firstPosition: first.position,
      lastPosition: this.position - 1,
    };
  }

  async readStream(streamId: string, opts: ReadStreamOptions = {}): Promise<StreamPage> {
    this.reads.push(opts);
    if (this.fail) throw this.fail;
    const stream = this.streams.get(streamId);
    if (!stream || stream.length === 0) throw new StreamNotFoundError(streamId);
    const last = stream.length - 1;
    const limit = opts.limit ?? 100;
    let page: StreamPage;
    if (opts.direction === 'backward') {
      const start = Math.min(opts.from ?? last, last);
      const events = stream.slice(Math.max(0, start - limit + 1), start + 1).reverse();
      const lastRead = start - events.length + 1;
      page = { streamId, events, lastRevision: last, next: lastRead > 0 ? lastRead - 1 : null };
    } else {
      const from = opts.from ?? 0;
      const events = from > last ? [] : stream.slice(from, from + limit);
      const lastRead = from + events.length - 1;
      page = {
        streamId,
        events,
        lastRevision: last,
        next: events.length > 0 && lastRead < last ? lastRead + 1 : null,
      };
    }
    page = JSON.parse(JSON.stringify(page));
    this.afterPage?.();
    return page;
  }
}

type CartEvent =
  | Event<'ProductItemAdded', { productId: string; quantity: number }, { userId: string }>
  | Event<'CartConfirmed', { at: string }, { userId: string }>;

const added = (productId: string, quantity = 1): CartEvent => ({
  type: 'ProductItemAdded',
  data: { productId, quantity },
  metadata: { userId: 'u1' },
});
const confirmed = (): CartEvent => ({
  type: 'CartConfirmed',
  data: { at: 'now' },
  metadata: { userId: 'u1' },
});

/** An outcome as comparable data: results as they are, conflicts by class, current and expected. */
async function outcome(run: () => Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await run() }; // (the in-memory store's readStream throws synchronously)
  } catch (err) {
    if (err instanceof ExpectedVersionConflictError)
      return { conflict: { current: err.current, expected: err.expected, message: err.message } };
    throw err;
  }
}

/** The read results without what legitimately differs between stores (message ids, global positions). */
function comparable(
  r: { events: { type: string; data: unknown; metadata: any }[] } & Record<string, unknown>,
) {
  return {
    ...r,
    events: r.events.map((e) => ({
      type: e.type,
      data: e.data,
      userId: e.metadata.userId,
      streamName: e.metadata.streamName,
      streamPosition: e.metadata.streamPosition,
    })),
  };
}

describe('parity with Emmett’s in-memory store', () => {
  const script: [string, (s: EventStore) => Promise<unknown>][] = [
    ['read a missing stream', (s) => s.readStream('cart-1').then(comparable)],
    [
      'aggregate a missing stream',
      (s) => s.aggregateStream('cart-1', { evolve: (n: number) => n + 1, initialState: () => 0 }),
    ],
    ['streamExists on a missing stream', (s) => s.streamExists('cart-1')],
    [
      'STREAM_EXISTS on a missing stream',
      (s) => s.appendToStream('cart-1', [added('a')], { expectedStreamVersion: STREAM_EXISTS }),
    ],
    [
      '1n on a missing stream',
      (s) => s.appendToStream('cart-1', [added('a')], { expectedStreamVersion: 1n }),
    ],
    [
      'STREAM_DOES_NOT_EXIST creates it',
      (s) =>
        s.appendToStream('cart-1', [added('a'), added('b', 2)], {
          expectedStreamVersion: STREAM_DOES_NOT_EXIST,
        }),
    ],
    [
      'STREAM_DOES_NOT_EXIST again',
      (s) => s.appendToStream('cart-1', [added('c')], { expectedStreamVersion: STREAM_DOES_NOT_EXIST }),
    ],
    [
      '0n on an existing stream',
      (s) => s.appendToStream('cart-1', [added('c')], { expectedStreamVersion: 0n }),
    ],
    ['the right version', (s) => s.appendToStream('cart-1', [added('c')], { expectedStreamVersion: 2n })],
    ['a stale version', (s) => s.appendToStream('cart-1', [added('d')], { expectedStreamVersion: 2n })],
    [
      'a version from the future',
      (s) => s.appendToStream('cart-1', [added('d')], { expectedStreamVersion: 9n }),
    ],
    [
      'STREAM_EXISTS on an existing stream',
      (s) => s.appendToStream('cart-1', [added('d')], { expectedStreamVersion: STREAM_EXISTS }),
    ],
    [
      'NO_CONCURRENCY_CHECK',
      (s) => s.appendToStream('cart-1', [confirmed()], { expectedStreamVersion: NO_CONCURRENCY_CHECK }),
    ],
    ['no options', (s) => s.appendToStream('cart-2', [added('x')])],
    [
      '0n on a missing stream',
      (s) => s.appendToStream('cart-3', [added('y')], { expectedStreamVersion: 0n }),
    ],
    ['read it all', (s) => s.readStream('cart-1').then(comparable)],
    [
      'read with the right expected version',
      (s) => s.readStream('cart-1', { expectedStreamVersion: 5n }).then(comparable),
    ],
    ['read with a wrong expected version', (s) => s.readStream('cart-1', { expectedStreamVersion: 4n })],
    [
      'read a missing stream expecting it',
      (s) => s.readStream('cart-9', { expectedStreamVersion: STREAM_EXISTS }),
    ],
    ['read the first events (maxCount)', (s) => s.readStream('cart-1', { maxCount: 2n }).then(comparable)],
    [
      'aggregate',
      (s) =>
        s.aggregateStream('cart-1', {
          initialState: () => ({ items: 0, confirmed: false }),
          evolve: (st: { items: number; confirmed: boolean }, e: CartEvent) =>
            e.type === 'ProductItemAdded'
              ? { ...st, items: st.items + e.data.quantity }
              : { ...st, confirmed: true },
        }),
    ],
    ['streamExists', (s) => s.streamExists('cart-1')],
    [
      "Emmett's CommandHandler",
      (s) =>
        CommandHandler<number, CartEvent>({ evolve: (n) => n + 1, initialState: () => 0 })(
          s,
          'cart-1',
          (n) => (n < 10 ? [added('z')] : []),
        ),
    ],
    [
      "Emmett's CommandHandler on a new stream",
      (s) =>
        CommandHandler<number, CartEvent>({ evolve: (n) => n + 1, initialState: () => 0 })(
          s,
          'cart-4',
          () => [added('z')],
        ),
    ],
  ];

  const memory = getInMemoryEventStore();
  const raft = new RaftEventStore(new FakeClient(), { pageSize: 2 });
  it.each(script.map(([name, step], i) => [name, i, step] as const))('%s', async (_name, _i, step) => {
    const expected = await outcome(() => step(memory));
    const actual = await outcome(() => step(raft));
    expect(actual).toEqual(expected);
  });
});

describe('RaftEventStore over a fake client', () => {
  let client: FakeClient;
  let store: RaftEventStore;
  beforeEach(async () => {
    client = new FakeClient();
    store = new RaftEventStore(client, { pageSize: 2 });
    await client.append('other', [{ type: 'Other' }, { type: 'Other' }]); // global positions differ from revisions
    await store.appendToStream('cart-1', [added('a'), added('b'), added('c'), added('d'), confirmed()]);
  });

  it('a 409 becomes ExpectedVersionConflictError (current = actual revision + 1), caused by the 409', async () => {
    const err = await store
      .appendToStream('cart-1', [added('e')], { expectedStreamVersion: 3n })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ExpectedVersionConflictError);
    expect(isExpectedVersionConflictError(err)).toBe(true);
    expect([err.current, err.expected]).toEqual(['5', '3']);
    expect(err.cause).toBeInstanceOf(WrongExpectedRevisionError);
    expect(err.cause.expectedRevision).toBe(2);
    const missing = await store
      .appendToStream('cart-9', [added('e')], { expectedStreamVersion: STREAM_EXISTS })
      .catch((e) => e);
    expect(missing).toBeInstanceOf(ExpectedVersionConflictError);
    expect([missing.current, missing.expected]).toEqual(['0', 'STREAM_EXISTS']);
  });

  it('other errors of the client pass through unchanged', async () => {
    client.fail = new UnavailableError('gave up');
    await expect(store.appendToStream('cart-1', [added('e')])).rejects.toBe(client.fail);
    await expect(store.readStream('cart-1')).rejects.toBe(client.fail);
  });

  it('metadata: the caller’s is stored, Emmett’s recorded keys are set on read and never stored', async () => {
    const { events } = await store.readStream('cart-1');
    expect(events[0].metadata).toEqual({
      userId: 'u1',
      messageId: client.streams.get('cart-1')![0].id,
      streamName: 'cart-1',
      streamPosition: 1n,
      globalPosition: 3n,
    });
    expect(events[0].kind).toBe('Event');
    // Re-appending read events (bigint positions in their metadata) stores only the caller's part.
    await store.appendToStream('copy', events.slice(0, 2));
    expect(client.streams.get('copy')!.map((e) => e.metadata)).toEqual([{ userId: 'u1' }, { userId: 'u1' }]);
    await store.appendToStream('bare', [{ type: 'Bare', data: { n: 1 } }]);
    expect(client.streams.get('bare')![0].metadata).toBeNull();
    expect((await store.readStream('bare')).events[0].metadata).toMatchObject({ streamPosition: 1n });
  });

  it('from / to are inclusive stream positions, maxCount a count, across pages', async () => {
    const positions = async (opts: object) =>
      (await store.readStream('cart-1', opts)).events.map((e) => e.metadata.streamPosition);
    expect(await positions({})).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(await positions({ from: 2n, to: 4n })).toEqual([2n, 3n, 4n]);
    expect(await positions({ from: 2n, maxCount: 3n })).toEqual([2n, 3n, 4n]);
    expect(await positions({ to: 2n, maxCount: 9n })).toEqual([1n, 2n]);
    expect(await positions({ from: 5n })).toEqual([5n]);
    expect(await positions({ from: 6n })).toEqual([]);
    expect(await positions({ from: 4n, to: 3n })).toEqual([]);
    const r = await store.readStream('cart-1', { from: 9n });
    expect([r.currentStreamVersion, r.streamExists]).toEqual([5n, true]);
    client.reads.length = 0;
    await positions({ from: 2n, maxCount: 3n });
    expect(client.reads.map((o) => [o.from, o.limit])).toEqual([
      [1, 2],
      [3, 1],
    ]);
    expect(client.reads.every((o) => o.consistency === 'linearizable')).toBe(true);
  });

  it('a read returns the events up to the version it reports, even when appends land between pages', async () => {
    let appended = 0;
    client.afterPage = () => {
      if (appended++ < 2)
        void client.append('cart-1', [
          { type: 'ProductItemAdded', data: { productId: 'late', quantity: 1 } },
        ]);
    };
    const r = await store.readStream('cart-1');
    expect(r.currentStreamVersion).toBe(5n);
    expect(r.events.map((e) => e.metadata.streamPosition)).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(client.streams.get('cart-1')).toHaveLength(7);
  });

  it('aggregateStream: the version of the state it built', async () => {
    const count = { evolve: (n: number) => n + 1, initialState: () => 0 };
    expect(await store.aggregateStream('cart-1', count)).toEqual({
      currentStreamVersion: 5n,
      state: 5,
      streamExists: true,
    });
    expect(await store.aggregateStream('cart-1', { ...count, read: { to: 3n } })).toEqual({
      currentStreamVersion: 3n,
      state: 3,
      streamExists: true,
    });
    expect(await store.aggregateStream('cart-9', count)).toEqual({
      currentStreamVersion: 0n,
      state: 0,
      streamExists: false,
    });
  });

  it('an empty append writes nothing and checks the expectation only', async () => {
    const appends = client.appends;
    await expect(store.appendToStream('cart-1', [], { expectedStreamVersion: 5n })).resolves.toEqual({
      nextExpectedStreamVersion: 5n,
      createdNewStream: false,
    });
    await expect(store.appendToStream('cart-1', [], { expectedStreamVersion: 4n })).rejects.toBeInstanceOf(
      ExpectedVersionConflictError,
    );
    await expect(
      store.appendToStream('cart-9', [], { expectedStreamVersion: STREAM_DOES_NOT_EXIST }),
    ).resolves.toEqual({ nextExpectedStreamVersion: 0n, createdNewStream: false });
    expect(client.appends).toBe(appends);
  });

  it('schema versioning: downcast on append, upcast on read', async () => {
    type V2 = Event<'Renamed', { fullName: string }>;
    type V1 = Event<'Renamed', { name: string }>;
    await store.appendToStream<V2, V1>('person-1', [{ type: 'Renamed', data: { fullName: 'Ada L' } }], {
      schema: { versioning: { downcast: (e) => ({ type: e.type, data: { name: e.data.fullName } }) } },
    });
    expect(client.streams.get('person-1')![0].data).toEqual({ name: 'Ada L' });
    const { events } = await store.readStream<V2, V1>('person-1', {
      schema: {
        versioning: { upcast: (e) => ({ type: e.type, data: { fullName: e.data.name.toUpperCase() } }) },
      },
    });
    expect(events[0].data).toEqual({ fullName: 'ADA L' });
  });

  it('refuses a page size the server would refuse', () => {
    expect(() => new RaftEventStore(client, { pageSize: 0 })).toThrow(RangeError);
    expect(() => new RaftEventStore(client, { pageSize: 4097 })).toThrow(RangeError);
  });
});
