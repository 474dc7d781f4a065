/**
 * The most recent event records (a contiguous range of positions) kept in memory, bounded by count and
 * bytes: fresh reads and live subscribers are served without file IO. A record is held as (buffer, start,
 * length) — the write buffer it was encoded into, never reused after a flush — so adding one allocates
 * nothing; readers build a StoredEvent straight on (buffer, start).
 */
export class RecentRecords {
  private readonly buffers: (Buffer | undefined)[];
  private readonly starts: Uint32Array;
  private readonly lengths: Uint32Array;
  private lo = 0;
  /** Exclusive end: positions [lo, hi) are held. */
  private hi = 0;
  private bytes = 0;

  constructor(
    private readonly countMax: number,
    private readonly bytesMax: number,
  ) {
    if (countMax < 1) throw new Error(`RecentRecords: countMax ${countMax} must be >= 1`);
    this.buffers = new Array(countMax);
    this.starts = new Uint32Array(countMax);
    this.lengths = new Uint32Array(countMax);
  }

  /** Resets to hold nothing; the next add must be at `nextPosition`. */
  clear(nextPosition: number): void {
    this.buffers.fill(undefined);
    this.lo = this.hi = nextPosition;
    this.bytes = 0;
  }

  /** Holds the record of `position` (the next one): `length` bytes at `start` of `buffer`. */
  add(position: number, buffer: Buffer, start: number, length: number): void {
    if (position !== this.hi) throw new Error(`RecentRecords.add: position ${position}, expected ${this.hi}`);
    while (this.hi > this.lo && (this.hi - this.lo >= this.countMax || this.bytes + length > this.bytesMax)) {
      this.evictOldest();
    }
    if (length > this.bytesMax) {
      this.lo = this.hi = position + 1;
      return;
    }
    const slot = position % this.countMax;
    this.buffers[slot] = buffer;
    this.starts[slot] = start;
    this.lengths[slot] = length;
    this.bytes += length;
    this.hi = position + 1;
  }

  /** The buffer holding the record of `position` (at startOf(position)), or undefined if not held. */
  bufferOf(position: number): Buffer | undefined {
    if (position < this.lo || position >= this.hi) return undefined;
    return this.buffers[position % this.countMax];
  }

  startOf(position: number): number {
    return this.starts[position % this.countMax];
  }

  private evictOldest(): void {
    const slot = this.lo % this.countMax;
    this.bytes -= this.lengths[slot];
    this.buffers[slot] = undefined;
    this.lo++;
  }
}
