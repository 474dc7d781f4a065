import { readFile } from 'fs/promises';
import { SnapshotChunk } from '../core/ready';
import {
  ConfigState,
  Entry,
  EntryType,
  HardState,
  InitialState,
  SnapshotMeta,
  decodeConfig,
  emptyConfig,
} from '../core/types';
import { NodeStorage, SnapshotContent } from '../node/ports';

type PersistWork = { hardState?: HardState; entries: Entry[]; snapshotChunk?: SnapshotChunk };

/** Everything the "disk" holds. Only changed when a simulated fsync completes. */
interface DurableState {
  hardState: HardState;
  /** Contiguous entries; log[0].index === start. */
  log: Entry[];
  start: number;
  snapshot: { meta: SnapshotMeta; data: Uint8Array };
  /** An incoming snapshot; `done` once its last chunk is in (only then may it be installed). */
  partial: { meta: SnapshotMeta; parts: Uint8Array[]; bytes: number; done: boolean } | null;
}

type Op =
  | { kind: 'persist'; work: PersistWork; resolve: () => void; reject: (e: Error) => void }
  | { kind: 'other'; run: () => void; resolve: () => void; reject: (e: Error) => void };

export interface MemoryNodeStorageOptions {
  /** Simulated fsync time per group commit; 0 = next macrotask. */
  fsyncDelayMs?: number;
  /**
   * Replaces the timer: each fsync (one per group commit or other operation) waits for the promise this
   * returns. The simulator resolves it on virtual time, or never once the node has crashed.
   */
  sync?: () => Promise<void>;
}

const readSnapshotChunkBytes = 64 * 1024;

async function readFilePrefix(file: string, length: number): Promise<Uint8Array> {
  const b = await readFile(file);
  if (b.length < length)
    throw new Error(`memory storage: snapshot part ${file} has ${b.length} bytes, expected ${length}`);
  return b.subarray(0, length);
}

function emptyDurable(): DurableState {
  return {
    hardState: { term: 0, vote: null, commit: 0 },
    log: [],
    start: 1,
    snapshot: { meta: { index: 0, term: 0, config: emptyConfig() }, data: new Uint8Array(0) },
    partial: null,
  };
}

function cloneDurable(d: DurableState): DurableState {
  return {
    hardState: { ...d.hardState },
    log: d.log.slice(),
    start: d.start,
    snapshot: d.snapshot,
    partial: d.partial ? { ...d.partial, parts: d.partial.parts.slice() } : null,
  };
}

/**
 * An asynchronous in-memory NodeStorage for tests. Writes become visible (and "durable") only when a
 * simulated fsync completes; consecutive persist calls share one fsync (group commit). `crashCopy()` gives
 * a new storage holding only what was durable, as a restarted process would find it.
 */
export class MemoryNodeStorage implements NodeStorage {
  private d: DurableState;
  private readonly queue: Op[] = [];
  private draining = false;
  private closed = false;
  private failure: Error | null = null;
  private readonly fsyncDelayMs: number;
  private readonly sync: (() => Promise<void>) | undefined;
  /** Instrumentation for tests. */
  persistCalls = 0;
  fsyncs = 0;
  readonly durableListeners: ((work: PersistWork) => void)[] = [];

  constructor(opts: MemoryNodeStorageOptions = {}, durable?: DurableState) {
    this.fsyncDelayMs = opts.fsyncDelayMs ?? 1;
    this.sync = opts.sync;
    this.d = durable ?? emptyDurable();
  }

  /** A new storage with only the durable state, as after a crash (pending writes are lost). */
  crashCopy(opts: MemoryNodeStorageOptions = {}): MemoryNodeStorage {
    return new MemoryNodeStorage(
      { fsyncDelayMs: opts.fsyncDelayMs ?? this.fsyncDelayMs, sync: opts.sync },
      cloneDurable(this.d),
    );
  }

  /** Every later write fails with `error` (a dying disk). */
  failWrites(error: Error): void {
    this.failure = error;
  }

  /** A planted storage mistake: the durable vote is lost (as if the vote was never fsynced). */
  forgetVote(): void {
    this.d.hardState = { ...this.d.hardState, vote: null };
  }

  durableHardState(): HardState {
    return { ...this.d.hardState };
  }

  // ---- RaftLogReader -------------------------------------------------------------------------------

  firstIndex(): number {
    return this.d.start;
  }

  lastIndex(): number {
    return this.d.start + this.d.log.length - 1;
  }

  term(index: number): number | undefined {
    if (index === this.d.snapshot.meta.index) return this.d.snapshot.meta.term;
    if (index === 0) return 0;
    if (index < this.d.start || index > this.lastIndex()) return undefined;
    return this.d.log[index - this.d.start].term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo < this.d.start || hi > this.lastIndex() + 1 || lo > hi) {
      throw new Error(
        `memory storage: entries [${lo}, ${hi}) outside the log [${this.d.start}, ${this.lastIndex()}]`,
      );
    }
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.d.log[i - this.d.start];
      if (out.length > 0 && bytes + e.data.byteLength > maxBytes) break;
      bytes += e.data.byteLength;
      out.push(e);
    }
    return out;
  }

  snapshotMeta(): SnapshotMeta {
    return this.d.snapshot.meta;
  }

  snapshotChunk(offset: number, maxBytes: number): { data: Uint8Array; done: boolean } {
    const data = this.d.snapshot.data;
    const end = Math.min(data.byteLength, offset + Math.max(1, maxBytes));
    return { data: data.subarray(offset, end), done: end >= data.byteLength };
  }

  // ---- NodeStorage ---------------------------------------------------------------------------------

  initialState(): InitialState {
    const partial = this.d.partial;
    return {
      hardState: { ...this.d.hardState, commit: Math.min(this.d.hardState.commit, this.lastIndex()) },
      config: this.latestConfig(),
      partialSnapshot: partial
        ? { index: partial.meta.index, term: partial.meta.term, bytes: partial.bytes }
        : undefined,
    };
  }

  persist(work: PersistWork): Promise<void> {
    this.persistCalls++;
    return new Promise((resolve, reject) => this.enqueue({ kind: 'persist', work, resolve, reject }));
  }

  installSnapshot(meta: SnapshotMeta): Promise<void> {
    return this.enqueueOther(() => {
      const partial = this.d.partial;
      if (!partial || partial.meta.index !== meta.index || partial.meta.term !== meta.term || !partial.done) {
        throw new Error(
          `memory storage: install of snapshot ${meta.index}/${meta.term} without its complete bytes`,
        );
      }
      const keepsTail = this.term(meta.index) === meta.term && meta.index <= this.lastIndex();
      this.d.log = keepsTail ? this.d.log.slice(meta.index + 1 - this.d.start) : [];
      this.d.start = meta.index + 1;
      this.d.snapshot = { meta, data: Buffer.concat(partial.parts) };
      this.d.partial = null;
      if (this.d.hardState.commit < meta.index)
        this.d.hardState = { ...this.d.hardState, commit: meta.index };
    });
  }

  async saveSnapshot(meta: SnapshotMeta, content: SnapshotContent): Promise<void> {
    // Checked against the durable log when called, as DurableStorage does: a persist in flight does not count.
    if (meta.index > this.d.snapshot.meta.index && meta.index > this.lastIndex()) {
      throw new Error(
        `memory storage: snapshot at ${meta.index} is past the log's last durable index ${this.lastIndex()}`,
      );
    }
    const parts: Uint8Array[] = [];
    if (Array.isArray(content)) {
      // File parts are read (copied) here: memory storage keeps every snapshot in memory.
      for (const p of content) parts.push('bytes' in p ? p.bytes : await readFilePrefix(p.file, p.length));
    } else {
      for await (const chunk of content) parts.push(chunk);
    }
    const bytes = new Uint8Array(Buffer.concat(parts));
    return this.enqueueOther(() => {
      if (meta.index <= this.d.snapshot.meta.index) return; // an older snapshot than the one held
      if (meta.index > this.lastIndex()) {
        throw new Error(
          `memory storage: snapshot at ${meta.index} is past the log's last index ${this.lastIndex()}`,
        );
      }
      this.d.snapshot = { meta, data: bytes };
    });
  }

  readSnapshot(): AsyncIterable<Uint8Array> | null {
    const data = this.d.snapshot.data;
    if (this.d.snapshot.meta.index === 0) return null;
    return (async function* () {
      for (let offset = 0; offset < data.byteLength; offset += readSnapshotChunkBytes) {
        yield data.subarray(offset, offset + readSnapshotChunkBytes);
      }
    })();
  }

  compact(index: number): Promise<void> {
    return this.enqueueOther(() => {
      const upTo = Math.min(index, this.d.snapshot.meta.index);
      if (upTo < this.d.start) return;
      this.d.log = this.d.log.slice(upTo + 1 - this.d.start);
      this.d.start = upTo + 1;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  // ---- internals -----------------------------------------------------------------------------------

  private latestConfig(): ConfigState {
    for (let i = this.d.log.length - 1; i >= 0; i--) {
      if (this.d.log[i].type === EntryType.Config) return decodeConfig(this.d.log[i].data);
    }
    return this.d.snapshot.meta.config;
  }

  private enqueueOther(run: () => void): Promise<void> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'other', run, resolve, reject }));
  }

  private enqueue(op: Op): void {
    if (this.closed) {
      op.reject(new Error('memory storage: closed'));
      return;
    }
    this.queue.push(op);
    if (!this.draining) {
      this.draining = true;
      void this.drain();
    }
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      // One fsync covers every persist queued meanwhile; other operations run alone, in call order.
      const first = this.queue[0];
      let batch: Op[];
      if (first.kind === 'persist') {
        const n = this.queue.findIndex((op) => op.kind !== 'persist');
        batch = this.queue.splice(0, n === -1 ? this.queue.length : n);
      } else {
        batch = this.queue.splice(0, 1);
      }
      if (this.sync) await this.sync();
      else await new Promise((r) => setTimeout(r, this.fsyncDelayMs));
      this.fsyncs++;
      for (const op of batch) {
        try {
          if (this.failure) throw this.failure;
          if (op.kind === 'persist') {
            this.applyPersist(op.work);
            for (const listener of this.durableListeners) listener(op.work);
          } else {
            op.run();
          }
          op.resolve();
        } catch (e) {
          op.reject(e as Error);
        }
      }
    }
    this.draining = false;
  }

  private applyPersist(work: PersistWork): void {
    // Everything is checked before anything changes: a refused persist leaves no trace (as DurableStorage).
    this.checkPersist(work);
    if (work.hardState) this.d.hardState = { ...work.hardState };
    if (work.entries.length > 0) {
      const first = work.entries[0].index;
      if (first <= this.lastIndex()) this.d.log.length = first - this.d.start;
      for (const e of work.entries) this.d.log.push(e);
    }
    const chunk = work.snapshotChunk;
    if (chunk) {
      if (chunk.offset === 0) this.d.partial = { meta: chunk.meta, parts: [], bytes: 0, done: false };
      const partial = this.d.partial!;
      partial.parts.push(new Uint8Array(chunk.data));
      partial.bytes += chunk.data.byteLength;
      partial.done = chunk.done;
    }
  }

  private checkPersist(work: PersistWork): void {
    if (work.entries.length > 0) {
      const first = work.entries[0].index;
      if (first > this.lastIndex() + 1 || first <= this.d.snapshot.meta.index) {
        throw new Error(
          `memory storage: entries from ${first} do not fit the log [${this.d.start}, ${this.lastIndex()}] (snapshot ${this.d.snapshot.meta.index})`,
        );
      }
      let prevTerm = first - 1 >= this.d.start ? this.d.log[first - 1 - this.d.start].term : 0;
      work.entries.forEach((e, k) => {
        if (e.index !== first + k || e.term < prevTerm)
          throw new Error(
            `memory storage: entry ${e.index}/${e.term} does not follow ${first + k - 1}/${prevTerm}`,
          );
        prevTerm = e.term;
      });
    }
    const chunk = work.snapshotChunk;
    const partial = this.d.partial;
    if (
      chunk &&
      chunk.offset !== 0 &&
      (!partial ||
        partial.meta.index !== chunk.meta.index ||
        partial.meta.term !== chunk.meta.term ||
        partial.bytes !== chunk.offset)
    ) {
      throw new Error(
        `memory storage: snapshot chunk at offset ${chunk.offset} does not continue the partial snapshot`,
      );
    }
  }
}
