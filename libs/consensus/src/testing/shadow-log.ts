import { Entry } from '../core/types';

/**
 * The simulator's view of one node's whole log (durable and not yet durable), rebuilt from the
 * entries of every Ready the shell takes. Used by the checkers; never shown to the core.
 */
export class ShadowLog {
  /** Index and term of the entry just before `entries[0]` (a snapshot, or 0/0). */
  baseIndex = 0;
  baseTerm = 0;
  private entries: Entry[] = [];

  lastIndex(): number {
    return this.baseIndex + this.entries.length;
  }

  /** Term at `index`: the base's term at baseIndex, undefined before it or past the end. */
  term(index: number): number | undefined {
    if (index === this.baseIndex) return this.baseTerm;
    return this.entries[index - this.baseIndex - 1]?.term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.baseIndex) return undefined;
    return this.entries[index - this.baseIndex - 1];
  }

  /**
   * Appends a contiguous run; an entry at an index ≤ lastIndex first truncates from there.
   * Throws if the run leaves a gap (the core handed out entries that do not attach to its log).
   */
  append(run: readonly Entry[]): void {
    if (run.length === 0) return;
    const first = run[0].index;
    if (first > this.lastIndex() + 1) {
      throw new Error(`entries start at ${first} but the log ends at ${this.lastIndex()} (gap)`);
    }
    for (let i = 1; i < run.length; i++) {
      if (run[i].index !== run[i - 1].index + 1)
        throw new Error(`entries are not contiguous: ${run[i - 1].index} then ${run[i].index}`);
    }
    if (first <= this.baseIndex) {
      // Entries at or below the snapshot are already covered by it; keep only the new tail.
      const skip = this.baseIndex + 1 - first;
      if (skip >= run.length) return;
      run = run.slice(skip);
    }
    this.entries.length = run[0].index - this.baseIndex - 1;
    for (const e of run) this.entries.push(e);
  }

  /** A received snapshot at index/term replaces the whole log (as the core does). */
  resetToSnapshot(index: number, term: number): void {
    this.entries = [];
    this.baseIndex = index;
    this.baseTerm = term;
  }

  /** Forgets entries before `index` (compaction); terms at and after it stay known. */
  compactTo(index: number): void {
    const term = this.term(index);
    if (index <= this.baseIndex || term === undefined) return;
    this.entries = this.entries.slice(index - this.baseIndex);
    this.baseIndex = index;
    this.baseTerm = term;
  }

  /** Restarts from durable storage: a base and a run of entries. */
  load(baseIndex: number, baseTerm: number, entries: Entry[]): void {
    this.baseIndex = baseIndex;
    this.baseTerm = baseTerm;
    this.entries = [];
    this.append(entries);
  }
}
