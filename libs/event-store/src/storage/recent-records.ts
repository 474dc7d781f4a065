/**
 * The most recent event records (a contiguous range of positions) kept in memory, bounded by count and
 * bytes: fresh reads and live subscribers are served without file IO.
 */
export class RecentRecords {
  private readonly records: (Buffer | undefined)[];
  private lo = 0;
  /** Exclusive end: positions [lo, hi) are held. */
  private hi = 0;
  private bytes = 0;

  constructor(
    private readonly countMax: number,
    private readonly bytesMax: number,
  ) {
    if (countMax < 1) throw new Error(`RecentRecords: countMax ${countMax} must be >= 1`);
    this.records = new Array(countMax);
  }

  /** Resets to hold nothing; the next add must be at `nextPosition`. */
  clear(nextPosition: number): void {
    this.records.fill(undefined);
    this.lo = this.hi = nextPosition;
    this.bytes = 0;
  }

  add(position: number, record: Buffer): void {
    if (position !== this.hi) throw new Error(`RecentRecords.add: position ${position}, expected ${this.hi}`);
    while (
      this.hi > this.lo &&
      (this.hi - this.lo >= this.countMax || this.bytes + record.length > this.bytesMax)
    ) {
      this.evictOldest();
    }
    if (record.length > this.bytesMax) {
      this.lo = this.hi = position + 1;
      return;
    }
    this.records[position % this.countMax] = record;
    this.bytes += record.length;
    this.hi = position + 1;
  }

  get(position: number): Buffer | undefined {
    if (position < this.lo || position >= this.hi) return undefined;
    return this.records[position % this.countMax];
  }

  private evictOldest(): void {
    const slot = this.lo % this.countMax;
    this.bytes -= this.records[slot]!.length;
    this.records[slot] = undefined;
    this.lo++;
  }
}
