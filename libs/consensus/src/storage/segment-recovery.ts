/**
 * Opening the segment log (recovery): what `SegmentLog.open` finds on disk is checked and repaired before
 * the log is used.
 *   - the spare segment file (`spare.seg.tmp`, zero-filled ahead of need) is kept if complete, else removed;
 *   - sidecar indexes without their segment are removed;
 *   - sealed segments are loaded from their sidecar when it and the segment's last record agree, otherwise
 *     rebuilt by a full scan (which must be clean: damage in a sealed segment is corruption);
 *   - the last segment is scanned record by record: a torn tail (nothing valid after the damage) is zeroed
 *     and reported in the log; damage followed by a valid record is corruption;
 *   - segments must follow each other; a gap the snapshot covers is an interrupted compaction, finished here.
 * Corruption is a StorageCorruptionError naming the file and offset. Scanning a single file is in
 * segment-scan.ts. The small file helpers at the end are shared with the log's write path.
 */
import { StorageCorruptionError } from './errors';
import { FileOps, fsyncDir, readFully, writeFully } from './file-ops';
import { ioChunkBytes } from './limits';
import { checkRecord, recordIndex } from './record';
import { Segment, parseSegmentName, segmentName, sidecarName } from './segment';
import { scanSegment } from './segment-scan';
import type { SegmentLogOptions } from './segment-log';

/** The next segment file, prepared (zero-filled, fsynced) before it is needed. */
export const spareName = 'spare.seg.tmp';

type RecoveryOptions = Pick<SegmentLogOptions, 'ops' | 'log' | 'preallocate' | 'segmentBytes'>;

export interface RecoveredSegments {
  /** The segments in index order; the last one has its descriptor open. */
  segments: Segment[];
  /** The spare segment file is complete and durable. */
  spareReady: boolean;
}

/**
 * Opens (or creates) the log directory `dir` and recovers its segments. `snapshotIndex` lets an interrupted
 * compaction be finished instead of reported as a gap.
 */
export function recoverSegments(
  dir: string,
  opts: RecoveryOptions,
  snapshotIndex: number,
): RecoveredSegments {
  const { ops } = opts;
  ops.mkdirSync(dir, { recursive: true });
  const names = ops.readdirSync(dir);
  let spareReady = false;
  if (names.includes(spareName)) {
    // Only zeros are ever written to the spare: if it reached full size it is ready (once fsynced).
    const sparePath = `${dir}/${spareName}`;
    if (opts.preallocate && ops.statSync(sparePath).size === opts.segmentBytes) {
      const fd = ops.openSync(sparePath, 'r+');
      try {
        ops.fsyncSync(fd);
      } finally {
        ops.closeSync(fd);
      }
      spareReady = true;
    } else {
      ops.unlinkSync(sparePath);
    }
  }
  const firsts = names
    .map(parseSegmentName)
    .filter((f): f is number => f !== null)
    .sort((a, b) => a - b);
  const segNames = new Set(firsts.map(segmentName));
  for (const n of names) {
    if (n.endsWith('.idx') && !segNames.has(n.replace(/\.idx$/, '.seg'))) ops.unlinkSync(`${dir}/${n}`);
  }
  const segments: Segment[] = [];
  for (let k = 0; k < firsts.length; k++) {
    const last = k === firsts.length - 1;
    segments.push(last ? recoverTail(dir, opts, firsts[k], names) : loadSealed(dir, opts, firsts[k], names));
  }
  checkContinuity(dir, opts, segments, snapshotIndex);
  return { segments, spareReady };
}

/** A sealed segment: from its sidecar when that checks out, else by a full scan (which must be clean). */
function loadSealed(dir: string, opts: RecoveryOptions, first: number, names: string[]): Segment {
  const { ops } = opts;
  const path = `${dir}/${segmentName(first)}`;
  const idxName = sidecarName(first);
  let why = 'no sidecar index';
  if (names.includes(idxName)) {
    const fromSidecar = Segment.decodeSidecar(ops.readFileSync(`${dir}/${idxName}`), first, path);
    if (typeof fromSidecar !== 'string') {
      const ok = verifyLastRecord(opts, fromSidecar);
      if (ok === null) return fromSidecar;
      why = ok;
    } else {
      why = fromSidecar;
    }
  }
  const fd = ops.openSync(path, 'r+');
  try {
    const { segment, damage } = scanSegment(ops, fd, path, first);
    if (damage !== null)
      throw new StorageCorruptionError(path, damage.offset, `${damage.reason} in a sealed segment`);
    opts.log(`storage: rebuilt the index of ${path} by a scan (${why}): ${segment.count} entries`);
    const idx = segment.encodeSidecar(lastRecordCrc(ops, segment, fd));
    const ifd = ops.openSync(`${dir}/${idxName}`, 'w');
    try {
      writeFully(ops, ifd, idx, 0, idx.length, 0);
      ops.fsyncSync(ifd);
    } finally {
      ops.closeSync(ifd);
    }
    segment.hasSidecar = true;
    return segment;
  } finally {
    ops.closeSync(fd);
  }
}

/** Checks the segment's last record against its sidecar; a string says what is wrong. */
function verifyLastRecord(opts: RecoveryOptions, seg: Segment): string | null {
  if (seg.count === 0) return null;
  const { ops } = opts;
  const fd = ops.openSync(seg.path, 'r');
  try {
    const start = seg.offsetOf(seg.next - 1);
    const len = seg.end - start;
    const buf = Buffer.allocUnsafe(len);
    if (readFully(ops, fd, buf, 0, len, start) !== len) return 'segment shorter than its sidecar says';
    if (
      checkRecord(buf, 0) !== 'ok' ||
      recordIndex(buf, 0) !== seg.next - 1 ||
      buf.readUInt32LE(4) !== seg.lastCrc
    )
      return 'last record does not match the sidecar';
    return null;
  } finally {
    ops.closeSync(fd);
  }
}

/** The last segment: scanned record by record; a torn tail is zeroed, damage before it is reported. */
function recoverTail(dir: string, opts: RecoveryOptions, first: number, names: string[]): Segment {
  const { ops } = opts;
  const path = `${dir}/${segmentName(first)}`;
  if (names.includes(sidecarName(first))) ops.unlinkSync(`${dir}/${sidecarName(first)}`);
  const fd = ops.openSync(path, 'r+');
  let keepFd = false;
  try {
    const { segment, damage } = scanSegment(ops, fd, path, first);
    if (damage !== null) {
      if (damage.validAfter !== null) {
        throw new StorageCorruptionError(
          path,
          damage.offset,
          `${damage.reason}, but a valid record (index ${damage.validAfter.index}) follows at offset ` +
            `${damage.validAfter.offset}: this is damage inside the log, not a torn tail`,
        );
      }
      const lost = damage.garbageEnd - damage.offset;
      zeroFillRange(ops, fd, damage.offset, damage.garbageEnd);
      ops.fdatasyncSync(fd);
      opts.log(
        `storage: recovered ${path}: truncated a torn tail at offset ${damage.offset} (${damage.reason}): ` +
          `${lost} bytes discarded, last index is now ${segment.next - 1}`,
      );
    }
    segment.fd = fd;
    keepFd = true;
    return segment;
  } finally {
    if (!keepFd) ops.closeSync(fd);
  }
}

/**
 * Segments must follow each other. A gap at the start that the snapshot covers is an interrupted compaction
 * (its unlinks reached the disk out of order): finished here. Any other gap is damage.
 */
function checkContinuity(
  dir: string,
  opts: RecoveryOptions,
  segments: Segment[],
  snapshotIndex: number,
): void {
  for (let k = segments.length - 1; k > 0; k--) {
    const prev = segments[k - 1];
    const seg = segments[k];
    if (prev.next === seg.first) continue;
    if (seg.first <= snapshotIndex + 1) {
      // An interrupted compaction (unlinks reached the disk out of order): finish it.
      const stale = segments.splice(0, k);
      for (const s of stale) removeSegmentFiles(opts.ops, dir, s);
      fsyncDir(opts.ops, dir);
      opts.log(
        `storage: finished an interrupted compaction: removed ${stale.length} segment(s) before ${seg.path}`,
      );
      return;
    }
    throw new StorageCorruptionError(
      seg.path,
      0,
      `segment starts at index ${seg.first} but the previous segment ${prev.path} ends at ${prev.next - 1}: a segment is missing`,
    );
  }
}

// ---- shared with the log's write path ----------------------------------------------------------------

/** Removes a segment's file and its sidecar (the caller closes its descriptor first). */
export function removeSegmentFiles(ops: FileOps, dir: string, seg: Segment): void {
  ops.unlinkSync(seg.path);
  const sidecar = `${dir}/${sidecarName(seg.first)}`;
  if (seg.hasSidecar || ops.existsSync(sidecar)) ops.unlinkSync(sidecar);
}

/** The CRC field of the segment's last record (0 for an empty segment). */
export function lastRecordCrc(ops: FileOps, seg: Segment, fd: number): number {
  if (seg.count === 0) return 0;
  const b = Buffer.alloc(8);
  readFully(ops, fd, b, 0, 8, seg.offsetOf(seg.next - 1));
  return b.readUInt32LE(4);
}

/** Writes zeros over [from, to). */
export function zeroFillRange(ops: FileOps, fd: number, from: number, to: number): void {
  if (to <= from) return;
  const zeros = Buffer.alloc(Math.min(ioChunkBytes, to - from));
  for (let pos = from; pos < to; pos += zeros.length) {
    writeFully(ops, fd, zeros, 0, Math.min(zeros.length, to - pos), pos);
  }
}
