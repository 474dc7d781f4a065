/**
 * The segment log's staging buffer: entries encoded as records for the log's next write, one buffer for the
 * whole batch (no per-entry allocation besides the cache slot), with each record's offset and term, the
 * Config entries among them, and where the written records must be truncated before that write. Checks a
 * batch before anything changes. The write itself (segment-log.ts) takes the buffer as it is and then calls
 * `written()`.
 */
import { Entry, EntryType } from '../core/types';
import { EntryCache } from './entry-cache';
import { entryBytesMax, stagingBytesInitial } from './limits';
import { encodeRecord, recordHeaderBytes } from './record';

/** What staging reads of the records already written (the SegmentLog). */
export interface WrittenRecords {
  lastWrittenIndex(): number;
  /** Term of a written entry; undefined outside the written range. */
  termAt(index: number): number | undefined;
}

/**
 * Index ranges: [first, tail] is encoded in `buf`, not written yet; everything below `first` is in the
 * segment files. A stage that starts at or below `tail` truncates: inside the buffer by rewinding it, below
 * it by setting `truncateFrom` (the log truncates its files before the next write).
 */
export class SegmentStaging {
  buf = Buffer.allocUnsafe(stagingBytesInitial);
  /** Bytes staged and not written. */
  bytes = 0;
  /** Index of staged record 0. */
  first: number;
  count = 0;
  /** rel[k] is the offset of staged record k in `buf`; rel[count] its end. */
  rel = new Uint32Array(4096);
  terms = new Float64Array(4096);
  /** Indexes of the staged Config entries. */
  configs: number[] = [];
  /** Written records from this index on are removed before the next write. */
  truncateFrom: number | null = null;
  /** Last staged index (what the next append follows). */
  tail: number;

  constructor(
    private readonly cache: EntryCache,
    private readonly files: WrittenRecords,
    next: number,
  ) {
    this.tail = next - 1;
    this.first = next;
  }

  /** Nothing staged: the next stage continues the log at `next`. */
  continueAt(next: number): void {
    this.tail = next - 1;
    this.first = next;
  }

  hasStaged(): boolean {
    return this.count > 0 || this.truncateFrom !== null;
  }

  /**
   * Encodes entries for the next write. They must continue the log at `tail + 1`, or start at or below it
   * (truncating from there), and never at or below `minIndex - 1` (the snapshot).
   */
  stage(entries: Entry[], minIndex: number): void {
    const t = entries[0].index;
    this.checkBatch(entries, minIndex);
    if (t <= this.tail) {
      this.cache.drop(t, this.tail);
      if (this.count > 0 && t >= this.first) {
        const keep = t - this.first;
        this.count = keep;
        this.bytes = this.rel[keep];
        while (this.configs.length > 0 && this.configs[this.configs.length - 1] >= t) this.configs.pop();
      } else {
        this.count = 0;
        this.bytes = 0;
        this.configs.length = 0;
        this.first = t;
        this.truncateFrom = this.truncateFrom === null ? t : Math.min(this.truncateFrom, t);
      }
      this.tail = t - 1;
    }
    if (this.count === 0) this.first = t;
    let bytes = 0;
    for (let k = 0; k < entries.length; k++) bytes += recordHeaderBytes + entries[k].data.length;
    this.reserve(this.bytes + bytes, this.count + entries.length + 1);
    const buf = this.buf;
    const rel = this.rel;
    const terms = this.terms;
    const cache = this.cache;
    let at = this.bytes;
    let n = this.count;
    let expect = t;
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k];
      rel[n] = at;
      terms[n] = e.term;
      at = encodeRecord(buf, at, e);
      if (e.type === EntryType.Config) this.configs.push(e.index);
      cache.put(e);
      n++;
      expect++;
    }
    rel[n] = at;
    this.bytes = at;
    this.count = n;
    this.tail = expect - 1;
  }

  /** The staged records were written: staging continues after them (a buffer grown past 16× shrinks back). */
  written(): void {
    this.first = this.first + this.count;
    this.count = 0;
    this.bytes = 0;
    this.configs.length = 0;
    if (this.buf.length > 16 * stagingBytesInitial) this.buf = Buffer.allocUnsafe(stagingBytesInitial);
  }

  /** Rejects a batch that cannot be staged, before anything changes. */
  private checkBatch(entries: Entry[], minIndex: number): void {
    const t = entries[0].index;
    if (t < minIndex) {
      throw new Error(
        `storage: entries from ${t} would overwrite the snapshot (the log may change from ${minIndex})`,
      );
    }
    if (t > this.tail + 1)
      throw new Error(`storage: entries from ${t} must follow the log's last index ${this.tail}`);
    let prevTerm = 0;
    if (t - 1 >= this.first && t - 1 < this.first + this.count) {
      prevTerm = this.terms[t - 1 - this.first];
    } else if (t - 1 <= this.files.lastWrittenIndex()) {
      prevTerm = this.files.termAt(t - 1) ?? 0;
    }
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k];
      if (e.index !== t + k) throw new Error(`storage: entry index ${e.index} where ${t + k} was expected`);
      if (e.data.length > entryBytesMax) {
        throw new Error(`storage: entry ${e.index} of ${e.data.length} bytes exceeds ${entryBytesMax}`);
      }
      if (!(e.term >= prevTerm))
        throw new Error(`storage: entry ${e.index} has term ${e.term} below ${prevTerm}`);
      prevTerm = e.term;
    }
  }

  private reserve(bytes: number, records: number): void {
    if (bytes > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(bytes, this.buf.length * 2));
      this.buf.copy(grown, 0, 0, this.bytes);
      this.buf = grown;
    }
    if (records > this.rel.length) {
      const n = Math.max(records, this.rel.length * 2);
      const rel = new Uint32Array(n);
      rel.set(this.rel.subarray(0, this.count + 1));
      const terms = new Float64Array(n);
      terms.set(this.terms.subarray(0, this.count));
      this.rel = rel;
      this.terms = terms;
    }
  }
}
