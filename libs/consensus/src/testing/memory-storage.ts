import { Ready } from '../core/ready';
import {
  ConfigState,
  Entry,
  EntryType,
  HardState,
  InitialState,
  RaftLogReader,
  SnapshotMeta,
  decodeConfig,
  emptyConfig,
} from '../core/types';

export interface MemoryStorageInit {
  snapshot?: SnapshotMeta;
  snapshotData?: Uint8Array;
  entries?: Entry[];
  hardState?: HardState;
}

/**
 * The durable storage of one node, in memory: what a crash keeps. Tests and the simulator apply each Ready to it
 * (`applyReady`) once it is "fsynced", and start a core from it again after a crash (`clone`, `initialState`).
 */
export class MemoryStorage implements RaftLogReader {
  private snap: SnapshotMeta;
  private snapData: Uint8Array;
  /** Entries after the snapshot: ents[i].index === snap.index + 1 + i. */
  private ents: Entry[];
  private hard: HardState;
  /** An incoming snapshot's durable chunks (resumed after a restart). */
  private partial: { meta: SnapshotMeta; chunks: Uint8Array[]; bytes: number } | null = null;

  constructor(init: MemoryStorageInit = {}) {
    this.snap = init.snapshot ?? { index: 0, term: 0, config: emptyConfig() };
    this.snapData = init.snapshotData ?? new Uint8Array(0);
    this.ents = [...(init.entries ?? [])];
    this.hard = init.hardState ? { ...init.hardState } : { term: 0, vote: null, commit: 0 };
    this.ents.forEach((e, i) => {
      if (e.index !== this.snap.index + 1 + i)
        throw new Error(`MemoryStorage: entry ${e.index} at position ${i} after snapshot ${this.snap.index}`);
    });
  }

  firstIndex(): number {
    return this.snap.index + 1;
  }

  lastIndex(): number {
    return this.snap.index + this.ents.length;
  }

  term(index: number): number | undefined {
    if (index === this.snap.index) return this.snap.term;
    if (index < this.snap.index) return undefined;
    return this.ents[index - this.snap.index - 1]?.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo < this.firstIndex() || hi > this.lastIndex() + 1) {
      throw new Error(
        `MemoryStorage: entries [${lo}, ${hi}) outside [${this.firstIndex()}, ${this.lastIndex() + 1})`,
      );
    }
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - this.snap.index - 1];
      if (out.length > 0 && bytes + e.data.byteLength > maxBytes) break;
      out.push(e);
      bytes += e.data.byteLength;
    }
    return out;
  }

  snapshotMeta(): SnapshotMeta {
    return this.snap;
  }

  snapshotChunk(offset: number, maxBytes: number): { data: Uint8Array; done: boolean } {
    const end = Math.min(this.snapData.byteLength, offset + maxBytes);
    return { data: this.snapData.slice(offset, end), done: end >= this.snapData.byteLength };
  }

  /** The latest snapshot's bytes. */
  snapshotData(): Uint8Array {
    return this.snapData;
  }

  hardState(): HardState {
    return { ...this.hard };
  }

  /** What a core starting on this storage is given. */
  initialState(bootstrapConfig: ConfigState = emptyConfig()): InitialState {
    let config = this.snap.index > 0 ? this.snap.config : bootstrapConfig;
    for (let i = this.ents.length - 1; i >= 0; i--) {
      if (this.ents[i].type === EntryType.Config) {
        config = decodeConfig(this.ents[i].data);
        break;
      }
    }
    const initial: InitialState = { hardState: { ...this.hard }, config };
    if (this.snap.index === 0) initial.bootstrapConfig = bootstrapConfig;
    if (this.partial)
      initial.partialSnapshot = {
        index: this.partial.meta.index,
        term: this.partial.meta.term,
        bytes: this.partial.bytes,
      };
    return initial;
  }

  /** Makes a Ready's hard state, entries and snapshot chunk durable, then installs its snapshot (steps 1 and 2). */
  applyReady(ready: Ready): void {
    if (ready.hardState) this.hard = { ...ready.hardState };
    if (ready.entries.length > 0) this.append(ready.entries);
    if (ready.snapshotChunk)
      this.saveChunk(ready.snapshotChunk.meta, ready.snapshotChunk.offset, ready.snapshotChunk.data);
    if (ready.snapshot) this.install(ready.snapshot);
  }

  /** A local snapshot of the state machine at `index`: the log up to it is discarded. */
  compact(index: number, data: Uint8Array, config: ConfigState): SnapshotMeta {
    if (index <= this.snap.index)
      throw new Error(`MemoryStorage: compacting to ${index}, already compacted to ${this.snap.index}`);
    if (index > this.lastIndex())
      throw new Error(`MemoryStorage: compacting to ${index} past the last index ${this.lastIndex()}`);
    const meta: SnapshotMeta = { index, term: this.term(index) as number, config };
    this.ents = this.ents.slice(index - this.snap.index);
    this.snap = meta;
    this.snapData = data;
    return meta;
  }

  /** An independent copy of everything durable (for crash simulation: the copy is what survives). */
  clone(): MemoryStorage {
    const c = new MemoryStorage({
      snapshot: this.snap,
      snapshotData: this.snapData,
      entries: this.ents,
      hardState: this.hard,
    });
    if (this.partial)
      c.partial = { meta: this.partial.meta, chunks: [...this.partial.chunks], bytes: this.partial.bytes };
    return c;
  }

  private append(entries: Entry[]): void {
    const first = entries[0].index;
    if (first <= this.snap.index)
      throw new Error(`MemoryStorage: appending ${first} at or below the snapshot ${this.snap.index}`);
    if (first > this.lastIndex() + 1)
      throw new Error(`MemoryStorage: gap, appending ${first} after ${this.lastIndex()}`);
    const keep = first - this.snap.index - 1;
    if (keep < this.ents.length) this.ents.length = keep; // truncate a conflicting suffix
    for (const e of entries) this.ents.push(e);
  }

  private saveChunk(meta: SnapshotMeta, offset: number, data: Uint8Array): void {
    const same =
      this.partial && this.partial.meta.index === meta.index && this.partial.meta.term === meta.term;
    if (offset === 0) this.partial = { meta, chunks: [], bytes: 0 };
    else if (!same || !this.partial || this.partial.bytes !== offset) {
      throw new Error(
        `MemoryStorage: snapshot chunk at ${offset} for ${meta.index} does not continue the partial snapshot (${this.partial ? `${this.partial.meta.index}@${this.partial.bytes}` : 'none'})`,
      );
    }
    const p = this.partial as { chunks: Uint8Array[]; bytes: number };
    p.chunks.push(data);
    p.bytes += data.byteLength;
  }

  private install(meta: SnapshotMeta): void {
    const p = this.partial;
    if (!p || p.meta.index !== meta.index || p.meta.term !== meta.term)
      throw new Error(`MemoryStorage: installing snapshot ${meta.index} that was not received`);
    const data = new Uint8Array(p.bytes);
    let at = 0;
    for (const c of p.chunks) {
      data.set(c, at);
      at += c.byteLength;
    }
    this.snap = meta;
    this.snapData = data;
    this.ents = [];
    this.partial = null;
  }
}
