import { SnapshotChunk } from '../core/ready';
import { ConfigState, SnapshotMeta, emptyConfig } from '../core/types';
import { crc32cRange, crc32cUpdate } from './crc';
import { StorageCorruptionError } from './errors';
import { FileOps, fsyncDir, promisify, readFully, writeFileAtomicSync, writeFully } from './file-ops';
import { assert, ioChunkBytes } from './limits';

/**
 * Snapshots on disk, under <dir>/:
 *   <index:20>-<term>/data, manifest.json    published snapshots (newest N kept)
 *   tmp-<n>/                                 a snapshot being written (removed on open)
 *   partial/meta.json, data, chunks          an incoming transfer, kept across restarts
 * A snapshot is written into a temp directory, fsynced, and published by renaming the directory.
 * The manifest holds index, term, config, size and CRC-32C checksums (whole file and per 1 MiB block).
 */
export const snapshotBlockBytes = 1024 * 1024;
const manifestVersion = 1;
const chunkRecordBytes = 24;

export interface Manifest {
  version: number;
  index: number;
  term: number;
  config: ConfigState;
  size: number;
  crc32c: number;
  blockBytes: number;
  blockCrc32c: number[];
  manifestCrc32c: number;
}

interface Published {
  meta: SnapshotMeta;
  manifest: Manifest;
  dir: string;
}

interface Partial {
  meta: SnapshotMeta;
  bytes: number;
  done: boolean;
  dataFd: number;
  chunksFd: number;
  chunkRecords: number;
}

function manifestChecksum(m: Omit<Manifest, 'manifestCrc32c'>): number {
  const body = Buffer.from(
    JSON.stringify([m.version, m.index, m.term, m.config, m.size, m.crc32c, m.blockBytes, m.blockCrc32c]),
  );
  return crc32cRange(body, 0, body.length);
}

function publishedName(index: number, term: number): string {
  return `${String(index).padStart(20, '0')}-${term}`;
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

export class SnapshotStore {
  /** Newest first. */
  private published: Published[] = [];
  private latestFd: number | null = null;
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
      store.verifyData(store.published[0]);
      store.latestFd = ops.openSync(`${store.published[0].dir}/data`, 'r');
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

  /** Synchronous chunk of the latest snapshot's bytes. */
  chunk(offset: number, maxBytes: number): { data: Uint8Array; done: boolean } {
    const latest = this.published[0];
    if (latest === undefined || this.latestFd === null) return { data: new Uint8Array(0), done: true };
    const size = latest.manifest.size;
    assert(offset >= 0 && offset <= size, `snapshot chunk offset ${offset} within ${size} bytes`);
    const n = Math.min(Math.max(1, maxBytes), size - offset);
    const data = Buffer.allocUnsafe(n);
    const got = readFully(this.ops, this.latestFd, data, 0, n, offset);
    if (got !== n)
      throw new StorageCorruptionError(
        `${latest.dir}/data`,
        offset + got,
        `snapshot shorter than its manifest (${size} bytes)`,
      );
    return { data, done: offset + n >= size };
  }

  /** Streams the latest snapshot, checking every block's checksum; null if there is none. */
  read(): AsyncIterable<Uint8Array> | null {
    const latest = this.published[0];
    if (latest === undefined) return null;
    const ops = this.ops;
    return (async function* () {
      const path = `${latest.dir}/data`;
      const fd = ops.openSync(path, 'r');
      try {
        const m = latest.manifest;
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

  /** Streams `data` into a temp directory, fsyncs, publishes by rename. */
  async save(meta: SnapshotMeta, data: AsyncIterable<Uint8Array>): Promise<void> {
    const { ops } = this;
    const tmp = `${this.dir}/tmp-${process.pid}-${++this.tmpCounter}`;
    ops.rmSync(tmp, { recursive: true, force: true });
    ops.mkdirSync(tmp);
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
    this.publish(tmp, meta, sums);
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
    this.publish(dir, meta, sums, ['meta.json', 'chunks']);
  }

  close(): void {
    if (this.latestFd !== null) this.ops.closeSync(this.latestFd);
    this.latestFd = null;
    if (this.partial) {
      this.ops.closeSync(this.partial.dataFd);
      this.ops.closeSync(this.partial.chunksFd);
      this.partial = null;
    }
  }

  // ---- internals -----------------------------------------------------------------------------------

  private publish(from: string, meta: SnapshotMeta, sums: Checksummer, extras: string[] = []): void {
    const { ops } = this;
    const body: Omit<Manifest, 'manifestCrc32c'> = {
      version: manifestVersion,
      index: meta.index,
      term: meta.term,
      config: meta.config,
      size: sums.size,
      crc32c: sums.crc,
      blockBytes: snapshotBlockBytes,
      blockCrc32c: sums.blocks,
    };
    const manifest: Manifest = { ...body, manifestCrc32c: manifestChecksum(body) };
    writeFileAtomicSync(ops, from, 'manifest.json', Buffer.from(JSON.stringify(manifest, null, 1)));
    const target = `${this.dir}/${publishedName(meta.index, meta.term)}`;
    const replaced = this.published.findIndex((s) => s.dir === target);
    if (replaced >= 0) {
      if (replaced === 0 && this.latestFd !== null) {
        ops.closeSync(this.latestFd);
        this.latestFd = null;
      }
      this.published.splice(replaced, 1);
    }
    ops.rmSync(target, { recursive: true, force: true });
    ops.renameSync(from, target);
    fsyncDir(ops, this.dir);
    for (const e of extras) ops.rmSync(`${target}/${e}`, { force: true });
    const entry: Published = {
      meta: { index: meta.index, term: meta.term, config: meta.config },
      manifest,
      dir: target,
    };
    this.published.push(entry);
    this.published.sort((a, b) => b.meta.index - a.meta.index);
    if (this.published[0] === entry) {
      if (this.latestFd !== null) ops.closeSync(this.latestFd);
      this.latestFd = ops.openSync(`${target}/data`, 'r');
    }
    this.prune();
  }

  private prune(): void {
    if (this.published.length <= this.keep) return;
    for (const old of this.published.splice(this.keep))
      this.ops.rmSync(old.dir, { recursive: true, force: true });
    fsyncDir(this.ops, this.dir);
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
    const { manifestCrc32c, ...body } = m;
    if (manifestChecksum(body) !== manifestCrc32c)
      throw new StorageCorruptionError(path, 0, 'snapshot manifest checksum mismatch');
    return { meta: { index: m.index, term: m.term, config: m.config }, manifest: m, dir };
  }

  /** Reads the whole data file and compares it with the manifest's checksums. */
  private verifyData(s: Published): void {
    const { ops } = this;
    const path = `${s.dir}/data`;
    const m = s.manifest;
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
