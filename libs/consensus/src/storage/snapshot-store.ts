/**
 * The snapshot store: the snapshots of one node on disk, and the class the rest of the storage uses to save,
 * serve and install them. Under <dir>/:
 *   <index:20>-<term>/manifest.json + data          a snapshot as one file (version 1)
 *   <index:20>-<term>/manifest.json + bytes, part-N a snapshot in parts (version 2)
 *   tmp-<n>/                                        a snapshot being written (removed on open)
 *   partial/meta.json, data, chunks                 an incoming transfer, kept across restarts
 * A snapshot is written into a temp directory, fsynced, and published by renaming the directory; the
 * newest N are kept.
 *
 * Version 1 (a streamed or received snapshot): `data` holds the bytes; open reads the latest once to check
 * every block. Version 2 (a snapshot the state machine handed over in parts, see SnapshotPart): bytes parts
 * are written into the one file `bytes`; file parts are hard links (`part-N`) to the state machine's files,
 * so no history is copied (copied instead when the file system refuses the link). A linked file may be
 * longer than its part (a growing file shares its inode): only the first `length` bytes belong to the
 * snapshot, and the state machine never changes those. Open checks v2 cheaply; the linked parts are checked
 * when streamed (read() compares each part's CRC, and the receiver of a transfer checks the state machine's
 * own per-file checksums inside the stream).
 *
 * The other jobs live beside this file: the manifest format (snapshot-manifest.ts), writing a snapshot's
 * files (snapshot-write.ts), the incoming transfer (snapshot-transfer.ts), opening and checking the
 * directory at start-up (snapshot-recovery.ts).
 */
import { SnapshotChunk } from '../core/ready';
import { SnapshotMeta, emptyConfig } from '../core/types';
import { SnapshotContent } from '../node/ports';
import { crc32cRange, crc32cUpdate } from './crc';
import { StorageCorruptionError } from './errors';
import { FileOps, fsyncDir, promisify, readFully } from './file-ops';
import { assert, ioChunkBytes } from './limits';
import {
  Located,
  Manifest,
  Published,
  StreamManifest,
  partsManifestVersion,
  toPublished,
  writeManifest,
} from './snapshot-manifest';
import { openSnapshots } from './snapshot-recovery';
import { IncomingTransfer } from './snapshot-transfer';
import { writeParts, writeStream } from './snapshot-write';

export { snapshotBlockBytes } from './snapshot-manifest';
export type { Manifest, PartEntry, PartsManifest, StreamManifest } from './snapshot-manifest';

/** Descriptors kept open for chunk() reads of the latest snapshot (reads move through the parts in order). */
const chunkFdsMax = 4;

function publishedName(index: number, term: number): string {
  return `${String(index).padStart(20, '0')}-${term}`;
}

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

export class SnapshotStore {
  /** Newest first. */
  private published: Published[] = [];
  /** Open descriptors of the latest snapshot's files, for chunk() (least recently opened first). */
  private readonly chunkFds = new Map<string, number>();
  /** The incoming transfer (partial/). */
  private readonly transfer: IncomingTransfer;
  private tmpCounter = 0;

  private constructor(
    private readonly dir: string,
    private readonly ops: FileOps,
    private readonly keep: number,
    private readonly log: (line: string) => void,
  ) {
    assert(keep >= 1, `snapshotsKeep ${keep} ≥ 1`);
    this.transfer = new IncomingTransfer(dir, ops, log);
  }

  static open(dir: string, ops: FileOps, keep: number, log: (line: string) => void): SnapshotStore {
    const store = new SnapshotStore(dir, ops, keep, log);
    store.published = openSnapshots(ops, dir, () => store.transfer.recover());
    store.prune();
    return store;
  }

  latestMeta(): SnapshotMeta {
    return this.published.length > 0 ? this.published[0].meta : { index: 0, term: 0, config: emptyConfig() };
  }

  latestManifest(): Manifest | null {
    return this.published.length > 0 ? this.published[0].manifest : null;
  }

  /** Synchronous chunk of the latest snapshot's bytes (across part boundaries). */
  chunk(offset: number, maxBytes: number): { data: Uint8Array; done: boolean } {
    const latest = this.published[0];
    if (latest === undefined) return { data: new Uint8Array(0), done: true };
    const size = latest.manifest.size;
    assert(offset >= 0 && offset <= size, `snapshot chunk offset ${offset} within ${size} bytes`);
    const n = Math.min(Math.max(1, maxBytes), size - offset);
    const data = Buffer.allocUnsafe(n);
    const parts = latest.parts;
    // The last part starting at or before `offset` (parts are never empty, so it contains `offset`).
    let lo = 0;
    for (let hi = parts.length - 1; lo < hi;) {
      const mid = (lo + hi + 1) >> 1;
      if (parts[mid].start <= offset) lo = mid;
      else hi = mid - 1;
    }
    for (let done = 0, k = lo; done < n; k++) {
      const part = parts[k];
      const within = offset + done - part.start;
      const want = Math.min(n - done, part.length - within);
      const got = readFully(this.ops, this.chunkFd(part.path), data, done, want, part.offset + within);
      if (got !== want)
        throw new StorageCorruptionError(
          part.path,
          part.offset + within + got,
          `snapshot part shorter than its manifest (${part.length} bytes at offset ${part.offset})`,
        );
      done += want;
    }
    return { data, done: offset + n >= size };
  }

  /** Streams the latest snapshot, checking every block's (v1) or part's (v2) checksum; null if there is none. */
  read(): AsyncIterable<Uint8Array> | null {
    const latest = this.published[0];
    if (latest === undefined) return null;
    const m = latest.manifest;
    return m.version === partsManifestVersion ? this.readParts(latest.parts) : this.readData(latest.dir, m);
  }

  /**
   * Stores `content` as the latest snapshot: a stream is written into one file (version 1); parts are
   * written (bytes) or hard-linked (files) into the snapshot's directory (version 2). Then fsync, publish
   * by rename. A file part that is missing or shorter than its length fails the save with a plain Error
   * (not an I/O error: the storage itself is fine).
   */
  async save(meta: SnapshotMeta, content: SnapshotContent): Promise<void> {
    const { ops } = this;
    const tmp = `${this.dir}/tmp-${process.pid}-${++this.tmpCounter}`;
    ops.rmSync(tmp, { recursive: true, force: true });
    ops.mkdirSync(tmp);
    let manifest: Manifest;
    try {
      manifest = Array.isArray(content)
        ? await writeParts(ops, tmp, meta, content, this.log, this.dir)
        : await writeStream(ops, tmp, meta, content);
    } catch (e) {
      try {
        ops.rmSync(tmp, { recursive: true, force: true });
      } catch {
        // removed on the next open
      }
      throw e;
    }
    this.publish(tmp, manifest);
  }

  // ---- incoming transfers --------------------------------------------------------------------------

  partialInfo(): { index: number; term: number; bytes: number } | undefined {
    return this.transfer.info();
  }

  /** Checks a chunk against the transfer staged so far; a string says why it does not fit. */
  checkChunk(c: SnapshotChunk): string | null {
    return this.transfer.check(c);
  }

  /** Takes a checked chunk into the staged transfer (written at the next cut). */
  acceptChunk(c: SnapshotChunk): void {
    this.transfer.accept(c);
  }

  /** Writes a staged chunk (page cache); `syncPartial` makes it durable. */
  writeChunk(c: SnapshotChunk): void {
    this.transfer.write(c);
  }

  async syncPartial(): Promise<void> {
    await this.transfer.sync();
  }

  /** Publishes the completely received transfer as the latest snapshot. */
  publishPartial(meta: SnapshotMeta): void {
    const { dir, manifest, extras } = this.transfer.finish(meta);
    this.publish(dir, manifest, extras);
  }

  close(): void {
    this.closeChunkFds();
    this.transfer.close();
  }

  // ---- internals -----------------------------------------------------------------------------------

  private publish(from: string, manifest: Manifest, extras: string[] = []): void {
    const { ops } = this;
    writeManifest(ops, from, manifest);
    const target = `${this.dir}/${publishedName(manifest.index, manifest.term)}`;
    const replaced = this.published.findIndex((s) => s.dir === target);
    if (replaced >= 0) {
      if (replaced === 0) this.closeChunkFds();
      this.published.splice(replaced, 1);
    }
    ops.rmSync(target, { recursive: true, force: true });
    ops.renameSync(from, target);
    fsyncDir(ops, this.dir);
    for (const e of extras) ops.rmSync(`${target}/${e}`, { force: true });
    const entry = toPublished(target, manifest);
    this.published.push(entry);
    this.published.sort((a, b) => b.meta.index - a.meta.index);
    if (this.published[0] === entry) this.closeChunkFds();
    this.prune();
  }

  private prune(): void {
    if (this.published.length <= this.keep) return;
    for (const old of this.published.splice(this.keep))
      this.ops.rmSync(old.dir, { recursive: true, force: true });
    fsyncDir(this.ops, this.dir);
  }

  private chunkFd(path: string): number {
    const have = this.chunkFds.get(path);
    if (have !== undefined) return have;
    if (this.chunkFds.size >= chunkFdsMax) {
      const [oldPath, oldFd] = this.chunkFds.entries().next().value as [string, number];
      this.chunkFds.delete(oldPath);
      this.ops.closeSync(oldFd);
    }
    let fd: number;
    try {
      fd = this.ops.openSync(path, 'r');
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') throw new StorageCorruptionError(path, 0, 'snapshot part is missing');
      throw e;
    }
    this.chunkFds.set(path, fd);
    return fd;
  }

  private closeChunkFds(): void {
    for (const fd of this.chunkFds.values()) this.ops.closeSync(fd);
    this.chunkFds.clear();
  }

  /** Version 1: the data file, block by block, each checked against the manifest. */
  private readData(dir: string, m: StreamManifest): AsyncIterable<Uint8Array> {
    const ops = this.ops;
    return (async function* () {
      const path = `${dir}/data`;
      const fd = ops.openSync(path, 'r');
      try {
        for (let pos = 0, block = 0; pos < m.size; pos += m.blockBytes, block++) {
          const n = Math.min(m.blockBytes, m.size - pos);
          const buf = Buffer.allocUnsafe(n);
          const got = await promisify<number>((cb) => ops.read(fd, buf, 0, n, pos, cb));
          if (got !== n || crc32cRange(buf, 0, n) !== m.blockCrc32c[block]) {
            throw new StorageCorruptionError(
              path,
              pos,
              `snapshot block ${block} does not match its manifest checksum`,
            );
          }
          yield buf;
        }
      } finally {
        ops.closeSync(fd);
      }
    })();
  }

  /**
   * Version 2: the parts in order. Each part's CRC is known only once all of it has streamed, so a damaged
   * part fails the stream at its end (the consumer must not trust what it got before the error).
   */
  private readParts(parts: Located[]): AsyncIterable<Uint8Array> {
    const ops = this.ops;
    return (async function* () {
      for (const part of parts) {
        let fd: number;
        try {
          fd = ops.openSync(part.path, 'r');
        } catch (e) {
          if (errnoCode(e) === 'ENOENT')
            throw new StorageCorruptionError(part.path, 0, 'snapshot part is missing');
          throw e;
        }
        try {
          let crc = 0;
          for (let pos = 0; pos < part.length;) {
            const n = Math.min(ioChunkBytes, part.length - pos);
            const buf = Buffer.allocUnsafe(n);
            const got = await promisify<number>((cb) => ops.read(fd, buf, 0, n, part.offset + pos, cb));
            if (got === 0)
              throw new StorageCorruptionError(
                part.path,
                part.offset + pos,
                `snapshot part shorter than its manifest (${part.length} bytes at offset ${part.offset})`,
              );
            const chunk = got === n ? buf : buf.subarray(0, got);
            crc = crc32cUpdate(crc, chunk);
            pos += got;
            yield chunk;
          }
          if (crc !== part.crc32c)
            throw new StorageCorruptionError(
              part.path,
              part.offset,
              'snapshot part does not match its manifest checksum',
            );
        } finally {
          ops.closeSync(fd);
        }
      }
    })();
  }
}
