import { SnapshotChunk } from '../core/ready';
import { ConfigState, SnapshotMeta, emptyConfig } from '../core/types';
import { SnapshotContent, SnapshotPart } from '../node/ports';
import { crc32cRange, crc32cUpdate } from './crc';
import { StorageCorruptionError } from './errors';
import { FileOps, fsyncDir, promisify, readFully, writeFileAtomicSync, writeFully } from './file-ops';
import { assert, ioChunkBytes } from './limits';

/**
 * Snapshots on disk, under <dir>/:
 *   <index:20>-<term>/manifest.json + data          a snapshot as one file (version 1)
 *   <index:20>-<term>/manifest.json + bytes, part-N a snapshot in parts (version 2)
 *   tmp-<n>/                                        a snapshot being written (removed on open)
 *   partial/meta.json, data, chunks                 an incoming transfer, kept across restarts
 * A snapshot is written into a temp directory, fsynced, and published by renaming the directory; the
 * newest N are kept.
 *
 * Version 1 (a streamed or received snapshot): `data` holds the bytes; the manifest holds index, term,
 * config, size and CRC-32C checksums (whole file and per 1 MiB block); open reads the latest once to check
 * every block.
 *
 * Version 2 (a snapshot the state machine handed over in parts, see SnapshotPart): the snapshot's bytes are
 * the concatenation of the manifest's `parts`, each `length` bytes at `offset` of file `name`, with their
 * CRC-32C. Bytes parts are written into the one file `bytes`; file parts are hard links (`part-N`) to the
 * state machine's files, so no history is copied (copied instead when the file system refuses the link).
 * A linked file may be longer than its part (a growing file shares its inode): only the first `length`
 * bytes belong to the snapshot, and the state machine never changes those. Open checks v2 cheaply: manifest
 * checksum, every part present and long enough, the small bytes parts' checksums; the linked parts are
 * checked when streamed (read() compares each part's CRC, and the receiver of a transfer checks the
 * state machine's own per-file checksums inside the stream).
 */
export const snapshotBlockBytes = 1024 * 1024;
const streamManifestVersion = 1;
const partsManifestVersion = 2;
const chunkRecordBytes = 24;
const bytesFileName = 'bytes';
/** Descriptors kept open for chunk() reads of the latest snapshot (reads move through the parts in order). */
const chunkFdsMax = 4;
/** link(2) errors after which a file part is copied instead (other file system, links not supported, too many links). */
const linkFallbackCodes = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EACCES']);

/** Version 1: the snapshot is the file `data`. */
export interface StreamManifest {
  version: 1;
  index: number;
  term: number;
  config: ConfigState;
  size: number;
  crc32c: number;
  blockBytes: number;
  blockCrc32c: number[];
  manifestCrc32c: number;
}

/** One piece of a version-2 snapshot: `length` bytes at `offset` of `name`. */
export interface PartEntry {
  name: string;
  offset: number;
  length: number;
  crc32c: number;
  /** 'bytes': written by the store (checked at open); 'file': a state machine's file, linked or copied. */
  kind: 'bytes' | 'file';
}

/** Version 2: the snapshot is the concatenation of `parts`; `size` is their total length. */
export interface PartsManifest {
  version: 2;
  index: number;
  term: number;
  config: ConfigState;
  size: number;
  parts: PartEntry[];
  manifestCrc32c: number;
}

export type Manifest = StreamManifest | PartsManifest;

/** Where the bytes of one part are: `length` bytes at `offset` of `path`, from `start` in the snapshot. */
interface Located {
  path: string;
  offset: number;
  length: number;
  start: number;
  crc32c: number;
}

interface Published {
  meta: SnapshotMeta;
  manifest: Manifest;
  dir: string;
  parts: Located[];
}

interface Partial {
  meta: SnapshotMeta;
  bytes: number;
  done: boolean;
  dataFd: number;
  chunksFd: number;
  chunkRecords: number;
}

type ManifestBody = Omit<StreamManifest, 'manifestCrc32c'> | Omit<PartsManifest, 'manifestCrc32c'>;

function manifestChecksum(m: ManifestBody): number {
  const fields =
    m.version === partsManifestVersion
      ? [
          m.version,
          m.index,
          m.term,
          m.config,
          m.size,
          m.parts.map((p) => [p.name, p.offset, p.length, p.crc32c, p.kind]),
        ]
      : [m.version, m.index, m.term, m.config, m.size, m.crc32c, m.blockBytes, m.blockCrc32c];
  const body = Buffer.from(JSON.stringify(fields));
  return crc32cRange(body, 0, body.length);
}

function locate(dir: string, m: Manifest): Located[] {
  if (m.version !== partsManifestVersion)
    return m.size === 0
      ? []
      : [{ path: `${dir}/data`, offset: 0, length: m.size, start: 0, crc32c: m.crc32c }];
  const out: Located[] = [];
  let start = 0;
  for (const p of m.parts) {
    out.push({ path: `${dir}/${p.name}`, offset: p.offset, length: p.length, start, crc32c: p.crc32c });
    start += p.length;
  }
  return out;
}

function publishedName(index: number, term: number): string {
  return `${String(index).padStart(20, '0')}-${term}`;
}

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

/** Running checksums of a byte stream: whole-file CRC and one CRC per block. */
class Checksummer {
  crc = 0;
  size = 0;
  readonly blocks: number[] = [];
  private block = 0;
  private inBlock = 0;

  update(b: Uint8Array): void {
    this.crc = crc32cUpdate(this.crc, b);
    this.size += b.length;
    let o = 0;
    while (o < b.length) {
      const n = Math.min(b.length - o, snapshotBlockBytes - this.inBlock);
      this.block = crc32cUpdate(this.block, b.subarray(o, o + n));
      this.inBlock += n;
      o += n;
      if (this.inBlock === snapshotBlockBytes) this.endBlock();
    }
  }

  finish(): void {
    if (this.inBlock > 0) this.endBlock();
  }

  private endBlock(): void {
    this.blocks.push(this.block);
    this.block = 0;
    this.inBlock = 0;
  }
}

function streamManifest(meta: SnapshotMeta, sums: Checksummer): StreamManifest {
  const body: Omit<StreamManifest, 'manifestCrc32c'> = {
    version: streamManifestVersion,
    index: meta.index,
    term: meta.term,
    config: meta.config,
    size: sums.size,
    crc32c: sums.crc,
    blockBytes: snapshotBlockBytes,
    blockCrc32c: sums.blocks,
  };
  return { ...body, manifestCrc32c: manifestChecksum(body) };
}

export class SnapshotStore {
  /** Newest first. */
  private published: Published[] = [];
  /** Open descriptors of the latest snapshot's files, for chunk() (least recently opened first). */
  private readonly chunkFds = new Map<string, number>();
  private partial: Partial | null = null;
  /** The incoming transfer as persist calls staged it (ahead of what was written). */
  private expected: { index: number; term: number; bytes: number } | null = null;
  private tmpCounter = 0;

  private constructor(
    private readonly dir: string,
    private readonly ops: FileOps,
    private readonly keep: number,
    private readonly log: (line: string) => void,
  ) {
    assert(keep >= 1, `snapshotsKeep ${keep} ≥ 1`);
  }

  static open(dir: string, ops: FileOps, keep: number, log: (line: string) => void): SnapshotStore {
    const store = new SnapshotStore(dir, ops, keep, log);
    ops.mkdirSync(dir, { recursive: true });
    for (const name of ops.readdirSync(dir)) {
      const path = `${dir}/${name}`;
      if (name.startsWith('tmp-')) ops.rmSync(path, { recursive: true, force: true });
      else if (name === 'partial') store.recoverPartial();
      else if (/^\d{20}-\d+$/.test(name)) store.published.push(store.loadManifest(path));
    }
    store.published.sort((a, b) => b.meta.index - a.meta.index);
    if (store.published.length > 0) {
      const latest = store.published[0];
      if (latest.manifest.version === partsManifestVersion) store.verifyParts(latest, latest.manifest);
      else store.verifyData(latest, latest.manifest);
    }
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
        ? await this.writeParts(tmp, meta, content)
        : await this.writeStream(tmp, meta, content);
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
    const p = this.partial;
    return p ? { index: p.meta.index, term: p.meta.term, bytes: p.bytes } : undefined;
  }

  /** Checks a chunk against the transfer staged so far; a string says why it does not fit. */
  checkChunk(c: SnapshotChunk): string | null {
    const e = this.expected;
    if (c.offset === 0) return null;
    if (e === null || e.index !== c.meta.index || e.term !== c.meta.term) {
      return `snapshot chunk at offset ${c.offset} of ${c.meta.index}/${c.meta.term} without the transfer's start`;
    }
    return e.bytes !== c.offset ? `snapshot chunk at offset ${c.offset}, expected ${e.bytes}` : null;
  }

  /** Takes a checked chunk into the staged transfer (written at the next cut). */
  acceptChunk(c: SnapshotChunk): void {
    this.expected = { index: c.meta.index, term: c.meta.term, bytes: c.offset + c.data.length };
  }

  /** Writes a staged chunk (page cache); `syncPartial` makes it durable. */
  writeChunk(c: SnapshotChunk): void {
    const { ops } = this;
    if (c.offset === 0) this.startPartial(c.meta);
    const p = this.partial;
    assert(p !== null && p.bytes === c.offset, `chunk at ${c.offset} continues the partial snapshot`);
    writeFully(ops, p.dataFd, c.data, 0, c.data.length, c.offset);
    const rec = Buffer.alloc(chunkRecordBytes);
    rec.writeDoubleLE(c.offset, 0);
    rec.writeUInt32LE(c.data.length, 8);
    rec.writeUInt32LE(crc32cRange(c.data, 0, c.data.length), 12);
    rec.writeUInt32LE(c.done ? 1 : 0, 16);
    rec.writeUInt32LE(crc32cRange(rec, 0, 20), 20);
    writeFully(ops, p.chunksFd, rec, 0, rec.length, p.chunkRecords * chunkRecordBytes);
    p.chunkRecords++;
    p.bytes += c.data.length;
    p.done = c.done;
  }

  async syncPartial(): Promise<void> {
    const p = this.partial;
    if (p === null) return;
    const { ops } = this;
    await Promise.all([
      promisify<void>((cb) => ops.fdatasync(p.dataFd, cb)),
      promisify<void>((cb) => ops.fdatasync(p.chunksFd, cb)),
    ]);
  }

  /** Publishes the completely received transfer as the latest snapshot. */
  publishPartial(meta: SnapshotMeta): void {
    const p = this.partial;
    if (p === null || p.meta.index !== meta.index || p.meta.term !== meta.term || !p.done) {
      const have = p
        ? `${p.meta.index}/${p.meta.term}${p.done ? '' : ` (incomplete, ${p.bytes} bytes)`}`
        : 'none';
      throw new Error(
        `storage: cannot install snapshot ${meta.index}/${meta.term}: received transfer is ${have}`,
      );
    }
    const { ops } = this;
    const dir = `${this.dir}/partial`;
    ops.closeSync(p.dataFd);
    ops.closeSync(p.chunksFd);
    this.partial = null;
    this.expected = null;
    const sums = new Checksummer();
    const fd = ops.openSync(`${dir}/data`, 'r');
    try {
      const buf = Buffer.allocUnsafe(ioChunkBytes);
      for (let pos = 0; pos < p.bytes;) {
        const n = readFully(ops, fd, buf, 0, Math.min(buf.length, p.bytes - pos), pos);
        assert(n > 0, 'partial snapshot data readable');
        sums.update(buf.subarray(0, n));
        pos += n;
      }
    } finally {
      ops.closeSync(fd);
    }
    sums.finish();
    this.publish(dir, streamManifest(meta, sums), ['meta.json', 'chunks']);
  }

  close(): void {
    this.closeChunkFds();
    if (this.partial) {
      this.ops.closeSync(this.partial.dataFd);
      this.ops.closeSync(this.partial.chunksFd);
      this.partial = null;
    }
  }

  // ---- internals -----------------------------------------------------------------------------------

  private async writeStream(
    tmp: string,
    meta: SnapshotMeta,
    data: AsyncIterable<Uint8Array>,
  ): Promise<StreamManifest> {
    const { ops } = this;
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
  private async writeParts(tmp: string, meta: SnapshotMeta, parts: SnapshotPart[]): Promise<PartsManifest> {
    const { ops } = this;
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
          if (!(await this.linkOrCopy(p, `${tmp}/${name}`))) copied++;
          entries.push({ name, offset: 0, length: p.length, crc32c: p.crc32c >>> 0, kind: 'file' });
          size += p.length;
        }
      }
      await promisify<void>((cb) => ops.fsync(fd, cb));
    } finally {
      ops.closeSync(fd);
    }
    if (copied > 0)
      this.log(
        `storage: snapshot ${meta.index}/${meta.term}: ${copied} file part(s) could not be hard-linked into ${this.dir} and were copied`,
      );
    const body: Omit<PartsManifest, 'manifestCrc32c'> = {
      version: partsManifestVersion,
      index: meta.index,
      term: meta.term,
      config: meta.config,
      size,
      parts: entries,
    };
    return { ...body, manifestCrc32c: manifestChecksum(body) };
  }

  /** Hard-links a file part to `dst` (true), or copies its first `length` bytes where links fail (false). */
  private async linkOrCopy(
    p: { file: string; length: number; crc32c: number },
    dst: string,
  ): Promise<boolean> {
    const { ops } = this;
    let size: number;
    try {
      size = ops.statSync(p.file).size;
    } catch (e) {
      if (errnoCode(e) === 'ENOENT')
        throw new Error(`storage: snapshot part ${p.file} does not exist (the state machine removed it?)`);
      throw e;
    }
    if (size < p.length)
      throw new Error(
        `storage: snapshot part ${p.file} has ${size} bytes, fewer than its length ${p.length}`,
      );
    try {
      ops.linkSync(p.file, dst);
      return true;
    } catch (e) {
      if (!linkFallbackCodes.has(errnoCode(e) ?? '')) throw e;
    }
    await this.copyPrefix(p, dst);
    return false;
  }

  /** Copies the first `length` bytes of a file part, checking its CRC, and fsyncs the copy. */
  private async copyPrefix(p: { file: string; length: number; crc32c: number }, dst: string): Promise<void> {
    const { ops } = this;
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
          throw new Error(
            `storage: snapshot part ${p.file} does not match the CRC-32C the state machine gave`,
          );
        await promisify<void>((cb) => ops.fsync(out, cb));
      } finally {
        ops.closeSync(out);
      }
    } finally {
      ops.closeSync(src);
    }
  }

  private publish(from: string, manifest: Manifest, extras: string[] = []): void {
    const { ops } = this;
    writeFileAtomicSync(ops, from, 'manifest.json', Buffer.from(JSON.stringify(manifest, null, 1)));
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
    const entry: Published = {
      meta: { index: manifest.index, term: manifest.term, config: manifest.config },
      manifest,
      dir: target,
      parts: locate(target, manifest),
    };
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

  private loadManifest(dir: string): Published {
    const path = `${dir}/manifest.json`;
    if (!this.ops.existsSync(path))
      throw new StorageCorruptionError(path, 0, 'published snapshot has no manifest');
    let m: Manifest;
    try {
      m = JSON.parse(this.ops.readFileSync(path, 'utf8')) as Manifest;
    } catch {
      throw new StorageCorruptionError(path, 0, 'snapshot manifest is not valid JSON');
    }
    const version: unknown = m.version;
    if (version !== streamManifestVersion && version !== partsManifestVersion)
      throw new StorageCorruptionError(path, 0, `unknown snapshot manifest version ${String(version)}`);
    const { manifestCrc32c, ...body } = m;
    if (manifestChecksum(body) !== manifestCrc32c)
      throw new StorageCorruptionError(path, 0, 'snapshot manifest checksum mismatch');
    return {
      meta: { index: m.index, term: m.term, config: m.config },
      manifest: m,
      dir,
      parts: locate(dir, m),
    };
  }

  /** Version 1: reads the whole data file and compares it with the manifest's checksums. */
  private verifyData(s: Published, m: StreamManifest): void {
    const { ops } = this;
    const path = `${s.dir}/data`;
    if (!ops.existsSync(path)) throw new StorageCorruptionError(path, 0, 'snapshot data file is missing');
    const size = ops.statSync(path).size;
    if (size !== m.size)
      throw new StorageCorruptionError(
        path,
        Math.min(size, m.size),
        `snapshot is ${size} bytes, its manifest says ${m.size}`,
      );
    const fd = ops.openSync(path, 'r');
    try {
      // One pass: every block against its checksum in the (checksummed) manifest. The whole-file checksum
      // would add a second pass over the data and could only disagree if the writer had built a wrong
      // manifest, so it is not recomputed here (a start-up reads the latest snapshot once).
      const buf = Buffer.allocUnsafe(m.blockBytes);
      const blocks = Math.ceil(m.size / m.blockBytes);
      if (m.blockCrc32c.length !== blocks)
        throw new StorageCorruptionError(
          path,
          0,
          `snapshot manifest lists ${m.blockCrc32c.length} block checksums for ${blocks} blocks`,
        );
      for (let pos = 0, block = 0; pos < m.size; pos += m.blockBytes, block++) {
        const n = readFully(ops, fd, buf, 0, Math.min(m.blockBytes, m.size - pos), pos);
        if (crc32cRange(buf, 0, n) !== m.blockCrc32c[block]) {
          throw new StorageCorruptionError(
            path,
            pos,
            `snapshot block ${block} does not match its manifest checksum`,
          );
        }
      }
    } finally {
      ops.closeSync(fd);
    }
  }

  /**
   * Version 2, cheaply: every part's file exists and holds its range; the bytes parts (small: headers) match
   * their checksums. Linked parts are not read here (see the class comment).
   */
  private verifyParts(s: Published, m: PartsManifest): void {
    const { ops } = this;
    const manifestPath = `${s.dir}/manifest.json`;
    const total = m.parts.reduce((a, p) => a + p.length, 0);
    if (total !== m.size || m.parts.some((p) => !(p.length > 0) || !(p.offset >= 0)))
      throw new StorageCorruptionError(
        manifestPath,
        0,
        `snapshot manifest parts add up to ${total} bytes, its size is ${m.size}`,
      );
    const sizes = new Map<string, number>();
    for (const p of m.parts) {
      const path = `${s.dir}/${p.name}`;
      let size = sizes.get(p.name);
      if (size === undefined) {
        if (!ops.existsSync(path)) throw new StorageCorruptionError(path, 0, 'snapshot part is missing');
        size = ops.statSync(path).size;
        sizes.set(p.name, size);
      }
      if (size < p.offset + p.length)
        throw new StorageCorruptionError(
          path,
          size,
          `snapshot part is ${size} bytes, its manifest needs ${p.offset + p.length}`,
        );
    }
    const bytesParts = m.parts.filter((p) => p.kind === 'bytes');
    if (bytesParts.length === 0) return;
    const path = `${s.dir}/${bytesFileName}`;
    const bytes = ops.readFileSync(path);
    for (const p of bytesParts) {
      if (p.name !== bytesFileName || crc32cRange(bytes, p.offset, p.offset + p.length) !== p.crc32c)
        throw new StorageCorruptionError(
          path,
          p.offset,
          `snapshot bytes part at offset ${p.offset} does not match its manifest checksum`,
        );
    }
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

  private startPartial(meta: SnapshotMeta): void {
    const { ops } = this;
    const dir = `${this.dir}/partial`;
    if (this.partial) {
      ops.closeSync(this.partial.dataFd);
      ops.closeSync(this.partial.chunksFd);
      this.partial = null;
    }
    ops.rmSync(dir, { recursive: true, force: true });
    ops.mkdirSync(dir);
    const m = { index: meta.index, term: meta.term, config: meta.config };
    writeFileAtomicSync(ops, dir, 'meta.json', Buffer.from(JSON.stringify(m)));
    const dataFd = ops.openSync(`${dir}/data`, 'w+');
    const chunksFd = ops.openSync(`${dir}/chunks`, 'w+');
    fsyncDir(ops, dir);
    fsyncDir(ops, this.dir);
    this.partial = { meta: m, bytes: 0, done: false, dataFd, chunksFd, chunkRecords: 0 };
  }

  /** Keeps the prefix of an interrupted transfer whose chunks check out; drops the rest. */
  private recoverPartial(): void {
    const { ops } = this;
    const dir = `${this.dir}/partial`;
    let meta: SnapshotMeta;
    try {
      meta = JSON.parse(ops.readFileSync(`${dir}/meta.json`, 'utf8')) as SnapshotMeta;
      if (!ops.existsSync(`${dir}/data`) || !ops.existsSync(`${dir}/chunks`)) throw new Error('incomplete');
    } catch {
      ops.rmSync(dir, { recursive: true, force: true });
      return;
    }
    const dataFd = ops.openSync(`${dir}/data`, 'r+');
    const chunksFd = ops.openSync(`${dir}/chunks`, 'r+');
    const recs = ops.readFileSync(`${dir}/chunks`);
    let bytes = 0;
    let done = false;
    let count = 0;
    for (let o = 0; o + chunkRecordBytes <= recs.length; o += chunkRecordBytes, count++) {
      if (crc32cRange(recs, o, o + 20) !== recs.readUInt32LE(o + 20)) break;
      const offset = recs.readDoubleLE(o);
      const len = recs.readUInt32LE(o + 8);
      if (offset !== bytes) break;
      const data = Buffer.allocUnsafe(len);
      if (readFully(ops, dataFd, data, 0, len, offset) !== len) break;
      if (crc32cRange(data, 0, len) !== recs.readUInt32LE(o + 12)) break;
      bytes += len;
      done = recs.readUInt32LE(o + 16) === 1;
    }
    const dataSize = ops.fstatSync(dataFd).size;
    if (count * chunkRecordBytes !== recs.length || dataSize !== bytes) {
      ops.ftruncateSync(chunksFd, count * chunkRecordBytes);
      ops.ftruncateSync(dataFd, bytes);
      ops.fsyncSync(chunksFd);
      ops.fsyncSync(dataFd);
      this.log(
        `storage: resumed the partial snapshot ${meta.index}/${meta.term} at ${bytes} bytes (dropped ${dataSize - bytes} unverified bytes)`,
      );
    }
    this.partial = { meta, bytes, done, dataFd, chunksFd, chunkRecords: count };
    this.expected = { index: meta.index, term: meta.term, bytes };
  }
}
