/**
 * The Raft log on disk while it runs: appending staged records to segment files, reading them back
 * (through the entry cache), syncing, truncating, compacting and dropping segments, sealing full segments
 * and preparing the next one. Encoding entries into the staging buffer before a write is in
 * segment-staging.ts; what happens when the log is opened (scanning, torn-tail truncation, repair) is in
 * segment-recovery.ts; reading one segment file record by record is in segment-scan.ts.
 */
import { Entry } from '../core/types';
import { EntryCache } from './entry-cache';
import { StorageCorruptionError } from './errors';
import { FileOps, fsyncDir, promisify, readFully, writeFully } from './file-ops';
import { assert, ioChunkBytes, readFdsOpenMax } from './limits';
import { checkRecord, decodeRecord, recordHeaderBytes, recordIndex } from './record';
import { Segment, segmentName, sidecarName } from './segment';
import {
  lastRecordCrc,
  recoverSegments,
  removeSegmentFiles,
  spareName,
  zeroFillRange,
} from './segment-recovery';
import { SegmentStaging } from './segment-staging';

export interface SegmentLogOptions {
  segmentBytes: number;
  cacheEntries: number;
  cacheBytes: number;
  /** Fill new segment files with zeros before use, so an fdatasync flushes data only (no block allocation). */
  preallocate: boolean;
  ops: FileOps;
  log: (line: string) => void;
}

/**
 * The Raft log as a directory of append-only segment files named by their first index.
 *
 * Appends are staged: `stage` encodes entries into one buffer (no per-entry allocation besides the cache
 * slot; see segment-staging.ts); `writeStaged` writes that buffer with one write call; `sync` makes it
 * durable. The caller (the group commit) decides when. Index ranges, from low to high:
 *   [first, lastWritten]       in segment files (durable once a later sync completes)
 *   [staged.first, tail]       encoded in the staging buffer, not written yet
 * A stage that starts at or below `tail` truncates: inside the staging buffer by rewinding it, below it by
 * truncating the files before the next write (`staged.truncateFrom`).
 */
export class SegmentLog {
  private readonly segments: Segment[] = [];
  private lastWritten: number;
  private readonly staged: SegmentStaging;

  private readonly cache: EntryCache;
  /** Sealed segments with an open read descriptor, least recently used first. */
  private readonly readFds = new Set<Segment>();
  private spare: 'none' | 'preparing' | 'ready' = 'none';
  /** Writes made, and the count of them the last completed sync covered. */
  private writeSeq = 0;
  private syncedSeq = 0;
  /** A segment was created on the write path; the next sync also fsyncs the directory. */
  private dirSyncPending = false;
  private sparePrep: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly dir: string,
    private readonly opts: SegmentLogOptions,
    base: number,
  ) {
    this.cache = new EntryCache(opts.cacheEntries, opts.cacheBytes);
    this.lastWritten = base - 1;
    this.staged = new SegmentStaging(this.cache, this, base);
  }

  /**
   * Opens (or creates) the log in `dir`. Sealed segments are loaded from their sidecar index; only the last
   * segment is scanned. A torn tail is cut off; damage before it throws StorageCorruptionError.
   * `snapshotIndex` lets an interrupted compaction be finished instead of reported as a gap.
   * (See segment-recovery.ts.)
   */
  static open(dir: string, opts: SegmentLogOptions, snapshotIndex: number): SegmentLog {
    const { segments, spareReady } = recoverSegments(dir, opts, snapshotIndex);
    const log = new SegmentLog(dir, opts, snapshotIndex + 1);
    for (const seg of segments) log.segments.push(seg);
    if (log.segments.length > 0) {
      const lastSeg = log.segments[log.segments.length - 1];
      log.lastWritten = lastSeg.next - 1;
      log.staged.continueAt(lastSeg.next);
    }
    if (spareReady) log.spare = 'ready';
    else log.startSparePrep();
    return log;
  }

  // ---- reading -------------------------------------------------------------------------------------

  /** First index held in the files, or null when the log is empty. */
  firstWritten(): number | null {
    if (this.segments.length === 0) return null;
    const first = this.segments[0].first;
    return first <= this.lastWritten ? first : null;
  }

  lastWrittenIndex(): number {
    return this.lastWritten;
  }

  /** Last staged index (what the next append follows). */
  tailIndex(): number {
    return this.staged.tail;
  }

  /** Term of a written entry; undefined outside [firstWritten, lastWritten]. */
  termAt(index: number): number | undefined {
    const e = this.cache.get(index);
    if (e !== undefined && index <= this.lastWritten) return e.term;
    const seg = this.findSegment(index);
    if (seg === null || index > this.lastWritten) return undefined;
    return seg.termAt(index);
  }

  /** Written entries in [lo, hi): at least one, then stopping before `maxBytes` of payload is exceeded. */
  read(lo: number, hi: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let bytes = 0;
    let i = lo;
    while (i < hi) {
      const e = this.cache.get(i);
      if (e !== undefined) {
        if (out.length > 0 && bytes + e.data.length > maxBytes) break;
        out.push(e);
        bytes += e.data.length;
        i++;
        continue;
      }
      const seg = this.findSegment(i);
      assert(seg !== null, `entry ${i} is in a segment`);
      const stop = Math.min(hi, seg.next);
      let j = i;
      for (; j < stop; j++) {
        const payload = seg.offsetOf(j + 1) - seg.offsetOf(j) - recordHeaderBytes;
        if (out.length + (j - i) > 0 && bytes + payload > maxBytes) break;
        bytes += payload;
      }
      if (j === i) break;
      this.readRecords(seg, i, j, out);
      i = j;
      if (j < stop) break;
    }
    return out;
  }

  /** The newest Config entry in (after, upTo], or 0. */
  lastConfigIndex(after: number, upTo: number): number {
    for (let k = this.segments.length - 1; k >= 0; k--) {
      const configs = this.segments[k].configs;
      for (let c = configs.length - 1; c >= 0; c--) {
        if (configs[c] <= upTo) return configs[c] > after ? configs[c] : 0;
      }
      if (this.segments[k].first <= after) return 0;
    }
    return 0;
  }

  /** Creates the first segment of an empty log now (zero-filled), so the first append does not pay for it. */
  ensureSegment(): void {
    if (this.segments.length === 0) this.createSegment(this.staged.first, true);
  }

  firstSegmentPath(): string {
    return this.segments.length > 0 ? this.segments[0].path : this.dir;
  }

  segmentCount(): number {
    return this.segments.length;
  }

  // ---- staging and writing -------------------------------------------------------------------------

  /**
   * Encodes entries for the next write. They must continue the log at `tail + 1`, or start at or below it
   * (truncating from there), and never at or below `minIndex - 1` (the snapshot). (See segment-staging.ts.)
   */
  stage(entries: Entry[], minIndex: number): void {
    this.staged.stage(entries, minIndex);
  }

  /** Bytes staged and not written. */
  stagedByteCount(): number {
    return this.staged.bytes;
  }

  hasStaged(): boolean {
    return this.staged.hasStaged();
  }

  /** The next write truncates files or rolls to a new segment: it must not overlap an fsync in flight. */
  writeNeedsQuiescence(): boolean {
    if (this.staged.truncateFrom !== null) return true;
    const seg = this.active();
    return seg === null || (seg.count > 0 && seg.end + this.staged.bytes > this.opts.segmentBytes);
  }

  /**
   * Writes the staged records with one write call (truncating or rolling first when needed). Returns true
   * when everything written before was fsynced on the way (a roll or truncation syncs synchronously).
   */
  writeStaged(): boolean {
    assert(!this.closed, 'log is open');
    const st = this.staged;
    let syncedBefore = false;
    if (st.truncateFrom !== null) {
      this.truncateFiles(st.truncateFrom);
      st.truncateFrom = null;
      syncedBefore = true;
    }
    if (st.count === 0) return syncedBefore;
    let seg = this.active();
    if (seg !== null && seg.count > 0 && seg.end + st.bytes > this.opts.segmentBytes) {
      if (this.seal(seg)) syncedBefore = true;
      seg = null;
    }
    if (seg === null) seg = this.createSegment(st.first);
    assert(seg.next === st.first, `staged records from ${st.first} continue segment ending at ${seg.next}`);
    assert(seg.end + st.bytes < 2 ** 32, 'segment offsets fit 32 bits');
    writeFully(this.opts.ops, this.fdOf(seg), st.buf, 0, st.bytes, seg.end);
    this.writeSeq++;
    seg.pushBatch(seg.end, st.rel, st.count, st.terms, st.configs);
    this.lastWritten = st.first + st.count - 1;
    st.written();
    return syncedBefore;
  }

  /** fdatasync of the segment being written; every record written before the call is durable when cb runs. */
  sync(cb: (err: Error | null) => void): void {
    const seg = this.active();
    const seq = this.writeSeq;
    const done = (err: Error | null) => {
      if (err === null && seq > this.syncedSeq) this.syncedSeq = seq;
      cb(err);
    };
    if (seg === null || seg.fd === null) {
      queueMicrotask(() => done(null));
      return;
    }
    if (!this.dirSyncPending) {
      this.opts.ops.fdatasync(seg.fd, done);
      return;
    }
    // The segment was just created: its directory entry becomes durable with its first batch.
    this.dirSyncPending = false;
    const { ops } = this.opts;
    let waiting = 2;
    let failure: Error | null = null;
    const both = (err: Error | null) => {
      failure ??= err;
      if (--waiting === 0) done(failure);
    };
    const dirFd = ops.openSync(this.dir, 'r');
    ops.fsync(dirFd, (err) => {
      ops.closeSync(dirFd);
      both(err);
    });
    ops.fdatasync(seg.fd, both);
  }

  // ---- truncation, compaction, reset -----------------------------------------------------------------

  /** Deletes whole segments whose entries are all ≤ upTo; the segment being written is always kept. */
  compact(upTo: number): number {
    let removed = 0;
    while (this.segments.length > 1 && this.segments[0].next - 1 <= upTo) {
      this.deleteSegment(this.segments.shift()!);
      removed++;
    }
    if (removed > 0) fsyncDir(this.opts.ops, this.dir);
    return removed;
  }

  /**
   * After installing a snapshot at (index, term): keep the log after it if the log holds that entry with
   * that term (dropping whole segments up to it), otherwise drop the whole log and continue at index + 1.
   * Nothing may be staged.
   */
  resetToSnapshot(index: number, term: number): 'kept-suffix' | 'dropped' {
    assert(!this.hasStaged(), 'nothing staged during a snapshot install');
    if (index <= this.lastWritten && this.termAt(index) === term) {
      this.compact(index);
      return 'kept-suffix';
    }
    this.dropAll(index + 1);
    return 'dropped';
  }

  /** Drops every segment (newest first, so a crash leaves a prefix) and continues at `next`. */
  dropAll(next: number): void {
    assert(!this.hasStaged(), 'nothing staged when the log is dropped');
    while (this.segments.length > 0) this.deleteSegment(this.segments.pop()!);
    fsyncDir(this.opts.ops, this.dir);
    this.cache.clear();
    this.lastWritten = next - 1;
    this.staged.continueAt(next);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.sparePrep;
    for (const seg of this.segments) this.closeFd(seg);
  }

  // ---- internals -----------------------------------------------------------------------------------

  private active(): Segment | null {
    return this.segments.length > 0 ? this.segments[this.segments.length - 1] : null;
  }

  private findSegment(index: number): Segment | null {
    const segs = this.segments;
    let lo = 0;
    let hi = segs.length - 1;
    if (hi < 0 || index < segs[0].first) return null;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (segs[mid].first <= index) lo = mid;
      else hi = mid - 1;
    }
    return index < segs[lo].next ? segs[lo] : null;
  }

  private readRecords(seg: Segment, lo: number, hi: number, out: Entry[]): void {
    const start = seg.offsetOf(lo);
    const len = seg.offsetOf(hi) - start;
    const buf = Buffer.allocUnsafe(len);
    const n = readFully(this.opts.ops, this.fdOf(seg), buf, 0, len, start);
    if (n !== len)
      throw new StorageCorruptionError(
        seg.path,
        start + n,
        `file ends before the record of index ${lo + (n > 0 ? 1 : 0)}`,
      );
    let o = 0;
    for (let i = lo; i < hi; i++) {
      const check = checkRecord(buf, o);
      if (check !== 'ok' || recordIndex(buf, o) !== i) {
        throw new StorageCorruptionError(
          seg.path,
          start + o,
          `record of index ${i} fails its check (${check === 'ok' ? 'index mismatch' : check}) on read`,
        );
      }
      out.push(decodeRecord(buf, o));
      o = seg.offsetOf(i + 1) - start;
    }
  }

  private fdOf(seg: Segment): number {
    if (seg.fd === null) {
      seg.fd = this.opts.ops.openSync(seg.path, 'r+');
    }
    if (seg !== this.active()) {
      this.readFds.delete(seg);
      this.readFds.add(seg);
      if (this.readFds.size > readFdsOpenMax) {
        const oldest = this.readFds.values().next().value as Segment;
        this.closeFd(oldest);
      }
    }
    return seg.fd;
  }

  private closeFd(seg: Segment): void {
    this.readFds.delete(seg);
    if (seg.fd !== null) {
      this.opts.ops.closeSync(seg.fd);
      seg.fd = null;
    }
  }

  private deleteSegment(seg: Segment): void {
    this.closeFd(seg);
    removeSegmentFiles(this.opts.ops, this.dir, seg);
    this.cache.drop(seg.first, seg.next - 1);
  }

  private sidecarPath(first: number): string {
    return `${this.dir}/${sidecarName(first)}`;
  }

  /** Removes written records from index t on: later segments are deleted (newest first), the rest zeroed. */
  private truncateFiles(t: number): void {
    const { ops } = this.opts;
    assert(this.segments.length > 0 && t >= this.segments[0].first, `truncation point ${t} inside the log`);
    let deleted = false;
    while (this.segments.length > 1 && this.segments[this.segments.length - 1].first > t) {
      this.deleteSegment(this.segments.pop()!);
      deleted = true;
    }
    if (deleted) fsyncDir(ops, this.dir);
    const seg = this.segments[this.segments.length - 1];
    if (seg.hasSidecar) {
      ops.unlinkSync(this.sidecarPath(seg.first));
      fsyncDir(ops, this.dir);
      seg.hasSidecar = false;
    }
    this.readFds.delete(seg);
    const fd = this.fdOf(seg);
    const from = seg.offsetOf(Math.min(t, seg.next));
    zeroFillRange(ops, fd, from, seg.end);
    ops.fdatasyncSync(fd);
    this.syncedSeq = this.writeSeq;
    seg.truncate(Math.min(t, seg.next) - seg.first);
    this.lastWritten = seg.next - 1;
  }

  /** Makes a full segment read-only: fsync, then a sidecar index so the next open needs no scan. */
  /**
   * Makes a full segment read-only and writes its sidecar index (not fsynced: a lost or torn sidecar only
   * costs a scan at the next open). Returns true if it had to fsync the segment (data written since the
   * last completed sync; the group commit normally rolls only when everything written is durable).
   */
  private seal(seg: Segment): boolean {
    const { ops } = this.opts;
    const synced = this.syncedSeq < this.writeSeq;
    if (synced) ops.fdatasyncSync(this.fdOf(seg));
    this.syncedSeq = this.writeSeq;
    const idx = seg.encodeSidecar(lastRecordCrc(ops, seg, this.fdOf(seg)));
    const fd = ops.openSync(this.sidecarPath(seg.first), 'w');
    try {
      writeFully(ops, fd, idx, 0, idx.length, 0);
    } finally {
      ops.closeSync(fd);
    }
    seg.hasSidecar = true;
    this.readFds.add(seg);
    return synced;
  }

  /**
   * Starts the segment for index `first`: the prepared spare when there is one; otherwise a new file,
   * zero-filled only if `zeroFill` (at open; on the write path it grows as written instead of stalling).
   */
  private createSegment(first: number, zeroFill = false): Segment {
    const { ops } = this.opts;
    const path = `${this.dir}/${segmentName(first)}`;
    if (this.spare === 'ready') {
      ops.renameSync(`${this.dir}/${spareName}`, path);
      this.spare = 'none';
    } else {
      const fd = ops.openSync(path, 'w');
      try {
        if (zeroFill && this.opts.preallocate) zeroFillRange(ops, fd, 0, this.opts.segmentBytes);
        if (zeroFill) ops.fsyncSync(fd);
      } finally {
        ops.closeSync(fd);
      }
    }
    if (zeroFill) fsyncDir(ops, this.dir);
    else this.dirSyncPending = true;
    const seg = new Segment(first, path, 1 << 16);
    seg.fd = ops.openSync(path, 'r+');
    this.segments.push(seg);
    this.startSparePrep();
    return seg;
  }

  /** Prepares the next segment file (zero-filled, fsynced) in the background. */
  private startSparePrep(): void {
    if (!this.opts.preallocate || this.spare !== 'none' || this.closed) return;
    this.spare = 'preparing';
    const { ops } = this.opts;
    const path = `${this.dir}/${spareName}`;
    const size = this.opts.segmentBytes;
    this.sparePrep = (async () => {
      const fd = ops.openSync(path, 'w');
      try {
        const zeros = Buffer.alloc(Math.min(ioChunkBytes, size));
        for (let pos = 0; pos < size && !this.closed; pos += zeros.length) {
          const n = Math.min(zeros.length, size - pos);
          await promisify<number>((cb) => ops.write(fd, zeros, 0, n, pos, cb));
        }
        await promisify<void>((cb) => ops.fsync(fd, cb));
      } finally {
        ops.closeSync(fd);
      }
      this.spare = this.closed ? 'none' : 'ready';
    })().catch((err: Error) => {
      this.spare = 'none';
      this.opts.log(`storage: could not prepare the next segment file ${path}: ${err.message}`);
    });
  }
}
