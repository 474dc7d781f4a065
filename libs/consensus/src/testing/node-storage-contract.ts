/**
 * The contract of the node's storage port (NodeStorage, node/ports.ts), as one jest suite that runs against
 * any implementation: DurableStorage (segment files, fsync) and MemoryNodeStorage (the in-memory twin the
 * seeded simulator runs the real RaftNode on). The simulator is only worth as much as the twin keeps the
 * durable storage's semantics; this suite pins down the ones the node relies on.
 *
 * Where the two may legitimately differ, the test allows both and says why (look for "Freedom:").
 */
import * as fs from 'fs';
import * as path from 'path';
import { SnapshotChunk } from '../core/ready';
import { ConfigState, Entry, EntryType, HardState, SnapshotMeta, encodeConfig } from '../core/types';
import { crc32c } from '@node-rs/crc32';
import { NodeStorage } from '../node/ports';
import { chunksOf, collect, removeDir, tempDir } from './storage-fixtures';

/**
 * Holds fsyncs: while held, a storage's fsyncs do not complete (its persists stay unresolved); `release`
 * lets every held one complete. The harness routes a storage's fsyncs through the gate it was opened with.
 */
export class FsyncGate {
  private held = false;
  private readonly waiting: (() => void)[] = [];

  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    for (const w of this.waiting.splice(0)) w();
  }

  /** Runs `fn` now, or once released. */
  pass(fn: () => void): void {
    if (this.held) this.waiting.push(fn);
    else fn();
  }

  /** Resolves now, or once released. */
  wait(): Promise<void> {
    return new Promise((resolve) => this.pass(resolve));
  }
}

export interface NodeStorageHarness<S extends NodeStorage> {
  /** A fresh, empty storage whose fsyncs (every one a persist waits for) go through `gate`. */
  open(gate: FsyncGate): Promise<S>;
  /**
   * What a process that died at this very moment finds when it restarts: a new storage holding what `s` had
   * made durable (and possibly more of what it had only written). What survives is captured synchronously,
   * in this call; `s` itself is not affected and may go on. The new storage's fsyncs go through `gate`.
   */
  crash(s: S, gate: FsyncGate): Promise<S>;
  /** fsyncs (group commits) `s` has made so far. */
  syncs(s: S): number;
  /** After each test (every gate is released by then): close what was opened, remove its files. */
  cleanup(): Promise<void>;
}

// ---- fixtures ------------------------------------------------------------------------------------------

function payloadOf(index: number, term: number, bytes: number): Uint8Array {
  const b = Buffer.alloc(bytes);
  for (let k = 0; k < bytes; k++) b[k] = (index * 31 + term * 7 + k) & 255;
  return b;
}

/** A normal entry with a 32-byte payload derived from its index and term. */
function ent(index: number, term: number, bytes = 32): Entry {
  return { index, term, type: EntryType.Normal, data: payloadOf(index, term, bytes) };
}

function ents(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(ent(i, term));
  return out;
}

function configOf(voters: string[]): ConfigState {
  return { voters, outgoing: [], learners: [], addresses: {} };
}

function configEnt(index: number, term: number, voters: string[]): Entry {
  return { index, term, type: EntryType.Config, data: encodeConfig(configOf(voters)) };
}

function hs(term: number, vote: string | null, commit: number): HardState {
  return { term, vote, commit };
}

function chunkOf(meta: SnapshotMeta, bytes: Uint8Array, from: number, to: number): SnapshotChunk {
  return { meta, offset: from, data: bytes.subarray(from, to), done: to >= bytes.length };
}

function bytesOf(n: number, seed: number): Uint8Array {
  const b = Buffer.alloc(n);
  for (let k = 0; k < n; k++) b[k] = (seed * 13 + k * 7) & 255;
  return b;
}

/** A failed contract rule, with a message that says which one. */
function must(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`contract: ${message}`);
}

function describeEntry(e: Entry | undefined): string {
  return e === undefined ? 'nothing' : `${e.index}/${e.term} (type ${e.type}, ${e.data.length} bytes)`;
}

function sameEntry(a: Entry, b: Entry): boolean {
  return (
    a.index === b.index &&
    a.term === b.term &&
    a.type === b.type &&
    Buffer.from(a.data).equals(Buffer.from(b.data))
  );
}

/** Everything the reader view shows, from firstIndex() to lastIndex(). */
function visibleLog(s: NodeStorage): Entry[] {
  const first = s.firstIndex();
  const last = s.lastIndex();
  return last >= first ? s.entries(first, last + 1, Number.MAX_SAFE_INTEGER) : [];
}

/**
 * The reader view shows exactly `want` (contiguous) as the end of the log: lastIndex() is its last index;
 * entries and terms from max(firstIndex(), want[0].index) on are those of `want`.
 */
function expectLog(s: NodeStorage, want: Entry[], what: string): void {
  const last = want.length > 0 ? want[want.length - 1].index : 0;
  must(s.lastIndex() === last, `${what}: lastIndex() is ${s.lastIndex()}, expected ${last}`);
  if (want.length === 0) return;
  const from = Math.max(s.firstIndex(), want[0].index);
  const got = s.entries(from, last + 1, Number.MAX_SAFE_INTEGER);
  must(got.length === last + 1 - from, `${what}: entries(${from}, ${last + 1}) gave ${got.length} entries`);
  for (const e of got) {
    const w = want[e.index - want[0].index];
    must(sameEntry(e, w), `${what}: entry ${e.index} is ${describeEntry(e)}, expected ${describeEntry(w)}`);
    must(s.term(e.index) === w.term, `${what}: term(${e.index}) is ${s.term(e.index)}, expected ${w.term}`);
  }
}

/**
 * The log after a crash is a prefix of one of `candidates` (each a full log from index 1) that holds at
 * least up to `atLeast` (what was durable): unresolved writes may survive, but never as a mix.
 */
function expectPrefixOfOneOf(s: NodeStorage, candidates: Entry[][], atLeast: number, what: string): void {
  const last = s.lastIndex();
  must(last >= atLeast, `${what}: lastIndex() is ${last}, but entries up to ${atLeast} were durable`);
  const got = visibleLog(s);
  const fits = candidates.some(
    (c) => last <= c.length && got.every((e) => e.index <= c.length && sameEntry(e, c[e.index - 1])),
  );
  must(
    fits,
    `${what}: the log ${got.map(describeEntry).join(', ')} is not a prefix of any log that was written`,
  );
}

type Outcome = 'pending' | 'resolved' | 'rejected';

/** The outcome of `p` so far (a function, so each look reads it afresh). */
function watch(p: Promise<void>): () => Outcome {
  let outcome: Outcome = 'pending';
  p.then(
    () => (outcome = 'resolved'),
    () => (outcome = 'rejected'),
  );
  return () => outcome;
}

/** Lets the storage run: a few macrotasks and a short timer (held fsyncs stay held). */
async function settle(): Promise<void> {
  for (let k = 0; k < 3; k++) await new Promise<void>((r) => setImmediate(r));
  await new Promise<void>((r) => setTimeout(r, 20));
  for (let k = 0; k < 3; k++) await new Promise<void>((r) => setImmediate(r));
}

async function rejects(p: Promise<void>, what: string): Promise<Error> {
  const outcome = await p.then(
    () => null,
    (e: Error) => e,
  );
  must(outcome !== null, `${what} was accepted; it must be refused (a rejected promise)`);
  return outcome;
}

// ---- the contract --------------------------------------------------------------------------------------

export function describeNodeStorageContract<S extends NodeStorage>(
  name: string,
  harness: NodeStorageHarness<S>,
): void {
  describe(`NodeStorage contract: ${name}`, () => {
    const gates = new Map<S, FsyncGate>();
    const open = async (): Promise<S> => {
      const gate = new FsyncGate();
      const s = await harness.open(gate);
      gates.set(s, gate);
      return s;
    };
    const crash = async (s: S): Promise<S> => {
      const gate = new FsyncGate();
      const c = await harness.crash(s, gate);
      gates.set(c, gate);
      return c;
    };
    const hold = (s: S) => gates.get(s)!.hold();
    const release = (s: S) => gates.get(s)!.release();

    afterEach(async () => {
      for (const g of gates.values()) g.release();
      gates.clear();
      await harness.cleanup();
    });

    test('a fresh storage is empty', async () => {
      const s = await open();
      expect([s.firstIndex(), s.lastIndex(), s.term(0), s.term(1)]).toEqual([1, 0, 0, undefined]);
      expect(s.entries(1, 1, 1000)).toEqual([]);
      expect(s.snapshotMeta().index).toBe(0);
      expect(s.readSnapshot()).toBeNull();
      const init = s.initialState();
      expect(init.hardState).toEqual(hs(0, null, 0));
      expect(init.config.voters).toEqual([]);
      expect(init.partialSnapshot).toBeUndefined();
    });

    test('a persist shows in the reader view (lastIndex, term, entries, initialState) only once it resolved', async () => {
      const s = await open();
      const log = [ent(1, 2), configEnt(2, 2, ['n1', 'n2']), ent(3, 2)];
      hold(s);
      const w = watch(s.persist({ hardState: hs(2, 'n1', 1), entries: log }));
      await settle();
      must(w() === 'pending', `the persist ${w()} while its fsync was held`);
      must(
        s.lastIndex() === 0,
        `lastIndex() is ${s.lastIndex()} before the persist of 1..3 resolved (its fsync is held): the reader view must show only durable entries`,
      );
      for (const i of [1, 2, 3])
        must(s.term(i) === undefined, `term(${i}) is ${s.term(i)} before it is durable`);
      expect(() => s.entries(1, 2, 1000)).toThrow();
      must(
        s.initialState().config.voters.length === 0,
        `initialState().config shows the configuration entry 2 before it is durable`,
      );
      // Freedom: what initialState().hardState shows while a persist is in flight. The node reads it once, at
      // start, before any persist; DurableStorage reports the latest hard state staged (its commit is
      // advisory and written on close), MemoryNodeStorage only the durable one.
      release(s);
      await settle();
      must(w() === 'resolved', `the persist ${w()} after its fsync was released`);
      expectLog(s, log, 'once resolved');
      expect(s.initialState().hardState).toEqual(hs(2, 'n1', 1));
      expect(s.initialState().config.voters).toEqual(['n1', 'n2']);
    });

    test('what the reader view shows is durable: a crash at that very moment keeps it', async () => {
      const s = await open();
      const log = ents(1, 40, 1);
      const seen: { i: number; last: number; copy: Promise<S> }[] = [];
      const look = (i: number) => seen.push({ i, last: s.lastIndex(), copy: crash(s) });
      const calls: Promise<void>[] = [];
      for (const e of log) {
        const p = s.persist({ entries: [e] });
        calls.push([1, 15, 30, 40].includes(e.index) ? p.then(() => void look(e.index)) : p);
      }
      let done = false;
      const all = Promise.all(calls).then(() => (done = true));
      // Also look between the resolutions, while persists are in flight.
      for (let k = 0; k < 20 && !done; k++) {
        look(0);
        await new Promise<void>((r) => setImmediate(r));
      }
      await all;
      for (const o of seen) {
        if (o.i > 0)
          must(o.last >= o.i, `when the persist of entry ${o.i} resolved, lastIndex() was only ${o.last}`);
        const c = await o.copy;
        must(
          c.lastIndex() >= o.last,
          `the reader view showed entries up to ${o.last}, but a crash at that moment left only up to ${c.lastIndex()}: it showed entries that were not durable`,
        );
        expectPrefixOfOneOf(c, [log], o.last, 'after the crash');
      }
    });

    test('persists resolve in call order; concurrent ones share fsyncs', async () => {
      const s = await open();
      const before = harness.syncs(s);
      const order: number[] = [];
      const calls: Promise<void>[] = [];
      let index = 0;
      for (let k = 1; k <= 60; k++) {
        // Entries only, hard state only, or both.
        const work =
          k % 5 === 0
            ? { hardState: hs(k, 'n1', 0), entries: [] }
            : k % 7 === 0
              ? { hardState: hs(k, 'n2', index), entries: [ent(++index, 1)] }
              : { entries: [ent(++index, 1)] };
        const last = index;
        calls.push(
          s.persist(work).then(() => {
            order.push(k);
            must(
              s.lastIndex() >= last,
              `when persist #${k} resolved, lastIndex() was ${s.lastIndex()} < ${last}`,
            );
          }),
        );
      }
      await Promise.all(calls);
      expect(order).toEqual(Array.from({ length: 60 }, (_, k) => k + 1));
      const syncs = harness.syncs(s) - before;
      must(syncs < 60, `60 concurrent persists took ${syncs} fsyncs: they must share (group commit)`);
      expect(s.initialState().hardState).toEqual(hs(60, 'n1', 0));
      expectLog(s, ents(1, index, 1), 'after all resolved');
    });

    test('entries from an index at or below lastIndex() truncate the log there (also a configuration entry)', async () => {
      const s = await open();
      const old = [
        ent(1, 1),
        configEnt(2, 1, ['a']),
        ent(3, 1),
        configEnt(4, 1, ['a', 'b', 'c']),
        ...ents(5, 10, 1),
      ];
      await s.persist({ entries: old });
      expect(s.initialState().config.voters).toEqual(['a', 'b', 'c']);
      await s.persist({ entries: ents(4, 6, 2) });
      const now = [...old.slice(0, 3), ...ents(4, 6, 2)];
      expectLog(s, now, 'after the truncating persist');
      must(s.term(7) === undefined, `term(7) is ${s.term(7)} after the log was truncated to 6`);
      expect(() => s.entries(5, 8, 1000)).toThrow();
      expect(s.initialState().config.voters).toEqual(['a']);
      const c = await crash(s);
      expectLog(c, now, 'after a crash');
      expect(c.initialState().config.voters).toEqual(['a']);
    });

    test('a truncation in flight: the reader view never shows the new entries before they are durable', async () => {
      const s = await open();
      const old = ents(1, 10, 1);
      await s.persist({ entries: old });
      hold(s);
      const p = s.persist({ entries: ents(6, 7, 2) });
      await settle();
      // Freedom: while the overwrite is in flight, DurableStorage hides the old suffix at once (lastIndex()
      // drops to 5); MemoryNodeStorage keeps showing it (it is still durable) until the overwrite is. Either
      // way the reader view shows only durable entries, never the new ones.
      const last = s.lastIndex();
      must(last >= 5 && last <= 10, `lastIndex() is ${last} while the overwrite from 6 is in flight`);
      expectLog(s, old.slice(0, last), 'while the overwrite is in flight');
      const c = await crash(s);
      expectPrefixOfOneOf(c, [old, [...old.slice(0, 5), ...ents(6, 7, 2)]], 5, 'after a crash mid-overwrite');
      release(s);
      await p;
      expectLog(s, [...old.slice(0, 5), ...ents(6, 7, 2)], 'once the overwrite resolved');
    });

    test('a persist may truncate entries whose own persist is still in flight', async () => {
      const s = await open();
      const a = watch(s.persist({ entries: ents(1, 10, 1) }));
      const b = s.persist({ entries: ents(6, 7, 2) });
      await b;
      must(a() === 'resolved', `the earlier persist is ${a()} once the later one resolved`);
      const now = [...ents(1, 5, 1), ...ents(6, 7, 2)];
      expectLog(s, now, 'after both');
      expectLog(await crash(s), now, 'after a crash');
    });

    test('entries that leave a gap (or go back in index or term) are refused and change nothing', async () => {
      const s = await open();
      await s.persist({ hardState: hs(1, 'a', 5), entries: ents(1, 5, 1) });
      const bad: [string, Entry[]][] = [
        ['a persist of 7..8 after 5', ents(7, 8, 3)],
        ['a batch 6, 8', [ent(6, 3), ent(8, 3)]],
        ['a batch of terms 3, 2', [ent(6, 3), ent(7, 2)]],
      ];
      for (const [what, entries] of bad) {
        await rejects(s.persist({ hardState: hs(3, 'b', 5), entries }), what);
        const h = s.initialState().hardState;
        must(
          h.term === 1 && h.vote === 'a',
          `a refused persist (${what}) changed the hard state to ${h.term}/${h.vote}`,
        );
      }
      expectLog(s, ents(1, 5, 1), 'after the refused persists');
      expect(s.initialState().hardState).toEqual(hs(1, 'a', 5));
      const c = await crash(s);
      expectLog(c, ents(1, 5, 1), 'after a crash');
      expect({ ...c.initialState().hardState, commit: 0 }).toEqual(hs(1, 'a', 0));
      // A refused call does not stop the storage.
      await s.persist({ entries: ents(6, 6, 1) });
      expectLog(s, ents(1, 6, 1), 'after a fitting persist');
    });

    test('after a crash everything whose persist resolved is there: hard state, entries, snapshot', async () => {
      const s = await open();
      const log = [...ents(1, 2, 1), configEnt(3, 3, ['n1', 'n2', 'n3']), ...ents(4, 6, 3)];
      await s.persist({ hardState: hs(3, 'n2', 4), entries: log });
      const bytes = bytesOf(3000, 1);
      const meta = { index: 2, term: 1, config: configOf(['n1']) };
      await s.saveSnapshot(meta, chunksOf(bytes, 1000));
      const c = await crash(s);
      const init = c.initialState();
      expect([init.hardState.term, init.hardState.vote]).toEqual([3, 'n2']);
      // Freedom: commit is advisory (HardState.commit): DurableStorage writes it durably only with a term or
      // vote change (or on close); after a crash it may be older, never newer than what was persisted.
      must(init.hardState.commit <= 4, `commit after the crash is ${init.hardState.commit} > 4`);
      expectLog(c, log, 'after the crash');
      expect(c.snapshotMeta()).toEqual(meta);
      expect(c.term(2)).toBe(1);
      expect(Buffer.from(await collect(c.readSnapshot())).equals(Buffer.from(bytes))).toBe(true);
      expect(init.config.voters).toEqual(['n1', 'n2', 'n3']);
      expect(init.partialSnapshot).toBeUndefined();
    });

    test('initialState().hardState.commit is clamped to lastIndex(); a lost commit is never a newer one', async () => {
      const s = await open();
      await s.persist({ hardState: hs(1, 'a', 9), entries: ents(1, 3, 1) });
      expect(s.initialState().hardState).toEqual(hs(1, 'a', 3));
      await s.persist({ hardState: hs(1, 'a', 2), entries: [] });
      await s.persist({ hardState: hs(1, 'a', 3), entries: [] });
      const c = await crash(s);
      const init = c.initialState().hardState;
      expect([init.term, init.vote]).toEqual([1, 'a']);
      // Freedom: a commit-only change may be lost in a crash (commit is advisory), see above.
      must(init.commit <= 3, `commit after the crash is ${init.commit}, past the last index 3`);
    });

    test('a persist not yet resolved may or may not survive a crash; what survives is a prefix of what was written', async () => {
      const s = await open();
      await s.persist({ hardState: hs(1, 'a', 0), entries: ents(1, 5, 1) });
      hold(s);
      const p = s.persist({ hardState: hs(2, 'b', 0), entries: ents(6, 8, 2) });
      await settle();
      const c = await crash(s);
      expectPrefixOfOneOf(
        c,
        [[...ents(1, 5, 1), ...ents(6, 8, 2)]],
        5,
        'after a crash with a persist in flight',
      );
      const h = c.initialState().hardState;
      must(
        (h.term === 1 && h.vote === 'a') || (h.term === 2 && h.vote === 'b'),
        `hard state after the crash is ${h.term}/${h.vote}: neither the durable one nor the one in flight`,
      );
      release(s);
      await p;
    });

    test('snapshot chunks build a partial snapshot that survives a crash; installSnapshot publishes it', async () => {
      const s = await open();
      await s.persist({ hardState: hs(3, 'n1', 2), entries: ents(1, 4, 1) });
      const meta = { index: 20, term: 3, config: configOf(['n1', 'n2']) };
      const bytes = bytesOf(10, 2);
      await s.persist({ entries: [], snapshotChunk: chunkOf(meta, bytes, 0, 4) });
      expect(s.initialState().partialSnapshot).toEqual({ index: 20, term: 3, bytes: 4 });
      const c = await crash(s);
      expect(c.initialState().partialSnapshot).toEqual({ index: 20, term: 3, bytes: 4 });
      expect(c.snapshotMeta().index).toBe(0);
      await c.persist({ entries: [], snapshotChunk: chunkOf(meta, bytes, 4, 10) });
      expect(c.initialState().partialSnapshot).toEqual({ index: 20, term: 3, bytes: 10 });
      await c.installSnapshot(meta);
      expect(c.snapshotMeta()).toEqual(meta);
      expect([c.term(20), c.lastIndex(), c.firstIndex(), c.term(4)]).toEqual([3, 20, 21, undefined]);
      expect(Buffer.from(await collect(c.readSnapshot())).equals(Buffer.from(bytes))).toBe(true);
      const parts: Uint8Array[] = [];
      for (let offset = 0, done = false; !done;) {
        const chunk = c.snapshotChunk(offset, 3);
        if (chunk === 'pending') throw new Error('contract: snapshotChunk() pending for a stored snapshot');
        parts.push(chunk.data);
        offset += chunk.data.length;
        done = chunk.done;
      }
      expect(Buffer.concat(parts).equals(Buffer.from(bytes))).toBe(true);
      const init = c.initialState();
      expect(init.partialSnapshot).toBeUndefined();
      must(
        init.hardState.commit >= 20,
        `commit is ${init.hardState.commit} after installing the snapshot at 20`,
      );
      expect(init.config.voters).toEqual(['n1', 'n2']);
      const d = await crash(c);
      expect(d.snapshotMeta()).toEqual(meta);
      expect([d.lastIndex(), d.firstIndex(), d.term(20)]).toEqual([20, 21, 3]);
      expect(d.initialState().partialSnapshot).toBeUndefined();
      // Freedom: commit is advisory; DurableStorage does not write the raised commit durably (a restarted core
      // counts everything up to the snapshot as committed anyway).
      expect(Buffer.from(await collect(d.readSnapshot())).equals(Buffer.from(bytes))).toBe(true);
      // The log continues after the snapshot; nothing at or below it can be written.
      await rejects(d.persist({ entries: [ent(20, 3)] }), 'a persist at the snapshot index');
      await d.persist({ entries: [ent(21, 3)] });
      expectLog(d, [ent(21, 3)], 'after the snapshot');
    });

    test('a snapshot chunk that does not continue the partial snapshot is refused, with its whole persist', async () => {
      const s = await open();
      await s.persist({ hardState: hs(1, 'a', 0), entries: ents(1, 3, 1) });
      const meta = { index: 20, term: 3, config: configOf(['n1']) };
      const bytes = bytesOf(10, 3);
      await rejects(
        s.persist({ entries: [], snapshotChunk: chunkOf(meta, bytes, 4, 10) }),
        'a chunk at offset 4 without a transfer',
      );
      await s.persist({ entries: [], snapshotChunk: chunkOf(meta, bytes, 0, 4) });
      const bad: [string, SnapshotChunk][] = [
        ['a chunk at offset 6 after 4 bytes', chunkOf(meta, bytes, 6, 10)],
        ['a chunk at offset 2 after 4 bytes', chunkOf(meta, bytes, 2, 10)],
        ['a chunk of another term', { ...chunkOf(meta, bytes, 4, 10), meta: { ...meta, term: 4 } }],
        ['a chunk of another index', { ...chunkOf(meta, bytes, 4, 10), meta: { ...meta, index: 21 } }],
      ];
      for (const [what, chunk] of bad) {
        await rejects(
          s.persist({ hardState: hs(2, 'b', 0), entries: ents(4, 5, 2), snapshotChunk: chunk }),
          what,
        );
      }
      expectLog(s, ents(1, 3, 1), 'after the refused chunks');
      expect(s.initialState().hardState).toEqual(hs(1, 'a', 0));
      expect(s.initialState().partialSnapshot).toEqual({ index: 20, term: 3, bytes: 4 });
      const c = await crash(s);
      expect(c.initialState().partialSnapshot).toEqual({ index: 20, term: 3, bytes: 4 });
      expectLog(c, ents(1, 3, 1), 'after a crash');
      await s.persist({ entries: [], snapshotChunk: chunkOf(meta, bytes, 4, 10) });
      await s.installSnapshot(meta);
      expect(s.snapshotMeta()).toEqual(meta);
    });

    test('a first chunk (offset 0) starts over, replacing an earlier transfer', async () => {
      const s = await open();
      const a = { index: 20, term: 3, config: configOf(['n1']) };
      const b = { index: 30, term: 4, config: configOf(['n1', 'n2']) };
      const bytesA = bytesOf(10, 4);
      const bytesB = bytesOf(6, 5);
      await s.persist({ entries: [], snapshotChunk: chunkOf(a, bytesA, 0, 10) });
      await s.persist({ entries: [], snapshotChunk: chunkOf(b, bytesB, 0, 3) });
      expect(s.initialState().partialSnapshot).toEqual({ index: 30, term: 4, bytes: 3 });
      await rejects(s.installSnapshot(a), 'installing the replaced transfer');
      await s.persist({ entries: [], snapshotChunk: chunkOf(b, bytesB, 3, 6) });
      await s.installSnapshot(b);
      expect(Buffer.from(await collect(s.readSnapshot())).equals(Buffer.from(bytesB))).toBe(true);
    });

    test('installing without the complete bytes is refused and keeps the transfer', async () => {
      const s = await open();
      await s.persist({ entries: ents(1, 3, 1) });
      const meta = { index: 20, term: 3, config: configOf(['n1']) };
      const bytes = bytesOf(10, 6);
      await rejects(s.installSnapshot(meta), 'installing with no transfer');
      await s.persist({ entries: [], snapshotChunk: chunkOf(meta, bytes, 0, 4) });
      await rejects(s.installSnapshot(meta), 'installing with 4 of 10 bytes (no chunk marked done)');
      await rejects(s.installSnapshot({ ...meta, term: 2 }), 'installing a snapshot of another term');
      expect(s.snapshotMeta().index).toBe(0);
      expect(s.initialState().partialSnapshot).toEqual({ index: 20, term: 3, bytes: 4 });
      expectLog(s, ents(1, 3, 1), 'after the refused installs');
      await s.persist({ entries: ents(4, 4, 1), snapshotChunk: chunkOf(meta, bytes, 4, 10) });
      await s.installSnapshot(meta);
      expect([s.snapshotMeta().index, s.lastIndex()]).toEqual([20, 20]);
    });

    test('installSnapshot keeps a log suffix that matches the snapshot and drops one that conflicts', async () => {
      const bytes = bytesOf(8, 7);
      const install = async (s: S, meta: SnapshotMeta) => {
        await s.persist({ entries: [], snapshotChunk: chunkOf(meta, bytes, 0, 8) });
        await s.installSnapshot(meta);
      };
      // Matching: the entry at the snapshot's index has the snapshot's term.
      const s = await open();
      await s.persist({ entries: ents(1, 10, 1) });
      await install(s, { index: 5, term: 1, config: configOf(['n1']) });
      for (const x of [s, await crash(s)]) {
        expect([x.snapshotMeta().index, x.term(5)]).toEqual([5, 1]);
        // Freedom: installSnapshot discards the log up to the snapshot, but DurableStorage drops whole
        // segments only: firstIndex() may stay at or below the snapshot's index (those entries still read).
        must(x.firstIndex() <= 6, `firstIndex() is ${x.firstIndex()} > 6 after keeping the suffix 6..10`);
        expectLog(x, ents(6, 10, 1), 'the kept suffix');
        for (let i = 1; i < x.firstIndex(); i++)
          if (i !== 5) must(x.term(i) === undefined, `term(${i}) is ${x.term(i)} below firstIndex()`);
      }
      must(s.initialState().hardState.commit >= 5, `commit ${s.initialState().hardState.commit} < 5`);
      // Conflicting: the log's entry 5 has another term.
      const t = await open();
      await t.persist({ entries: ents(1, 10, 1) });
      await install(t, { index: 5, term: 2, config: configOf(['n1']) });
      for (const x of [t, await crash(t)])
        expect([x.firstIndex(), x.lastIndex(), x.term(5), x.term(6)]).toEqual([6, 5, 2, undefined]);
      // Past the log's end.
      const u = await open();
      await u.persist({ entries: ents(1, 10, 1) });
      await install(u, { index: 20, term: 2, config: configOf(['n1']) });
      for (const x of [u, await crash(u)])
        expect([x.firstIndex(), x.lastIndex(), x.term(20), x.term(10)]).toEqual([21, 20, 2, undefined]);
    });

    test('saveSnapshot stores the bytes (stream or parts); an older one is ignored; one past the last index is refused', async () => {
      const s = await open();
      await s.persist({ entries: ents(1, 10, 2) });
      const a = bytesOf(2500, 8);
      const metaA = { index: 5, term: 2, config: configOf(['n1']) };
      await s.saveSnapshot(metaA, chunksOf(a, 1000));
      expect(s.snapshotMeta()).toEqual(metaA);
      expect(s.term(5)).toBe(2);
      expect(Buffer.from(await collect(s.readSnapshot())).equals(Buffer.from(a))).toBe(true);
      expectLog(s, ents(1, 10, 2), 'the log after saveSnapshot');
      await s.saveSnapshot({ ...metaA, index: 3 }, chunksOf(bytesOf(10, 9), 10));
      await s.saveSnapshot(metaA, chunksOf(bytesOf(10, 9), 10));
      expect(s.snapshotMeta()).toEqual(metaA);
      expect(Buffer.from(await collect(s.readSnapshot())).equals(Buffer.from(a))).toBe(true);
      await rejects(
        s.saveSnapshot({ ...metaA, index: 11 }, chunksOf(a, 1000)),
        'a snapshot at 11 past the last index 10',
      );
      expect(s.snapshotMeta()).toEqual(metaA);
      // Parts: byte strings and a prefix of a file (the file may be longer; only `length` bytes belong).
      const dir = tempDir('contract-parts-');
      try {
        const file = path.join(dir, 'events');
        const fileBytes = bytesOf(5000, 10);
        fs.writeFileSync(file, fileBytes);
        const head = bytesOf(7, 11);
        const metaB = { index: 8, term: 2, config: configOf(['n1', 'n2']) };
        await s.saveSnapshot(metaB, [
          { bytes: head },
          { file, length: 4000, crc32c: crc32c(Buffer.from(fileBytes.subarray(0, 4000))) },
          { bytes: head },
        ]);
        const want = Buffer.concat([head, fileBytes.subarray(0, 4000), head]);
        for (const x of [s, await crash(s)]) {
          expect(x.snapshotMeta()).toEqual(metaB);
          expect(Buffer.from(await collect(x.readSnapshot())).equals(want)).toBe(true);
        }
      } finally {
        removeDir(dir);
      }
    });

    test('saveSnapshot is checked against the durable log: past lastIndex() when called it is refused', async () => {
      const s = await open();
      await s.persist({ entries: ents(1, 3, 1) });
      hold(s);
      const p = s.persist({ entries: ents(4, 6, 1) });
      await settle();
      // The node may snapshot entries it applied before its own persist of them is durable (they are
      // committed on a majority): the storage refuses then (the node retries later), as it never holds a
      // snapshot past its durable log.
      const w = watch(
        s.saveSnapshot({ index: 5, term: 1, config: configOf(['n1']) }, chunksOf(bytesOf(10, 12), 10)),
      );
      await settle();
      must(
        w() === 'rejected',
        `a snapshot at 5 while the persist of 4..6 is in flight (durable log ends at 3) is ${w()}; it must be refused at once`,
      );
      release(s);
      await p;
      expect(s.snapshotMeta().index).toBe(0);
      await s.saveSnapshot({ index: 5, term: 1, config: configOf(['n1']) }, chunksOf(bytesOf(10, 12), 10));
      expect(s.snapshotMeta().index).toBe(5);
    });

    test('compact(i) drops entries up to min(i, snapshot index) and firstIndex() moves', async () => {
      const s = await open();
      const log: Entry[] = [];
      for (let i = 1; i <= 300; i++)
        log.push(i === 260 ? configEnt(260, 2, ['n1', 'n2', 'n3']) : ent(i, i < 100 ? 1 : 2));
      for (let i = 0; i < 300; i += 10) await s.persist({ entries: log.slice(i, i + 10) });
      await s.compact(200);
      must(s.firstIndex() === 1, `compact(200) with no snapshot moved firstIndex() to ${s.firstIndex()}`);
      const meta = { index: 250, term: 2, config: configOf(['n1', 'n2']) };
      await s.saveSnapshot(meta, chunksOf(bytesOf(100, 13), 100));
      await s.compact(100);
      // Freedom: DurableStorage drops whole segment files only; firstIndex() moves at most to i + 1.
      const f1 = s.firstIndex();
      must(f1 >= 1 && f1 <= 101, `firstIndex() is ${f1} after compact(100), expected ≤ 101`);
      await s.compact(400);
      const f2 = s.firstIndex();
      must(
        f2 > 1 && f2 >= f1 && f2 <= 251,
        `firstIndex() is ${f2} after compact(400) with the snapshot at 250`,
      );
      for (const x of [s, await crash(s)]) {
        const f = x.firstIndex();
        must(f > 1 && f <= 251, `firstIndex() is ${f} (after a crash), expected in 2..251`);
        expectLog(x, log, 'after compaction');
        expect(x.term(250)).toBe(2);
        if (f - 1 !== 250)
          must(x.term(f - 1) === undefined, `term(${f - 1}) below firstIndex() is ${x.term(f - 1)}`);
        expect(() => x.entries(f - 1, f + 1, 1000)).toThrow();
        expect(x.initialState().config.voters).toEqual(['n1', 'n2', 'n3']);
        expect(x.snapshotMeta()).toEqual(meta);
      }
    });

    test('entries(lo, hi, maxBytes) returns at least one entry, then stops before maxBytes of payload', async () => {
      const s = await open();
      await s.persist({ entries: ents(1, 10, 1) }); // 32-byte payloads
      expect(s.entries(1, 11, 0).map((e) => e.index)).toEqual([1]);
      expect(s.entries(1, 11, 95).map((e) => e.index)).toEqual([1, 2]);
      expect(s.entries(1, 11, 96).map((e) => e.index)).toEqual([1, 2, 3]);
      expect(s.entries(1, 11, 97).map((e) => e.index)).toEqual([1, 2, 3]);
      expect(s.entries(3, 5, 1 << 20).map((e) => e.index)).toEqual([3, 4]);
      expect(s.entries(4, 4, 1 << 20)).toEqual([]);
      expect(s.entries(1, 11, 1 << 20)).toHaveLength(10);
      expect(() => s.entries(0, 2, 1000)).toThrow();
      expect(() => s.entries(1, 12, 1000)).toThrow();
    });
  });
}
