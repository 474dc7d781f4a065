import { Entry, RaftLogReader, SnapshotMeta } from './types';

/**
 * The core's view of the log: the durable part (the reader) plus entries and a snapshot not yet durable.
 *
 *   reader (durable) ... offset-1 | unstable[0] = offset ... lastIndex
 *                                  ^ handed to the shell up to inProgress-1, durable once advanced
 *
 * Indexes below `offset` are read from the reader; from `offset` on, `unstable` is authoritative (it may
 * truncate a durable suffix the shell has not overwritten yet). A received snapshot waits in `snapshot` until
 * the shell has installed it; meanwhile the reader is not consulted at all.
 */
export class RaftLog {
  private unstable: Entry[] = [];
  private offset: number;
  /** Entries before this index have been handed to the shell in a Ready. */
  private inProgress: number;
  /** A snapshot to install (received from the leader), and whether a Ready carried it. */
  private snapshot: SnapshotMeta | null = null;
  private snapshotHandedOut = false;
  committed: number;
  /** Committed entries handed to the shell for applying, up to this index. */
  applying: number;
  /** Entries applied (the Ready carrying them was advanced), up to this index. */
  applied: number;

  constructor(
    readonly reader: RaftLogReader,
    commit: number,
    appliedByShell = 0,
  ) {
    this.offset = reader.lastIndex() + 1;
    this.inProgress = this.offset;
    const snapIndex = reader.snapshotMeta().index;
    const applied = Math.max(snapIndex, Math.min(appliedByShell, this.lastIndex()));
    this.committed = Math.min(Math.max(commit, applied), this.lastIndex());
    this.applying = applied;
    this.applied = applied;
  }

  firstIndex(): number {
    return this.snapshot ? this.snapshot.index + 1 : this.reader.firstIndex();
  }

  lastIndex(): number {
    return this.offset + this.unstable.length - 1;
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    if (t === undefined) throw new Error(`raft log: no term for the last index ${this.lastIndex()}`);
    return t;
  }

  /** Index of the last entry known durable (the leader counts itself only up to here). */
  stableIndex(): number {
    return this.offset - 1;
  }

  snapshotMeta(): SnapshotMeta {
    return this.snapshot ?? this.reader.snapshotMeta();
  }

  term(index: number): number | undefined {
    if (index === 0) return 0;
    if (this.snapshot) {
      if (index === this.snapshot.index) return this.snapshot.term;
      if (index < this.snapshot.index) return undefined;
    }
    if (index >= this.offset) return this.unstable[index - this.offset]?.term;
    if (this.snapshot) return undefined;
    return this.reader.term(index);
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Election restriction: is a log ending at (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Entries in [lo, hi), at least one if lo < hi, then stopping before `maxBytes` of payload. */
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo >= hi) return [];
    if (lo < this.firstIndex())
      throw new Error(`raft log: entries from ${lo} requested, first index is ${this.firstIndex()}`);
    if (hi > this.lastIndex() + 1)
      throw new Error(`raft log: entries up to ${hi - 1} requested, last index is ${this.lastIndex()}`);
    let out: Entry[] = [];
    let bytes = 0;
    if (lo < this.offset) {
      out = this.reader.entries(lo, Math.min(hi, this.offset), maxBytes);
      for (const e of out) bytes += e.data.byteLength;
      if (out.length === 0 || out[out.length - 1].index + 1 < Math.min(hi, this.offset)) return out;
    }
    for (let i = Math.max(lo, this.offset); i < hi; i++) {
      const e = this.unstable[i - this.offset];
      if (out.length > 0 && bytes + e.data.byteLength > maxBytes) break;
      out.push(e);
      bytes += e.data.byteLength;
    }
    return out;
  }

  /**
   * Appends entries that may overwrite a suffix (never a committed entry). Returns the index from which
   * the log was replaced, for config tracking.
   */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const after = entries[0].index;
    if (after <= this.committed)
      throw new Error(
        `raft log: entry ${after} would overwrite the committed log (commit ${this.committed})`,
      );
    if (after > this.lastIndex() + 1)
      throw new Error(`raft log: gap, appending ${after} after last index ${this.lastIndex()}`);
    if (after === this.offset + this.unstable.length) {
      this.unstable.push(...entries);
    } else if (after <= this.offset) {
      this.offset = after;
      this.unstable = [...entries];
    } else {
      this.unstable = [...this.unstable.slice(0, after - this.offset), ...entries];
    }
    this.inProgress = Math.min(this.inProgress, after);
  }

  /** Entries to persist in the next Ready; marks them in progress. */
  takeUnstable(): Entry[] {
    const from = this.inProgress - this.offset;
    if (from >= this.unstable.length) return [];
    const out = this.unstable.slice(from);
    this.inProgress = this.lastIndex() + 1;
    return out;
  }

  hasUnstable(): boolean {
    return this.inProgress <= this.lastIndex();
  }

  /** The shell made entries up to (index, term) durable. Ignored if that entry was since replaced. */
  stableTo(index: number, term: number): void {
    if (index < this.offset || this.term(index) !== term || this.snapshot) return;
    this.unstable = this.unstable.slice(index + 1 - this.offset);
    this.offset = index + 1;
    this.inProgress = Math.max(this.inProgress, this.offset);
  }

  /** A received snapshot replaces the log; it is installed by the shell with the next Ready. */
  restore(meta: SnapshotMeta): void {
    if (meta.index <= this.committed)
      throw new Error(`raft log: restoring snapshot ${meta.index} at or below commit ${this.committed}`);
    this.snapshot = meta;
    this.snapshotHandedOut = false;
    this.unstable = [];
    this.offset = meta.index + 1;
    this.inProgress = this.offset;
    this.committed = meta.index;
    this.applying = meta.index;
  }

  takeSnapshot(): SnapshotMeta | undefined {
    if (!this.snapshot || this.snapshotHandedOut) return undefined;
    this.snapshotHandedOut = true;
    return this.snapshot;
  }

  hasPendingSnapshot(): boolean {
    return this.snapshot !== null && !this.snapshotHandedOut;
  }

  /** The shell installed the snapshot: the reader now holds it. */
  stableSnapshotTo(index: number): void {
    if (this.snapshot && this.snapshot.index === index) this.snapshot = null;
    this.applied = Math.max(this.applied, index);
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    if (index > this.lastIndex())
      throw new Error(`raft log: commit ${index} is past the last index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  hasNextCommitted(): boolean {
    return this.committed > this.applying && !this.snapshot;
  }

  /** Committed entries not yet handed out for applying (up to maxBytes and maxEntries); marks them as applying. */
  takeCommitted(maxBytes: number, maxEntries: number): Entry[] {
    if (!this.hasNextCommitted()) return [];
    const out = this.entries(
      this.applying + 1,
      Math.min(this.committed, this.applying + maxEntries) + 1,
      maxBytes,
    );
    if (out.length > 0) this.applying = out[out.length - 1].index;
    return out;
  }

  appliedTo(index: number): void {
    if (index > this.applied) this.applied = index;
  }

  /** Index of the last entry with term ≤ `term`, and that entry's term, by binary search (terms only grow). */
  lastIndexWithTermAtMost(term: number, maxIndex: number): { index: number; term: number } | undefined {
    let lo = this.firstIndex() - 1;
    let hi = Math.min(maxIndex, this.lastIndex());
    const loTerm = this.term(lo);
    if (loTerm === undefined || loTerm > term || hi < lo) return undefined;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      const t = this.term(mid);
      if (t !== undefined && t <= term) lo = mid;
      else hi = mid - 1;
    }
    return { index: lo, term: this.term(lo) as number };
  }

  /** First index in [minIndex, index] whose term equals term(index), by binary search. */
  firstIndexOfTermAt(index: number, minIndex: number): number {
    const term = this.term(index);
    let lo = Math.max(minIndex, this.firstIndex());
    let hi = index;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const t = this.term(mid);
      if (t !== undefined && t >= (term as number)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
