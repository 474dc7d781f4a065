import { EventStoreClient } from '@app/client';
import { getRaftEventStore, RaftEventStore } from '@app/emmett';
import {
  type Command,
  CommandHandler,
  type Event,
  ExpectedVersionConflictError,
  IllegalStateError,
  isExpectedVersionConflictError,
  STREAM_EXISTS,
} from '@event-driven-io/emmett';
import { ClusterHarness } from '../support/cluster-harness';
import { stableEnv } from '../support/workload';

/**
 * libs/emmett against a real 3-process cluster: an Emmett shopping-cart decider run by Emmett's own
 * CommandHandler, unchanged, on top of the adapter — the full flow, two handlers racing on one version, an
 * append expecting a stream that does not exist, and aggregateStream.
 */

jest.setTimeout(60_000);

// ---------------------------------------------------------------------------------------------------------
// The decider (as in Emmett's samples)

interface ProductItem {
  productId: string;
  quantity: number;
}
/** (a type, not an interface: Emmett's metadata must be assignable to Record<string, unknown>) */
type CartMetadata = { userId: string };

type AddProductItem = Command<'AddProductItem', { productItem: ProductItem; userId: string }>;
type RemoveProductItem = Command<'RemoveProductItem', { productItem: ProductItem; userId: string }>;
type Confirm = Command<'Confirm', { userId: string; now: string }>;
type Cancel = Command<'Cancel', { userId: string; now: string }>;
type CartCommand = AddProductItem | RemoveProductItem | Confirm | Cancel;

type ProductItemAdded = Event<'ProductItemAdded', { productItem: ProductItem }, CartMetadata>;
type ProductItemRemoved = Event<'ProductItemRemoved', { productItem: ProductItem }, CartMetadata>;
type CartConfirmed = Event<'ShoppingCartConfirmed', { confirmedAt: string }, CartMetadata>;
type CartCanceled = Event<'ShoppingCartCanceled', { canceledAt: string }, CartMetadata>;
type CartEvent = ProductItemAdded | ProductItemRemoved | CartConfirmed | CartCanceled;

type ShoppingCart =
  | { status: 'Empty' }
  | { status: 'Opened'; items: Record<string, number> }
  | { status: 'Confirmed'; items: Record<string, number>; confirmedAt: string }
  | { status: 'Canceled' };

const initialState = (): ShoppingCart => ({ status: 'Empty' });

function evolve(state: ShoppingCart, event: CartEvent): ShoppingCart {
  const items = state.status === 'Opened' ? state.items : {};
  switch (event.type) {
    case 'ProductItemAdded': {
      const { productId, quantity } = event.data.productItem;
      return { status: 'Opened', items: { ...items, [productId]: (items[productId] ?? 0) + quantity } };
    }
    case 'ProductItemRemoved': {
      const { productId, quantity } = event.data.productItem;
      const left = (items[productId] ?? 0) - quantity;
      const { [productId]: _gone, ...rest } = items;
      return { status: 'Opened', items: left > 0 ? { ...rest, [productId]: left } : rest };
    }
    case 'ShoppingCartConfirmed':
      return { status: 'Confirmed', items, confirmedAt: event.data.confirmedAt };
    case 'ShoppingCartCanceled':
      return { status: 'Canceled' };
  }
}

function decide(command: CartCommand, state: ShoppingCart): CartEvent {
  const metadata = { userId: command.data.userId };
  const closed = state.status === 'Confirmed' || state.status === 'Canceled';
  switch (command.type) {
    case 'AddProductItem':
      if (closed) throw new IllegalStateError(`cannot add to a ${state.status} cart`);
      return { type: 'ProductItemAdded', data: { productItem: command.data.productItem }, metadata };
    case 'RemoveProductItem': {
      const { productId, quantity } = command.data.productItem;
      if (state.status !== 'Opened' || (state.items[productId] ?? 0) < quantity)
        throw new IllegalStateError(`not enough ${productId} in the cart`);
      return { type: 'ProductItemRemoved', data: { productItem: command.data.productItem }, metadata };
    }
    case 'Confirm':
      if (state.status !== 'Opened' || Object.keys(state.items).length === 0)
        throw new IllegalStateError('only an open cart with items can be confirmed');
      return { type: 'ShoppingCartConfirmed', data: { confirmedAt: command.data.now }, metadata };
    case 'Cancel':
      if (state.status !== 'Opened') throw new IllegalStateError('only an open cart can be canceled');
      return { type: 'ShoppingCartCanceled', data: { canceledAt: command.data.now }, metadata };
  }
}

/** Stream ids allow [A-Za-z0-9._:@-] (no `_`): Emmett's usual `shopping_cart-<id>` becomes `shoppingcart-<id>`. */
const handle = CommandHandler<ShoppingCart, CartEvent>({
  evolve,
  initialState,
  mapToStreamId: (id) => `shoppingcart-${id}`,
});

const add = (productId: string, quantity: number): AddProductItem => ({
  type: 'AddProductItem',
  data: { productItem: { productId, quantity }, userId: 'u-1' },
});
const now = '2026-12-07T12:00:00.000Z';

// ---------------------------------------------------------------------------------------------------------

let h: ClusterHarness;
let client: EventStoreClient;
let store: RaftEventStore;

beforeAll(async () => {
  h = await ClusterHarness.start({ nodes: 3, env: stableEnv });
  await h.waitForLeader();
  client = new EventStoreClient({
    urls: h.urls(),
    requestTimeoutMs: 5_000,
    retry: { attempts: 50, initialDelayMs: 50, maxDelayMs: 1_000, totalTimeoutMs: 30_000 },
    logger: { warn: () => undefined },
  });
  store = getRaftEventStore(client);
}, 45_000);

afterAll(async () => {
  client?.close();
  await h?.cleanup();
});

it('a full cart flow through CommandHandler: versions count events, metadata and positions round-trip', async () => {
  const cart = 'flow';
  const r1 = await handle(store, cart, (s) => decide(add('shoes', 2), s));
  expect([r1.nextExpectedStreamVersion, r1.createdNewStream]).toEqual([1n, true]);
  const r2 = await handle(store, cart, (s) => decide(add('socks', 3), s));
  expect([r2.nextExpectedStreamVersion, r2.createdNewStream]).toEqual([2n, false]);
  const r3 = await handle(store, cart, (s) =>
    decide(
      {
        type: 'RemoveProductItem',
        data: { productItem: { productId: 'socks', quantity: 1 }, userId: 'u-2' },
      },
      s,
    ),
  );
  expect(r3.newState).toEqual({ status: 'Opened', items: { shoes: 2, socks: 2 } });
  const r4 = await handle(store, cart, (s) => decide({ type: 'Confirm', data: { userId: 'u-1', now } }, s));
  expect(r4.nextExpectedStreamVersion).toBe(4n);
  expect(r4.newState).toEqual({ status: 'Confirmed', items: { shoes: 2, socks: 2 }, confirmedAt: now });
  await expect(handle(store, cart, (s) => decide(add('hat', 1), s))).rejects.toBeInstanceOf(
    IllegalStateError,
  );
  await expect(
    handle(store, cart, (s) => decide({ type: 'Cancel', data: { userId: 'u-1', now } }, s)),
  ).rejects.toBeInstanceOf(IllegalStateError);

  const read = await store.readStream<CartEvent>('shoppingcart-flow');
  expect(read.currentStreamVersion).toBe(4n);
  expect(read.events.map((e) => [e.type, e.metadata.streamPosition, e.metadata.userId])).toEqual([
    ['ProductItemAdded', 1n, 'u-1'],
    ['ProductItemAdded', 2n, 'u-1'],
    ['ProductItemRemoved', 3n, 'u-2'],
    ['ShoppingCartConfirmed', 4n, 'u-1'],
  ]);
  // The same events as the store itself keeps them: revisions from 0, the caller's metadata only.
  const raw = await client.readStream('shoppingcart-flow');
  expect(raw.lastRevision).toBe(3);
  expect(raw.events.map((e) => [e.revision, e.metadata])).toEqual([
    [0, { userId: 'u-1' }],
    [1, { userId: 'u-1' }],
    [2, { userId: 'u-2' }],
    [3, { userId: 'u-1' }],
  ]);
  expect(read.events.map((e) => e.metadata.messageId)).toEqual(raw.events.map((e) => e.id));
  expect(read.events.map((e) => e.metadata.globalPosition)).toEqual(
    raw.events.map((e) => BigInt(e.position) + 1n),
  );
  const middle = await store.readStream<CartEvent>('shoppingcart-flow', { from: 2n, to: 3n });
  expect(middle.events.map((e) => e.type)).toEqual(['ProductItemAdded', 'ProductItemRemoved']);
});

it('two handlers racing on the same version: one appends, the other gets ExpectedVersionConflictError', async () => {
  const cart = 'race';
  await handle(store, cart, (s) => decide(add('shoes', 1), s));
  // Both decide on version 1n before either appends.
  let arrived = 0;
  let release!: () => void;
  const bothRead = new Promise<void>((r) => (release = r));
  const racer = (productId: string) =>
    handle(store, cart, async (s) => {
      if (++arrived === 2) release();
      await bothRead;
      return decide(add(productId, 1), s);
    });
  const results = await Promise.allSettled([racer('socks'), racer('hat')]);
  const won = results.filter((r) => r.status === 'fulfilled');
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  expect([won.length, lost.length]).toEqual([1, 1]);
  expect(lost[0].reason).toBeInstanceOf(ExpectedVersionConflictError);
  expect(isExpectedVersionConflictError(lost[0].reason)).toBe(true);
  expect([lost[0].reason.current, lost[0].reason.expected]).toEqual(['2', '1']);
  expect((await store.readStream('shoppingcart-race')).currentStreamVersion).toBe(2n);

  // The same race with Emmett's retry on conflicts: the loser reads again and both products land.
  arrived = 0;
  const again = new Promise<void>((r) => (release = r));
  const retrying = (productId: string) =>
    handle(
      store,
      cart,
      async (s) => {
        if (++arrived === 2) release();
        await again;
        return decide(add(productId, 1), s);
      },
      { retry: { onVersionConflict: 5 } },
    );
  const [a, b] = await Promise.all([retrying('belt'), retrying('scarf')]);
  expect([a.nextExpectedStreamVersion, b.nextExpectedStreamVersion].sort()).toEqual([3n, 4n]);
  const winner = results[0].status === 'fulfilled' ? 'socks' : 'hat';
  const final = await store.aggregateStream('shoppingcart-race', { evolve, initialState });
  expect(final).toEqual({
    currentStreamVersion: 4n,
    state: { status: 'Opened', items: { shoes: 1, [winner]: 1, belt: 1, scarf: 1 } },
    streamExists: true,
  });
});

it('STREAM_EXISTS on a stream that does not exist is a conflict, and writes nothing', async () => {
  const err = await store
    .appendToStream('shoppingcart-ghost', [decide(add('shoes', 1), initialState())], {
      expectedStreamVersion: STREAM_EXISTS,
    })
    .catch((e) => e);
  expect(err).toBeInstanceOf(ExpectedVersionConflictError);
  expect([err.current, err.expected]).toEqual(['0', 'STREAM_EXISTS']);
  // Through the CommandHandler, the read fails fast with the same error: the decider never runs.
  let decided = false;
  const viaHandler = handle(
    store,
    'ghost',
    (s) => {
      decided = true;
      return decide(add('shoes', 1), s);
    },
    { expectedStreamVersion: STREAM_EXISTS },
  );
  await expect(viaHandler).rejects.toBeInstanceOf(ExpectedVersionConflictError);
  expect(decided).toBe(false);
  expect(await store.streamExists('shoppingcart-ghost')).toBe(false);
});

it('aggregateStream folds the stream with the decider’s evolve', async () => {
  const cart = 'aggregate';
  await handle(store, cart, [(s) => decide(add('shoes', 1), s), (s) => decide(add('shoes', 2), s)]);
  await handle(store, cart, (s) => decide({ type: 'Cancel', data: { userId: 'u-1', now } }, s));
  await expect(store.aggregateStream('shoppingcart-aggregate', { evolve, initialState })).resolves.toEqual({
    currentStreamVersion: 3n,
    state: { status: 'Canceled' },
    streamExists: true,
  });
  await expect(
    store.aggregateStream('shoppingcart-aggregate', { evolve, initialState, read: { to: 2n } }),
  ).resolves.toEqual({
    currentStreamVersion: 2n,
    state: { status: 'Opened', items: { shoes: 3 } },
    streamExists: true,
  });
  await expect(store.aggregateStream('shoppingcart-none', { evolve, initialState })).resolves.toEqual({
    currentStreamVersion: 0n,
    state: { status: 'Empty' },
    streamExists: false,
  });
});
