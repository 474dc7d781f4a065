import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeRecord, RECORD_HEADER_BYTES, RecordFields, recordBytes, StoredEvent } from './record';
import { UUID_BYTES } from '../uuid';
import { RecentRecords } from './recent-records';

export interface EventFileInfo {
  name: string;
  /** Position of its first event. */
  start: number;
  /** Number of events in it. */
  count: number;
  bytes: number;
}

interface EventFile extends EventFileInfo {
  fd: number;
}

export interface EventFilesOptions {
  fileBytesMax: number;
  writeBufferBytesMax: number;
  recentCacheEvents: number;
  recentCacheBytesMax: number;
}

const FILE_SUFFIX = '.evt';
/** Sequential reads (scans, ranges) read the files in blocks of this size. */
const READ_BLOCK_BYTES = 4 * 1024 * 1024;
/**
 * A scan's first read; each next one is 4x larger up to READ_BLOCK_BYTES. Reading 4 MiB for the two or
 * three consecutive events of a small stream made a cold stream read cost ~2 ms of CPU (memcpy of the
 * block): 550 reads/s on a core at 100k streams.
 */
const FIRST_SCAN_BLOCK_BYTES = 16 * 1024;
/**
 * One offset is kept per this many positions (sparse): a record is found by walking the length prefixes
 * from the nearest kept offset (≤ 15 records, read in one small block). 4 bytes per 16 events in memory and
 * in cuts, instead of 4 bytes per event.
 */
export const OFFSETS_EVERY = 16;
const OFFSETS_SHIFT = 4;
/** Bytes read at once when walking from a kept offset to a record (more are read as needed). */
const WALK_READ_BYTES = 4 * 1024;
const EMPTY = Buffer.alloc(0);
/** Bytes read for one record when its size is not known yet (a larger record is read again whole). */
const RECORD_READ_BYTES = 4 * 1024;

/** Below this many bytes a plain loop copies faster than Buffer.copy (which checks and dispatches per call). */
const COPY_LOOP_BYTES_MAX = 64;

function copySmall(src: Buffer, from: number, dst: Buffer, to: number, n: number): void {
  if (n > COPY_LOOP_BYTES_MAX) {
    src.copy(dst, to, from, from + n);
    return;
  }
  for (let i = 0; i < n; i++) dst[to + i] = src[from + i];
}

export function eventFileName(startPosition: number): string {
  return String(startPosition).padStart(16, '0') + FILE_SUFFIX;
}

export function isEventFileName(name: string): boolean {
  return /^\d{16}\.evt$/.test(name);
}

/**
 * The append-only event files of one node, in position order, rolled at `fileBytesMax`, with the
 * position → offset index. Writes are buffered (`writeBufferBytesMax`) and never fsynced here: the Raft log
 * is the source of truth; `flush()` + fsync happen when a snapshot cut is taken.
 */
export class EventFiles {
  private readonly files: EventFile[] = [];
  /** offsets[g] = byte offset, inside its file, of position g × OFFSETS_EVERY. */
  private offsets: Uint32Array;
  private lastPos = -1;
  private tail: Buffer;
  private tailLen = 0;
  /** Bytes of the last file already written to the OS. */
  private flushedBytes = 0;
  private readonly recent: RecentRecords;
  /** The buffer that holds the record appendParts wrote last (at the offset it returned). */
  lastRecordBuffer: Buffer = Buffer.alloc(0);

  /**
   * `dir` must hold exactly the files in `files` (each truncated to its `bytes`); `offsets` holds the sparse
   * offsets of positions 0, 16, 32, … up to lastPosition (see sparseOffsets()).
   */
  constructor(
    private readonly dir: string,
    private readonly opts: EventFilesOptions,
    files: EventFileInfo[] = [],
    offsets: Uint32Array = new Uint32Array(1024),
  ) {
    this.offsets = offsets.length > 0 ? offsets : new Uint32Array(1024);
    this.tail = Buffer.allocUnsafe(opts.writeBufferBytesMax);
    this.recent = new RecentRecords(opts.recentCacheEvents, opts.recentCacheBytesMax);
    let expectedStart = 0;
    for (const f of files) {
      if (f.start !== expectedStart)
        throw new Error(`event files: ${f.name} starts at position ${f.start}, expected ${expectedStart}`);
      const fd = fs.openSync(path.join(dir, f.name), 'r+');
      const size = fs.fstatSync(fd).size;
      if (size !== f.bytes) {
        fs.closeSync(fd);
        throw new Error(`event files: ${f.name} has ${size} bytes, the cut says ${f.bytes}`);
      }
      this.files.push({ ...f, fd });
      expectedStart += f.count;
    }
    this.lastPos = expectedStart - 1;
    if (offsets.length < sparseCount(expectedStart))
      throw new Error(
        `event files: ${offsets.length} sparse offsets, the files' ${expectedStart} positions need ${sparseCount(expectedStart)}`,
      );
    this.flushedBytes = this.files.length > 0 ? this.files[this.files.length - 1].bytes : 0;
    this.recent.clear(this.lastPos + 1);
  }

  lastPosition(): number {
    return this.lastPos;
  }

  append(f: RecordFields): void {
    if (f.position !== this.lastPos + 1)
      throw new Error(`event files: append at position ${f.position}, expected ${this.lastPos + 1}`);
    const size = recordBytes(f);
    let file = this.files[this.files.length - 1];
    if (!file || (file.count > 0 && file.bytes + size > this.opts.fileBytesMax)) file = this.roll(f.position);
    if (this.tailLen + size > this.tail.length) {
      this.flush();
      if (size > this.tail.length)
        this.tail = Buffer.allocUnsafe(Math.max(size, this.opts.writeBufferBytesMax));
    }
    // The tail buffer is never reused after a flush, so the recent cache can hold views into it (no copy).
    const end = encodeRecord(f, this.tail, this.tailLen);
    if (end - this.tailLen !== size)
      throw new Error(`event files: record of ${end - this.tailLen} bytes, computed ${size}`);
    this.recent.add(f.position, this.tail, this.tailLen, size);
    this.tailLen = end;
    this.setOffset(f.position, file.bytes);
    file.bytes += size;
    file.count++;
    this.lastPos = f.position;
    if (this.tailLen >= this.opts.writeBufferBytesMax) this.flush();
  }

  /**
   * Appends a record assembled from byte ranges of `src` (apply passes the command entry): the 16 id bytes
   * at `idAt`, then `head` (u8 tsLen ts u16 streamLen stream) and `tail` (u16 typeLen type u32 dataLen data
   * u32 metaLen metadata), which are laid out exactly as in a record. Returns the record's start in
   * `lastRecordBuffer` (both stay valid: the tail buffer is never reused), so no view is allocated per event.
   */
  appendParts(
    position: number,
    revision: number,
    src: Buffer,
    idAt: number,
    headAt: number,
    headLen: number,
    tailAt: number,
    tailEnd: number,
  ): number {
    if (position !== this.lastPos + 1)
      throw new Error(`event files: append at position ${position}, expected ${this.lastPos + 1}`);
    const size = RECORD_HEADER_BYTES + headLen + (tailEnd - tailAt);
    let file = this.files[this.files.length - 1];
    if (!file || (file.count > 0 && file.bytes + size > this.opts.fileBytesMax)) file = this.roll(position);
    if (this.tailLen + size > this.tail.length) {
      this.flush();
      if (size > this.tail.length)
        this.tail = Buffer.allocUnsafe(Math.max(size, this.opts.writeBufferBytesMax));
    }
    const out = this.tail;
    const start = this.tailLen;
    out.writeUInt32LE(size, start);
    out.writeDoubleLE(position, start + 4);
    out.writeDoubleLE(revision, start + 12);
    copySmall(src, idAt, out, start + 20, UUID_BYTES);
    copySmall(src, headAt, out, start + RECORD_HEADER_BYTES, headLen);
    const tailLen = tailEnd - tailAt;
    if (tailLen <= COPY_LOOP_BYTES_MAX)
      copySmall(src, tailAt, out, start + RECORD_HEADER_BYTES + headLen, tailLen);
    else src.copy(out, start + RECORD_HEADER_BYTES + headLen, tailAt, tailEnd);
    this.recent.add(position, out, start, size);
    this.lastRecordBuffer = out;
    this.tailLen = start + size;
    this.setOffset(position, file.bytes);
    file.bytes += size;
    file.count++;
    this.lastPos = position;
    if (this.tailLen >= this.opts.writeBufferBytesMax) this.flush();
    return start;
  }

  /** Writes buffered bytes to the OS (no fsync). */
  flush(): void {
    if (this.tailLen === 0) return;
    const file = this.files[this.files.length - 1];
    let done = 0;
    while (done < this.tailLen) {
      done += fs.writeSync(file.fd, this.tail, done, this.tailLen - done, this.flushedBytes + done);
    }
    this.flushedBytes += this.tailLen;
    this.tailLen = 0;
    this.tail = Buffer.allocUnsafe(this.tail.length);
  }

  /** Flushes, then fsyncs every file (cheap for files already synced). */
  sync(): void {
    this.flush();
    for (const f of this.files) fs.fsyncSync(f.fd);
  }

  /** The files as they are now (call flush() first when their bytes must be on disk). */
  describe(): EventFileInfo[] {
    return this.files.map(({ name, start, count, bytes }) => ({ name, start, count, bytes }));
  }

  /** The sparse offsets of positions 0, 16, … ≤ lastPosition (a view; copy before keeping it). */
  sparseOffsets(): Uint32Array {
    return this.offsets.subarray(0, sparseCount(this.lastPos + 1));
  }

  close(): void {
    this.flush();
    for (const f of this.files) fs.closeSync(f.fd);
    this.files.length = 0;
  }

  /** Size in bytes of the record at `position`. */
  recordBytes(position: number): number {
    this.checkPosition(position);
    const cached = this.recent.bufferOf(position);
    if (cached) return cached.readUInt32LE(this.recent.startOf(position));
    const file = this.fileOf(position);
    const at = this.offsetOf(file, position);
    return this.readBytes(file, at, at + 4).readUInt32LE(0);
  }

  read(position: number): StoredEvent {
    this.checkPosition(position);
    const cached = this.recent.bufferOf(position);
    if (cached) return new StoredEvent(cached, this.recent.startOf(position));
    const file = this.fileOf(position);
    const found = this.locate(file, position);
    // The walk's last read usually holds the record too.
    if (found.in + 4 <= found.buf.length) {
      const size = found.buf.readUInt32LE(found.in);
      if (found.in + size <= found.buf.length) return new StoredEvent(found.buf, found.in);
    }
    const start = found.at;
    let buf = this.readBytes(file, start, Math.min(file.bytes, start + RECORD_READ_BYTES));
    const size = buf.readUInt32LE(0);
    if (size > buf.length) buf = this.readBytes(file, start, start + size);
    return new StoredEvent(buf, 0);
  }

  /** The byte offset of `position` in `file`: from the nearest kept offset, walking the records' lengths. */
  private offsetOf(file: EventFile, position: number): number {
    return this.locate(file, position).at;
  }

  /**
   * Walks from the nearest kept offset to `position`: its offset in the file (`at`), and the last bytes read
   * (`buf`, where the record starts at `in`; it may hold less than the whole record, or nothing).
   */
  private locate(file: EventFile, position: number): { at: number; buf: Buffer; in: number } {
    const base = position & ~(OFFSETS_EVERY - 1);
    let p = base < file.start ? file.start : base;
    let at = base < file.start ? 0 : this.offsets[base >>> OFFSETS_SHIFT];
    let window: Buffer = EMPTY;
    let windowAt = at;
    while (p < position) {
      if (at + 4 > windowAt + window.length) {
        windowAt = at;
        window = this.readBytes(file, at, Math.min(file.bytes, at + WALK_READ_BYTES));
        if (window.length < 4)
          throw new Error(`event files: ${file.name} ends inside the record of position ${p} at byte ${at}`);
      }
      at += window.readUInt32LE(at - windowAt);
      p++;
    }
    return { at, buf: window, in: at - windowAt };
  }

  /**
   * Calls `visit` for positions from..to (inclusive, ascending) until it returns false, reading files in
   * large blocks. Returns the last position visited (from - 1 if none).
   */
  scan(from: number, to: number, visit: (e: StoredEvent) => boolean): number {
    if (from > to) return from - 1;
    this.checkPosition(from);
    this.checkPosition(to);
    let p = from;
    let blockBytes = FIRST_SCAN_BLOCK_BYTES;
    // Where position p starts, when the previous block ended in the same file (no walk needed).
    let carried: { file: EventFile; at: number } | null = null;
    while (p <= to) {
      const cached = this.recent.bufferOf(p);
      if (cached) {
        if (!visit(new StoredEvent(cached, this.recent.startOf(p)))) return p;
        p++;
        carried = null;
        continue;
      }
      const file = this.fileOf(p);
      const startByte: number =
        carried !== null && carried.file === file ? carried.at : this.offsetOf(file, p);
      const last = Math.min(to, file.start + file.count - 1);
      let block = this.readBytes(file, startByte, Math.min(file.bytes, startByte + blockBytes));
      // A short scan (a small stream's few consecutive events) reads little; a long one soon reads big blocks.
      blockBytes = Math.min(READ_BLOCK_BYTES, blockBytes * 4);
      const first = block.readUInt32LE(0);
      // A record longer than a block is read whole.
      if (first > block.length) block = this.readBytes(file, startByte, startByte + first);
      let o = 0;
      for (; p <= last && o + 4 <= block.length; p++) {
        const size = block.readUInt32LE(o);
        if (o + size > block.length) break;
        const e = new StoredEvent(block, o);
        if (e.position !== p)
          throw new Error(
            `event files: ${file.name} at byte ${startByte + o} holds position ${e.position}, expected ${p}`,
          );
        if (!visit(e)) return p;
        o += size;
      }
      carried = { file, at: startByte + o };
    }
    return to;
  }

  private readBytes(file: EventFile, start: number, end: number): Buffer {
    const out = Buffer.allocUnsafe(end - start);
    const isLast = file === this.files[this.files.length - 1];
    const diskEnd = isLast ? Math.min(end, this.flushedBytes) : end;
    let done = 0;
    while (start + done < diskEnd) {
      const n = fs.readSync(file.fd, out, done, diskEnd - start - done, start + done);
      if (n === 0)
        throw new Error(`event files: ${file.name} ends at ${start + done}, expected ${diskEnd} bytes`);
      done += n;
    }
    if (isLast && end > this.flushedBytes) {
      const from = Math.max(start, this.flushedBytes) - this.flushedBytes;
      this.tail.copy(out, done, from, end - this.flushedBytes);
    }
    return out;
  }

  private fileOf(position: number): EventFile {
    let lo = 0;
    let hi = this.files.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.files[mid].start <= position) lo = mid;
      else hi = mid - 1;
    }
    return this.files[lo];
  }

  private checkPosition(p: number): void {
    if (!Number.isSafeInteger(p) || p < 0 || p > this.lastPos)
      throw new Error(`event files: position ${p} outside 0..${this.lastPos}`);
  }

  private roll(start: number): EventFile {
    this.flush();
    const name = eventFileName(start);
    const fd = fs.openSync(path.join(this.dir, name), 'w+');
    const file: EventFile = { name, start, count: 0, bytes: 0, fd };
    this.files.push(file);
    this.flushedBytes = 0;
    return file;
  }

  private setOffset(position: number, offset: number): void {
    if ((position & (OFFSETS_EVERY - 1)) !== 0) return;
    const g = position >>> OFFSETS_SHIFT;
    if (g >= this.offsets.length) {
      const grown = new Uint32Array(Math.max(1024, this.offsets.length * 2));
      grown.set(this.offsets);
      this.offsets = grown;
    }
    this.offsets[g] = offset;
  }
}

/** Sparse offsets needed for `positions` positions (0, 16, … below it). */
export function sparseCount(positions: number): number {
  return (positions + OFFSETS_EVERY - 1) >>> OFFSETS_SHIFT;
}

/** Sparse offsets from one offset per position (cuts written before offsets were sparse). */
export function sparseFromDense(dense: Uint32Array): Uint32Array {
  const out = new Uint32Array(Math.max(1024, sparseCount(dense.length)));
  for (let g = 0; g * OFFSETS_EVERY < dense.length; g++) out[g] = dense[g * OFFSETS_EVERY];
  return out;
}
