/**
 * Writing a snapshot's files into a (temporary) snapshot directory, before the store publishes it:
 *   a stream: one file `data`, checksummed as it is written (version 1);
 *   parts: bytes parts into the one file `bytes` (adjacent ones merged), file parts hard-linked as `part-N`
 *   to the state machine's files, or copied (first `length` bytes, CRC checked) when link(2) fails
 *   (version 2).
 * Everything written is fsynced; each function returns the manifest to publish (see snapshot-manifest.ts).
 * A file part that is missing or shorter than its length fails with a plain Error (not an I/O error: the
 * storage itself is fine).
 */
import { SnapshotMeta } from '../core/types';
import { SnapshotPart } from '../node/ports';
import { crc32cUpdate } from './crc';
import { FileOps, promisify } from './file-ops';
import { assert, ioChunkBytes } from './limits';
import {
  Checksummer,
  PartEntry,
  PartsManifest,
  StreamManifest,
  bytesFileName,
  partsManifest,
  streamManifest,
} from './snapshot-manifest';

/** link(2) errors after which a file part is copied instead (other file system, links not supported, too many links). */
const linkFallbackCodes = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EACCES']);

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

/** Writes a streamed snapshot into `tmp/data` (version 1). */
export async function writeStream(
  ops: FileOps,
  tmp: string,
  meta: SnapshotMeta,
  data: AsyncIterable<Uint8Array>,
): Promise<StreamManifest> {
  const sums = new Checksummer();
  const fd = ops.openSync(`${tmp}/data`, 'w');
  try {
    for await (const chunk of data) {
      let o = 0;
      while (o < chunk.length) {
        o += await promisify<number>((cb) => ops.write(fd, chunk, o, chunk.length - o, sums.size + o, cb));
      }
      sums.update(chunk);
    }
    await promisify<void>((cb) => ops.fsync(fd, cb));
  } finally {
    ops.closeSync(fd);
  }
  sums.finish();
  return streamManifest(meta, sums);
}

/** Bytes parts go into `bytes` (adjacent ones merged into one entry), file parts are linked as part-N. */
export async function writeParts(
  ops: FileOps,
  tmp: string,
  meta: SnapshotMeta,
  parts: SnapshotPart[],
  log: (line: string) => void,
  storeDir: string,
): Promise<PartsManifest> {
  const entries: PartEntry[] = [];
  let size = 0;
  let bytesLen = 0;
  let copied = 0;
  const fd = ops.openSync(`${tmp}/${bytesFileName}`, 'w');
  try {
    for (const p of parts) {
      if ('bytes' in p) {
        const b = p.bytes;
        if (b.length === 0) continue;
        for (let o = 0; o < b.length;) {
          o += await promisify<number>((cb) => ops.write(fd, b, o, b.length - o, bytesLen + o, cb));
        }
        const last = entries[entries.length - 1];
        if (last !== undefined && last.kind === 'bytes') {
          last.length += b.length;
          last.crc32c = crc32cUpdate(last.crc32c, b);
        } else {
          const crc32c = crc32cUpdate(0, b);
          entries.push({ name: bytesFileName, offset: bytesLen, length: b.length, crc32c, kind: 'bytes' });
        }
        bytesLen += b.length;
        size += b.length;
      } else {
        assert(
          Number.isSafeInteger(p.length) && p.length >= 0,
          `snapshot part ${p.file}: length ${p.length} is a byte count`,
        );
        if (p.length === 0) continue;
        const name = `part-${String(entries.length).padStart(6, '0')}`;
        if (!(await linkOrCopy(ops, p, `${tmp}/${name}`))) copied++;
        entries.push({ name, offset: 0, length: p.length, crc32c: p.crc32c >>> 0, kind: 'file' });
        size += p.length;
      }
    }
    await promisify<void>((cb) => ops.fsync(fd, cb));
  } finally {
    ops.closeSync(fd);
  }
  if (copied > 0)
    log(
      `storage: snapshot ${meta.index}/${meta.term}: ${copied} file part(s) could not be hard-linked into ${storeDir} and were copied`,
    );
  return partsManifest(meta, size, entries);
}

/** Hard-links a file part to `dst` (true), or copies its first `length` bytes where links fail (false). */
async function linkOrCopy(
  ops: FileOps,
  p: { file: string; length: number; crc32c: number },
  dst: string,
): Promise<boolean> {
  let size: number;
  try {
    size = ops.statSync(p.file).size;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT')
      throw new Error(`storage: snapshot part ${p.file} does not exist (the state machine removed it?)`);
    throw e;
  }
  if (size < p.length)
    throw new Error(`storage: snapshot part ${p.file} has ${size} bytes, fewer than its length ${p.length}`);
  try {
    ops.linkSync(p.file, dst);
    return true;
  } catch (e) {
    if (!linkFallbackCodes.has(errnoCode(e) ?? '')) throw e;
  }
  await copyPrefix(ops, p, dst);
  return false;
}

/** Copies the first `length` bytes of a file part, checking its CRC, and fsyncs the copy. */
async function copyPrefix(
  ops: FileOps,
  p: { file: string; length: number; crc32c: number },
  dst: string,
): Promise<void> {
  const src = ops.openSync(p.file, 'r');
  try {
    const out = ops.openSync(dst, 'w');
    try {
      const buf = Buffer.allocUnsafe(Math.min(ioChunkBytes, Math.max(1, p.length)));
      let crc = 0;
      for (let pos = 0; pos < p.length;) {
        const want = Math.min(buf.length, p.length - pos);
        const got = await promisify<number>((cb) => ops.read(src, buf, 0, want, pos, cb));
        if (got === 0)
          throw new Error(`storage: snapshot part ${p.file} ended at ${pos} of its ${p.length} bytes`);
        crc = crc32cUpdate(crc, buf.subarray(0, got));
        for (let o = 0; o < got;) {
          o += await promisify<number>((cb) => ops.write(out, buf, o, got - o, pos + o, cb));
        }
        pos += got;
      }
      if (crc !== p.crc32c >>> 0)
        throw new Error(`storage: snapshot part ${p.file} does not match the CRC-32C the state machine gave`);
      await promisify<void>((cb) => ops.fsync(out, cb));
    } finally {
      ops.closeSync(out);
    }
  } finally {
    ops.closeSync(src);
  }
}
