import { EntryType } from '../core/types';
import { FileOps, readFully } from './file-ops';
import { entryBytesMax, ioChunkBytes } from './limits';
import {
  checkRecord,
  isZeroHeader,
  recordHeaderBytes,
  recordIndex,
  recordPayloadLength,
  recordTerm,
  recordType,
} from './record';
import { Segment } from './segment';

/** A window over a file for sequential reads; `at` makes [pos, pos+n) available in `buf`. */
export class FileWindow {
  buf: Buffer;
  private start = 0;
  private len = 0;

  constructor(
    private readonly ops: FileOps,
    private readonly fd: number,
    readonly size: number,
    windowBytes = ioChunkBytes,
  ) {
    this.buf = Buffer.allocUnsafe(windowBytes);
  }

  /** Offset of `pos` inside `buf`, or -1 if the file ends before pos + n. */
  at(pos: number, n: number): number {
    if (pos + n > this.size) return -1;
    if (pos >= this.start && pos + n <= this.start + this.len) return pos - this.start;
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
    this.start = pos;
    this.len = readFully(this.ops, this.fd, this.buf, 0, Math.min(this.buf.length, this.size - pos), pos);
    if (this.len < n) return -1;
    return 0;
  }
}

export interface Damage {
  offset: number;
  reason: string;
  /** End of the last non-zero byte from `offset` on (what a truncation discards). */
  garbageEnd: number;
  /** A valid record (its index ≥ the damaged one's) found after the damage: the damage is not a torn tail. */
  validAfter: { offset: number; index: number } | null;
}

export interface ScanResult {
  segment: Segment;
  damage: Damage | null;
}

/**
 * Reads every record of a segment file, checking lengths, checksums and the index sequence. Stops at the
 * first zero header (the preallocated, unwritten part) or damage. A clean end must be followed by zeros
 * only; anything else is reported as damage with the facts the caller needs to classify it.
 */
export function scanSegment(ops: FileOps, fd: number, path: string, first: number): ScanResult {
  const size = ops.fstatSync(fd).size;
  const w = new FileWindow(ops, fd, size);
  const segment = new Segment(first, path, 4096);
  let pos = 0;
  let reason: string | null = null;
  for (;;) {
    let o = w.at(pos, recordHeaderBytes);
    if (o < 0) {
      if (pos < size) reason = `partial record header (${size - pos} bytes before end of file)`;
      break;
    }
    if (isZeroHeader(w.buf, o)) break;
    const len = recordPayloadLength(w.buf, o);
    if (len > entryBytesMax) {
      reason = `record length ${len} exceeds ${entryBytesMax}`;
      break;
    }
    o = w.at(pos, recordHeaderBytes + len);
    if (o < 0) {
      reason = `partial record (length ${len}, file ends at ${size})`;
      break;
    }
    const check = checkRecord(w.buf, o, o + recordHeaderBytes + len);
    if (check !== 'ok') {
      reason = check === 'bad-crc' ? 'checksum mismatch' : `invalid record (${check})`;
      break;
    }
    const index = recordIndex(w.buf, o);
    if (index !== segment.next) {
      reason = `record index ${index} where ${segment.next} was expected`;
      break;
    }
    pos += recordHeaderBytes + len;
    segment.push(pos, recordTerm(w.buf, o), recordType(w.buf, o) === EntryType.Config);
  }
  const garbageEnd = lastNonZeroEnd(ops, fd, pos, size);
  if (reason === null && garbageEnd === pos) return { segment, damage: null };
  const damage: Damage = {
    offset: pos,
    reason: reason ?? 'data after the zero-filled end of the records',
    garbageEnd: Math.max(garbageEnd, pos),
    validAfter: findValidRecord(ops, fd, size, pos + 1, garbageEnd, segment.next),
  };
  return { segment, damage };
}

/** End of the last non-zero byte in [from, size), or `from` if all are zero. */
export function lastNonZeroEnd(ops: FileOps, fd: number, from: number, size: number): number {
  const buf = Buffer.allocUnsafe(ioChunkBytes);
  const zeros = Buffer.alloc(ioChunkBytes);
  let end = from;
  for (let pos = from; pos < size;) {
    const n = readFully(ops, fd, buf, 0, Math.min(ioChunkBytes, size - pos), pos);
    if (n === 0) break;
    if (buf.compare(zeros, 0, n, 0, n) !== 0) {
      for (let k = n - 1; k >= 0; k--) {
        if (buf[k] !== 0) {
          end = pos + k + 1;
          break;
        }
      }
    }
    pos += n;
  }
  return end;
}

/**
 * Looks at every byte offset in [from, to) for a record with a valid checksum and an index ≥ minIndex.
 * Only runs when damage was found, to tell a torn tail (nothing valid after it) from damage in the middle.
 */
function findValidRecord(
  ops: FileOps,
  fd: number,
  size: number,
  from: number,
  to: number,
  minIndex: number,
): { offset: number; index: number } | null {
  const w = new FileWindow(ops, fd, size);
  const indexMax = minIndex + (to - from);
  for (let p = from; p + recordHeaderBytes <= to; p++) {
    const o = w.at(p, recordHeaderBytes);
    if (o < 0) break;
    const b = w.buf;
    if (b[o + 24] > EntryType.Config) continue;
    const index = recordIndex(b, o);
    if (index < minIndex || index > indexMax) continue;
    const len = recordPayloadLength(b, o);
    if (len > to - p - recordHeaderBytes) continue;
    const o2 = w.at(p, recordHeaderBytes + len);
    if (o2 < 0) continue;
    if (checkRecord(w.buf, o2, o2 + recordHeaderBytes + len) === 'ok') return { offset: p, index };
  }
  return null;
}
