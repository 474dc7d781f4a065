import { Entry } from '../core/types';

/**
 * The most recent entries, by index, bounded by count (a power-of-two ring) and by payload bytes.
 * Holds the caller's Entry objects (entries are immutable once appended).
 */
export class EntryCache {
  private readonly slots: (Entry | undefined)[];
  private readonly mask: number;
  private bytes = 0;
  /** No entry below this index is cached. */
  private low = 0;

  constructor(
    entriesMax: number,
    private readonly bytesMax: number,
  ) {
    let cap = 1;
    while (cap < Math.max(1, entriesMax)) cap *= 2;
    this.slots = new Array(cap);
    this.mask = cap - 1;
  }

  get capacity(): number {
    return this.slots.length;
  }

  get(index: number): Entry | undefined {
    const e = this.slots[index & this.mask];
    return e !== undefined && e.index === index ? e : undefined;
  }

  put(e: Entry): void {
    const slot = e.index & this.mask;
    const old = this.slots[slot];
    if (old !== undefined) {
      this.bytes -= old.data.length;
      this.slots[slot] = undefined;
    }
    if (e.data.length > this.bytesMax / 4) return;
    this.slots[slot] = e;
    this.bytes += e.data.length;
    if (e.index < this.low) this.low = e.index;
    if (e.index - this.low >= this.slots.length) this.low = e.index - this.slots.length + 1;
    while (this.bytes > this.bytesMax && this.low < e.index) this.evict(this.low++);
  }

  /** Forgets entries in [from, to]. */
  drop(from: number, to: number): void {
    const stop = Math.min(to, from + this.slots.length - 1);
    for (let i = from; i <= stop; i++) this.evict(i);
  }

  clear(): void {
    this.slots.fill(undefined);
    this.bytes = 0;
  }

  private evict(index: number): void {
    const slot = index & this.mask;
    const e = this.slots[slot];
    if (e !== undefined && e.index === index) {
      this.bytes -= e.data.length;
      this.slots[slot] = undefined;
    }
  }
}
