import { endianness } from 'os';
import { crc32cRange } from './crc';
import { assert } from './limits';

const two32 = 0x1_0000_0000;
assert(endianness() === 'LE', 'sidecar offsets are read as a little-endian typed array');
const sidecarMagic = 0x58444953; // "SIDX"
const sidecarVersion = 2;
const sidecarHeaderBytes = 32;

/** 20 digits: names sort in index order. */
export function segmentName(firstIndex: number): string {
  return `${String(firstIndex).padStart(20, '0')}.seg`;
}

export function sidecarName(firstIndex: number): string {
  return `${String(firstIndex).padStart(20, '0')}.idx`;
}

export function parseSegmentName(name: string): number | null {
  const m = /^(\d{20})\.seg$/.exec(name);
  return m ? Number(m[1]) : null;
}

/**
 * What memory holds of one segment file: the byte offset of every record (a typed array, 4 bytes per
 * entry), its terms as runs (terms change rarely) and the indexes of its Config entries.
 * Invariants: offsets[0] === 0; offsets[k] < offsets[k+1]; offsets[count] is the end of the last record;
 * runStarts strictly increase, the first is `first` when count > 0.
 */
export class Segment {
  offsets: Uint32Array;
  count = 0;
  runStarts: number[] = [];
  runTerms: number[] = [];
  configs: number[] = [];
  fd: number | null = null;
  /** Written when the segment was sealed; absent for the segment being appended to. */
  hasSidecar = false;
  /**
   * The CRC field of the last record, as the sidecar recorded it. A sidecar is trusted only if the segment's
   * last record still carries it: same index and term there means the same log before it (log matching).
   */
  lastCrc = 0;

  constructor(
    readonly first: number,
    readonly path: string,
    capacity = 1024,
  ) {
    assert(first >= 1, `segment first index ${first} ≥ 1`);
    this.offsets = new Uint32Array(Math.max(2, capacity));
  }

  get end(): number {
    return this.offsets[this.count];
  }

  /** Index after the last record (first when empty). */
  get next(): number {
    return this.first + this.count;
  }

  offsetOf(index: number): number {
    return this.offsets[index - this.first];
  }

  termAt(index: number): number {
    assert(
      index >= this.first && index < this.next,
      `index ${index} in segment [${this.first}, ${this.next})`,
    );
    const starts = this.runStarts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= index) lo = mid;
      else hi = mid - 1;
    }
    return this.runTerms[lo];
  }

  /** Adds one record (used by scans). */
  push(offsetEnd: number, term: number, isConfig: boolean): void {
    this.reserve(this.count + 2);
    const index = this.first + this.count;
    this.count++;
    this.offsets[this.count] = offsetEnd;
    this.noteTerm(index, term);
    if (isConfig) this.configs.push(index);
  }

  /** Adds `n` records written at `base`, with offsets relative to base in rel[0..n] and terms in terms[0..n). */
  pushBatch(base: number, rel: Uint32Array, n: number, terms: Float64Array, configs: number[]): void {
    this.reserve(this.count + n + 1);
    const off = this.offsets;
    const at = this.count;
    assert(off[at] === base + rel[0], `batch written at the segment's end ${off[at]}`);
    for (let k = 1; k <= n; k++) off[at + k] = base + rel[k];
    const first = this.first + at;
    for (let k = 0; k < n; k++) this.noteTerm(first + k, terms[k]);
    for (const c of configs) this.configs.push(c);
    this.count += n;
  }

  /** Keeps the first `count` records in memory (the caller handles the file). */
  truncate(count: number): void {
    assert(count >= 0 && count <= this.count, `truncate to ${count} of ${this.count}`);
    this.count = count;
    const next = this.first + count;
    while (this.runStarts.length > 0 && this.runStarts[this.runStarts.length - 1] >= next) {
      this.runStarts.pop();
      this.runTerms.pop();
    }
    while (this.configs.length > 0 && this.configs[this.configs.length - 1] >= next) this.configs.pop();
  }

  private noteTerm(index: number, term: number): void {
    const n = this.runTerms.length;
    if (n > 0) {
      assert(
        term >= this.runTerms[n - 1],
        `term ${term} at ${index} not below the previous ${this.runTerms[n - 1]}`,
      );
      if (this.runTerms[n - 1] === term) return;
    }
    this.runStarts.push(index);
    this.runTerms.push(term);
  }

  private reserve(n: number): void {
    if (n <= this.offsets.length) return;
    const grown = new Uint32Array(Math.max(n, this.offsets.length * 2));
    grown.set(this.offsets.subarray(0, this.count + 1));
    this.offsets = grown;
  }

  /** The sealed segment's index, to be written beside it: opening then needs no scan. */
  encodeSidecar(lastCrc: number): Buffer {
    const runs = this.runStarts.length;
    const bytes = sidecarHeaderBytes + 4 * (this.count + 1) + 16 * runs + 8 * this.configs.length + 4;
    const b = Buffer.alloc(bytes);
    b.writeUInt32LE(sidecarMagic, 0);
    b.writeUInt32LE(sidecarVersion, 4);
    b.writeUInt32LE(this.first % two32, 8);
    b.writeUInt32LE(Math.floor(this.first / two32), 12);
    b.writeUInt32LE(this.count, 16);
    b.writeUInt32LE(runs, 20);
    b.writeUInt32LE(this.configs.length, 24);
    b.writeUInt32LE(lastCrc, 28);
    let o = sidecarHeaderBytes;
    for (let k = 0; k <= this.count; k++, o += 4) b.writeUInt32LE(this.offsets[k], o);
    for (let r = 0; r < runs; r++, o += 16) {
      b.writeDoubleLE(this.runStarts[r], o);
      b.writeDoubleLE(this.runTerms[r], o + 8);
    }
    for (const c of this.configs) {
      b.writeDoubleLE(c, o);
      o += 8;
    }
    b.writeUInt32LE(crc32cRange(b, 0, o), o);
    return b;
  }

  /** Rebuilds a segment from its sidecar; a string says why the sidecar cannot be trusted. */
  static decodeSidecar(b: Buffer, first: number, path: string): Segment | string {
    if (b.length < sidecarHeaderBytes + 8) return 'sidecar too short';
    if (b.readUInt32LE(0) !== sidecarMagic || b.readUInt32LE(4) !== sidecarVersion)
      return 'sidecar magic/version';
    if (b.readUInt32LE(8) + b.readUInt32LE(12) * two32 !== first) return 'sidecar names another segment';
    const count = b.readUInt32LE(16);
    const runs = b.readUInt32LE(20);
    const configs = b.readUInt32LE(24);
    const bytes = sidecarHeaderBytes + 4 * (count + 1) + 16 * runs + 8 * configs + 4;
    if (b.length !== bytes) return `sidecar is ${b.length} bytes, expected ${bytes}`;
    if (crc32cRange(b, 0, bytes - 4) !== b.readUInt32LE(bytes - 4)) return 'sidecar checksum mismatch';
    const s = new Segment(first, path, count + 1);
    const off = new Uint32Array(count + 1);
    b.copy(Buffer.from(off.buffer), 0, sidecarHeaderBytes, sidecarHeaderBytes + 4 * (count + 1)); // little-endian host
    let o = sidecarHeaderBytes + 4 * (count + 1);
    if (off[0] !== 0) return 'sidecar offsets do not start at 0';
    for (let k = 0; k < count; k++) if (off[k + 1] <= off[k]) return `sidecar offsets not increasing at ${k}`;
    s.offsets = off;
    s.count = count;
    s.lastCrc = b.readUInt32LE(28);
    for (let r = 0; r < runs; r++, o += 16) {
      s.runStarts.push(b.readDoubleLE(o));
      s.runTerms.push(b.readDoubleLE(o + 8));
    }
    for (let c = 0; c < configs; c++, o += 8) s.configs.push(b.readDoubleLE(o));
    if (count > 0 && (runs === 0 || s.runStarts[0] !== first))
      return 'sidecar term runs do not start at the first index';
    s.hasSidecar = true;
    return s;
  }
}
