import { ordersProjection } from '../examples/orders';
import { EventStoreStateMachine } from '../state-machine';
import { appendEntry, ev, removeDir, tempDir } from '../testing/fixtures';
import { builtInProjections, categoryOf } from './builtins';
import { defineProjection, ProjectionDefinition } from './define';
import { ProjectionEngine } from './engine';

jest.setTimeout(60_000);

const quietLogger = { log: () => undefined, warn: () => undefined, error: () => undefined };

describe.each(['memory', 'disk'] as const)('projections (partition states in %s)', (kind) => {
  const projectionState =
    kind === 'disk' ? { kind, memtableKeysMax: 3, runsPerMerge: 2, cacheBytes: 4096 } : { kind };
  const dirs: string[] = [];
  const stores: EventStoreStateMachine[] = [];

  async function open(
    dir: string,
    extra: ProjectionDefinition<any>[] = [ordersProjection],
    opts: { replayChunkEvents?: number } = {},
  ) {
    const engine = new ProjectionEngine([...builtInProjections(), ...extra], {
      logger: quietLogger,
      ...opts,
    });
    const sm = await EventStoreStateMachine.open(dir, { projections: engine, projectionState });
    stores.push(sm);
    return sm;
  }

  function newDir() {
    const d = tempDir();
    dirs.push(d);
    return d;
  }

  function append(
    sm: EventStoreStateMachine,
    streamId: string,
    events: Parameters<typeof appendEntry>[2],
    now?: Date,
  ) {
    return sm.apply(appendEntry(sm.appliedIndex() + 1, streamId, events, 'any', now));
  }

  function seedOrders(sm: EventStoreStateMachine) {
    append(
      sm,
      'order-1',
      [ev('OrderPlaced', { customerId: 'c1', items: [{ sku: 'a', quantity: 2, unitPrice: 1.5 }] })],
      new Date('2026-01-01T00:00:00.000Z'),
    );
    append(
      sm,
      'order-1',
      [ev('ItemAdded', { sku: 'b', quantity: 1, unitPrice: 10 })],
      new Date('2026-01-01T00:00:01.000Z'),
    );
    append(sm, 'order-2', [
      ev('OrderPlaced', { customerId: 'c2' }),
      ev('ItemAdded', { sku: 'z', quantity: 3, unitPrice: 2 }),
    ]);
    append(sm, 'order-1', [ev('OrderShipped', { carrier: 'ups' })], new Date('2026-01-01T00:00:02.000Z'));
    append(sm, 'order-2', [ev('OrderCancelled', { reason: 'changed mind' })]);
    append(sm, 'cart-9', [ev('CartOpened')]);
  }

  afterEach(async () => {
    for (const sm of stores.splice(0)) await sm.close();
    for (const d of dirs.splice(0)) removeDir(d);
  });

  it('categoryOf follows API.md', () => {
    expect(categoryOf('order-42')).toBe('order');
    expect(categoryOf('order-42-x')).toBe('order');
    expect(categoryOf('plain')).toBe('plain');
  });

  it('built-ins and the orders example fold applied events', async () => {
    const sm = await open(newDir());
    seedOrders(sm);
    expect(sm.projections.getPartition('streams', 'order-1')).toEqual({
      lastRevision: 2,
      eventCount: 3,
      lastEventType: 'OrderShipped',
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:02.000Z',
    });
    expect(sm.projections.get('event-types')).toEqual({
      name: 'event-types',
      position: 6,
      state: { OrderPlaced: 2, ItemAdded: 2, OrderShipped: 1, OrderCancelled: 1, CartOpened: 1 },
    });
    expect(sm.projections.get('categories')!.state).toEqual({
      order: { streams: 2, events: 6 },
      cart: { streams: 1, events: 1 },
    });
    expect(sm.projections.getPartition('orders', '1')).toMatchObject({
      orderId: '1',
      status: 'shipped',
      customerId: 'c1',
      total: 13,
      items: [
        { sku: 'a', quantity: 2, unitPrice: 1.5 },
        { sku: 'b', quantity: 1, unitPrice: 10 },
      ],
    });
    expect(sm.projections.getPartition('orders', '2')).toMatchObject({ status: 'cancelled', total: 6 });
    expect(sm.projections.getPartition('orders', '9')).toBeUndefined();
    expect(sm.projections.get('nope')).toBeUndefined();
    expect(sm.projections.list().map((p) => [p.name, p.status, p.position, p.lag])).toEqual([
      ['streams', 'running', 6, 0],
      ['event-types', 'running', 6, 0],
      ['categories', 'running', 6, 0],
      ['orders', 'running', 6, 0],
    ]);
  });

  it('reset rebuilds by replay in bounded chunks and ends equal; appends during the rebuild are not lost', async () => {
    const sm = await open(newDir(), [ordersProjection], { replayChunkEvents: 7 });
    for (let i = 0; i < 200; i++) seedOrdersN(sm, i);
    const before = snapshotOf(sm);
    sm.projections.reset('streams');
    sm.projections.reset('orders');
    expect(sm.projections.list().find((p) => p.name === 'streams')).toMatchObject({
      status: 'rebuilding',
      position: -1,
    });
    // Events appended while rebuilding are picked up by the replay, not fed twice.
    append(sm, 'order-new', [ev('OrderPlaced', {})]);
    await sm.projections.whenIdle();
    append(sm, 'order-new', [ev('OrderShipped', {})]);
    const reference = await open(newDir());
    for (let i = 0; i < 200; i++) seedOrdersN(reference, i);
    append(reference, 'order-new', [ev('OrderPlaced', {})]);
    append(reference, 'order-new', [ev('OrderShipped', {})]);
    expect(snapshotOf(sm)).toEqual(snapshotOf(reference));
    expect(before.streams).not.toEqual(snapshotOf(sm).streams);
    expect(sm.projections.list().every((p) => p.status === 'running' && p.lag === 0)).toBe(true);
    expect(() => sm.projections.reset('nope')).toThrow(/not registered/);
  });

  it('projections are equal after a restart (checkpoint in the cut + replay of the log) ', async () => {
    const dir = newDir();
    const sm = await open(dir);
    const log = Array.from({ length: 60 }, (_, i) =>
      appendEntry(i + 1, `order-${i % 7}`, [
        ev(i % 5 ? 'ItemAdded' : 'OrderPlaced', { sku: `k${i % 3}`, quantity: 1, unitPrice: i }),
      ]),
    );
    for (const e of log.slice(0, 40)) sm.apply(e);
    await sm.snapshot();
    for (const e of log.slice(40)) sm.apply(e);
    const expected = snapshotOf(sm);
    await sm.close();
    const reopened = await open(dir);
    for (const e of log.slice(reopened.appliedIndex())) reopened.apply(e);
    await reopened.projections.whenIdle();
    expect(snapshotOf(reopened)).toEqual(expected);
  });

  it('a projection missing from the cut, or of another version, is rebuilt at start-up', async () => {
    const dir = newDir();
    const counter = (version: number) =>
      defineProjection<number>({
        name: 'counter',
        version,
        initial: () => 0,
        handle: (n, e) => n + (version === 1 ? 1 : e.revision + 1),
      });
    const sm = await open(dir, []);
    for (let i = 0; i < 10; i++) append(sm, 'x', [ev('E')]);
    await sm.snapshot();
    await sm.close();
    const withCounter = await open(dir, [counter(1)]);
    await withCounter.projections.whenIdle();
    expect(withCounter.projections.get('counter')).toEqual({ name: 'counter', position: 9, state: 10 });
    await withCounter.snapshot();
    await withCounter.close();
    const v2 = await open(dir, [counter(2)]);
    await v2.projections.whenIdle();
    expect(v2.projections.get('counter')!.state).toBe(55);
  });

  it('a throwing handler faults its projection (others keep running) until reset', async () => {
    let explode = true;
    const fragile = defineProjection<number>({
      name: 'fragile',
      initial: () => 0,
      handle: (n, e) => {
        if (explode && e.type === 'Boom') throw new Error('kaboom');
        return n + 1;
      },
    });
    const sm = await open(newDir(), [fragile]);
    append(sm, 's', [ev('A'), ev('Boom'), ev('C')]);
    const info = sm.projections.list().find((p) => p.name === 'fragile')!;
    expect(info).toMatchObject({ status: 'faulted', position: 0 });
    expect(info.error).toMatch(/kaboom/);
    expect(sm.projections.list().find((p) => p.name === 'streams')).toMatchObject({
      status: 'running',
      position: 2,
    });
    explode = false;
    sm.projections.reset('fragile');
    await sm.projections.whenIdle();
    expect(sm.projections.get('fragile')).toEqual({ name: 'fragile', position: 2, state: 3 });
  });

  it('reports rebuild progress (position, lag, events/s, eta) and logs it', async () => {
    const lines: string[] = [];
    const engine = new ProjectionEngine(builtInProjections(), {
      logger: { log: (m) => lines.push(m), warn: () => undefined, error: () => undefined },
      replayChunkEvents: 10,
      replaySliceMs: 0,
      progressLogMs: 0,
    });
    const dir = newDir();
    const sm = await EventStoreStateMachine.open(dir, { projections: engine, projectionState });
    stores.push(sm);
    for (let i = 0; i < 100; i++) append(sm, `s-${i % 4}`, [ev('E')]);
    engine.reset('categories');
    const seen = new Set<string>();
    for (let i = 0; i < 10_000 && engine.list()[2].status === 'rebuilding'; i++) {
      const p = engine.list()[2];
      seen.add(p.status);
      expect(p.lag).toBe(99 - p.position);
      await new Promise((r) => setImmediate(r));
    }
    expect(seen.has('rebuilding')).toBe(true);
    expect(engine.list()[2]).toMatchObject({
      status: 'running',
      position: 99,
      lag: 0,
      eventsPerSecond: 0,
      etaSeconds: 0,
    });
    expect(lines.some((l) => /projection categories rebuilding: position \d+ of 99/.test(l))).toBe(true);
    expect(lines.some((l) => /projection categories rebuilt: 100 events/.test(l))).toBe(true);
  });

  it('rejects duplicate names and bad definitions', () => {
    expect(() => new ProjectionEngine([...builtInProjections(), builtInProjections()[0]])).toThrow(/twice/);
    expect(() => defineProjection({ name: 'bad name!', initial: () => 0, handle: (n) => n })).toThrow(/name/);
  });
});

function seedOrdersN(sm: EventStoreStateMachine, i: number) {
  sm.apply(
    appendEntry(sm.appliedIndex() + 1, `order-${i % 17}`, [
      ev(i % 4 ? 'ItemAdded' : 'OrderPlaced', { sku: `s${i % 5}`, quantity: 1 + (i % 3), unitPrice: i % 11 }),
    ]),
  );
}

function snapshotOf(sm: EventStoreStateMachine) {
  const out: Record<string, unknown> = {};
  for (const name of sm.projections.names()) out[name] = sm.projections.get(name);
  return JSON.parse(JSON.stringify(out));
}
