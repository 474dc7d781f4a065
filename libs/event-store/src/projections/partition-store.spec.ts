import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Prng } from '@app/consensus/testing';
import { EventStoreStateMachine } from '../state-machine';
import { BlockCache } from '../storage/stream-runs/block-cache';
import { KvBlock } from '../storage/stream-runs/kv-run-file';
import { appendEntry, ev } from '../testing/fixtures';
import { PartitionStore, PartitionStoreOptions } from './partition-store';

jest.setTimeout(60_000);

const small: Partial<PartitionStoreOptions> = { memtableKeysMax: 40, runsPerMerge: 3 };

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'partition-store-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

type State = { n: number; tag: string } | null;

/** Folds like a projection would: take, change in place (or replace), put. */
function fold(store: PartitionStore, model: Map<string, State>, key: string, position: number, prng: Prng) {
  let cur = store.take(key) as State | undefined;
  const known = cur !== undefined;
  expect(known).toBe(model.has(key));
  if (known) expect(cur).toEqual(model.get(key));
  if (!known) cur = null;
  let next: State;
  if (cur === null) next = { n: 1, tag: `t${position}` };
  else if (prng.chance(0.5)) {
    cur!.n++; // in place, as the built-in projections do
    next = cur!;
  } else next = { n: cur!.n + 1, tag: `r${position}` };
  store.put(key, next, !known, position);
  model.set(key, JSON.parse(JSON.stringify(next)));
}

function everything(store: PartitionStore, pageSize: number): [string, unknown][] {
  const out: [string, unknown][] = [];
  let after: string | null = null;
  for (let i = 0; i < 100_000; i++) {
    const page = store.page(after, pageSize);
    out.push(...page);
    if (page.length < pageSize) break;
    after = page[page.length - 1][0];
  }
  return out;
}

function sorted(model: Map<string, State>): [string, unknown][] {
  return [...model.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

describe('PartitionStore', () => {
  it.each([
    ['on the merge thread', true],
    ['on the event loop', false],
  ])(
    'agrees with a map through freezes, merges and pages, and a checkpoint installs to the same state (merges %s)',
    async (_, thread) => {
      for (const seed of [1, 2, 3]) {
        const prng = new Prng(seed);
        const cache = new BlockCache<KvBlock>(16 * 1024);
        const store = PartitionStore.install(path.join(dir, `s${seed}`), 'proj-x-', cache, {
          ...small,
          mergeThread: thread,
        });
        const model = new Map<string, State>();
        const checkpoints: { pin: string; model: [string, unknown][]; done: Promise<unknown> }[] = [];
        for (let p = 0; p < 3000; p++) {
          // Mostly new keys, some hot ones, some long cold: every source answers at some point.
          const key = prng.chance(0.4) ? `k-${p}` : `k-${prng.int(0, p)}`;
          fold(store, model, key, p, prng);
          if (p % 97 === 0) {
            const probe = `k-${prng.int(0, p)}`;
            expect(store.get(probe)).toEqual(model.get(probe));
          }
          if (p % 500 === 499) {
            const pin = path.join(dir, `pin-${seed}-${p}`);
            checkpoints.push({ pin, model: sorted(model), done: store.checkpoint(p, pin) });
          }
          // Background writes and merges get turns now and then.
          if (p % 50 === 0) await new Promise((r) => setImmediate(r));
        }
        expect(store.size()).toBe(model.size);
        for (const key of ['k-0', 'k-1', 'k-2999', 'nope', 'k-1500'])
          expect(store.get(key)).toEqual(model.get(key));
        expect(everything(store, 7)).toEqual(sorted(model));
        expect(everything(store, 10_000)).toEqual(sorted(model));
        await store.whenIdle();
        const stats = store.stats();
        expect(stats.runs).toBeGreaterThan(0);
        // Merges keep the run count logarithmic: 3000 folds / 40 per table would be ~70 runs unmerged.
        expect(stats.runs).toBeLessThan(20);
        for (const c of checkpoints) {
          const { runs, count } = (await c.done) as Awaited<ReturnType<PartitionStore['checkpoint']>>;
          const installed = PartitionStore.install(
            path.join(dir, `i-${path.basename(c.pin)}`),
            'proj-x-',
            cache,
            small,
            { dir: c.pin, runs, count },
          );
          expect(installed.size()).toBe(c.model.length);
          expect(everything(installed, 13)).toEqual(c.model);
          await installed.close();
        }
        await store.close();
        expect(fs.existsSync(path.join(dir, `s${seed}`))).toBe(false);
      }
    },
  );

  it('a checkpoint taken just before the store is closed (a reset) still holds every partition', async () => {
    const cache = new BlockCache<KvBlock>(16 * 1024);
    const store = PartitionStore.install(path.join(dir, 's'), 'proj-x-', cache, small);
    const prng = new Prng(5);
    const model = new Map<string, State>();
    for (let p = 0; p < 130; p++) fold(store, model, `k-${p}`, p, prng);
    const pin = path.join(dir, 'pin');
    const checkpoint = store.checkpoint(129, pin);
    const closing = store.close();
    const { runs, count } = await checkpoint;
    await closing;
    const installed = PartitionStore.install(path.join(dir, 'i'), 'proj-x-', cache, small, {
      dir: pin,
      runs,
      count,
    });
    expect(installed.size()).toBe(130);
    expect(everything(installed, 1000)).toEqual(sorted(model));
    await installed.close();
  });

  it('folds that outpace the writer do not pile frozen tables up (the writer takes longer turns)', async () => {
    const store = PartitionStore.install(path.join(dir, 's'), 'proj-x-', new BlockCache<KvBlock>(1 << 20), {
      memtableKeysMax: 16_384,
    });
    const state = {
      lastRevision: 0,
      eventCount: 1,
      lastEventType: 'OrderPlaced',
      at: '2026-12-07T15:00:00Z',
    };
    let maxBacklog = 0;
    // Like apply under load: a turn of the event loop now and then, never a wait for the writer.
    for (let p = 0; p < 200_000; p++) {
      const key = `order-${p}`;
      const known = store.take(key) !== undefined;
      store.put(key, { ...state, lastRevision: p }, !known, p);
      if (p % 2048 === 0) {
        maxBacklog = Math.max(maxBacklog, store.backlog);
        await new Promise((r) => setImmediate(r));
      }
    }
    expect(maxBacklog).toBeLessThanOrEqual(9);
    expect(store.get('order-123456')).toMatchObject({ lastRevision: 123456 });
    await store.close();
  });

  it('a damaged run is refused with an error naming the file', async () => {
    const cache = new BlockCache<KvBlock>(1024);
    const store = PartitionStore.install(path.join(dir, 's'), 'proj-x-', cache, small);
    const prng = new Prng(9);
    const model = new Map<string, State>();
    for (let p = 0; p < 100; p++) fold(store, model, `k-${p}`, p, prng);
    const pin = path.join(dir, 'pin');
    const { runs, count } = await store.checkpoint(99, pin);
    await store.close();
    const victim = path.join(pin, runs[0].name);
    const bytes = fs.readFileSync(victim);
    bytes[10] ^= 0xff;
    fs.writeFileSync(victim, bytes);
    const installed = PartitionStore.install(path.join(dir, 'i'), 'proj-x-', cache, small, {
      dir: pin,
      runs,
      count,
    });
    expect(() => everything(installed, 1000)).toThrow(new RegExp(`${runs[0].name}.*damaged`));
    await installed.close();
  });
});

describe('partition states on disk in the event store', () => {
  const projectionState = { kind: 'disk' as const, memtableKeysMax: 64, cacheBytes: 8 * 1024 };

  function fill(sm: EventStoreStateMachine, from: number, n: number) {
    for (let i = from; i < from + n; i++)
      sm.apply(
        appendEntry(sm.appliedIndex() + 1, `cart-${i % 700}`, [ev(i % 3 ? 'ItemAdded' : 'Opened', { i })]),
      );
  }

  const view = (sm: EventStoreStateMachine) =>
    JSON.parse(
      JSON.stringify(sm.projections.names().map((n) => sm.projections.get(n, { limit: 10_000 }))),
    ) as unknown;

  it('the heap holds only the table and the cache; a GET pages through every partition', async () => {
    const sm = await EventStoreStateMachine.open(path.join(dir, 'a'), { projectionState });
    fill(sm, 0, 2000);
    await sm.projections.storesIdle();
    const stats = sm.projections.storageStats()!;
    expect(stats.runs).toBeGreaterThan(0);
    expect(stats.tableKeys).toBeLessThan(2 * 64 * 3); // live + frozen tables of three projections
    const first = sm.projections.get('streams', { limit: 300 })!;
    expect(Object.keys(first.state as object)).toHaveLength(300);
    expect(first.next).toBe(Object.keys(first.state as object)[299]);
    const rest = sm.projections.get('streams', { after: first.next, limit: 10_000 })!;
    expect(rest.next).toBeUndefined();
    const all: Record<string, unknown> = { ...(first.state as object), ...(rest.state as object) };
    expect(Object.keys(all)).toHaveLength(700);
    expect(all['cart-5']).toMatchObject({ eventCount: 3, lastRevision: 2 });
    expect(sm.projections.getPartition('streams', 'cart-5')).toEqual(all['cart-5']);
    await sm.close();
  });

  it('restart, snapshot install on another node, and either kind of cut give equal projections', async () => {
    const a = await EventStoreStateMachine.open(path.join(dir, 'a'), { projectionState });
    fill(a, 0, 1500);
    const snap = await a.snapshot();
    fill(a, 1500, 300); // after the cut: replayed from the log in real life, here only on `a`
    const atCut = await EventStoreStateMachine.open(path.join(dir, 'ref'), {});
    fill(atCut, 0, 1500);
    const expected = view(atCut);
    const chunks: Uint8Array[] = [];
    for await (const c of snap.data) chunks.push(c);
    for (const kind of ['disk', 'memory'] as const) {
      const b = await EventStoreStateMachine.open(path.join(dir, `b-${kind}`), {
        projectionState: kind === 'disk' ? projectionState : { kind },
      });
      fill(b, 0, 10); // state the install replaces
      await b.restore(
        { index: snap.index, term: 2, config: { voters: [], outgoing: [], learners: [], addresses: {} } },
        (async function* () {
          yield* chunks;
        })(),
      );
      await b.projections.whenIdle();
      expect(view(b)).toEqual(expected);
      // The node keeps folding on top of the installed states, and a restart loads its own cut.
      fill(b, 1500, 300);
      await b.snapshot();
      await b.close();
      const reopened = await EventStoreStateMachine.open(path.join(dir, `b-${kind}`), {
        projectionState: kind === 'disk' ? { kind: 'memory' } : projectionState,
      });
      await reopened.projections.whenIdle();
      expect(view(reopened)).toEqual(view(a));
      await reopened.close();
    }
    await a.close();
    await atCut.close();
  });
});
