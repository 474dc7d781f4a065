/**
 * An incoming snapshot transfer (InstallSnapshot chunks from the leader), kept in `<snapshots>/partial/`
 * across restarts:
 *   meta.json   index, term, config of the snapshot being received
 *   data        the bytes received so far
 *   chunks      one 24-byte record per chunk written: offset (f64), length, CRC-32C of the bytes, done flag,
 *               CRC-32C of the record
 * Chunks are checked against what was staged (`check`/`accept`), written at the next cut (`write`), made
 * durable by `sync`. After a restart `recover` keeps the prefix whose chunk records and bytes check out, so
 * the transfer resumes there. A complete transfer is handed to the store as a version-1 snapshot (`finish`).
 */
import { SnapshotChunk } from '../core/ready';
import { SnapshotMeta } from '../core/types';
import { crc32cRange } from './crc';
import { FileOps, fsyncDir, promisify, readFully, writeFileAtomicSync, writeFully } from './file-ops';
import { assert, ioChunkBytes } from './limits';
import { Checksummer, StreamManifest, streamManifest } from './snapshot-manifest';

const chunkRecordBytes = 24;

interface Partial {
  meta: SnapshotMeta;
  bytes: number;
  done: boolean;
  dataFd: number;
  chunksFd: number;
  chunkRecords: number;
}

/** A received transfer ready to publish: its directory, manifest, and the files publishing removes. */
export interface FinishedTransfer {
  dir: string;
  manifest: StreamManifest;
  extras: string[];
}

export class IncomingTransfer {
  private partial: Partial | null = null;
  /** The incoming transfer as persist calls staged it (ahead of what was written). */
  private expected: { index: number; term: number; bytes: number } | null = null;

  /** `root` is the snapshot store's directory; the transfer lives in `root/partial`. */
  constructor(
    private readonly root: string,
    private readonly ops: FileOps,
    private readonly log: (line: string) => void,
  ) {}

  info(): { index: number; term: number; bytes: number } | undefined {
    const p = this.partial;
    return p ? { index: p.meta.index, term: p.meta.term, bytes: p.bytes } : undefined;
  }

  /** Checks a chunk against the transfer staged so far; a string says why it does not fit. */
  check(c: SnapshotChunk): string | null {
    const e = this.expected;
    if (c.offset === 0) return null;
    if (e === null || e.index !== c.meta.index || e.term !== c.meta.term) {
      return `snapshot chunk at offset ${c.offset} of ${c.meta.index}/${c.meta.term} without the transfer's start`;
    }
    return e.bytes !== c.offset ? `snapshot chunk at offset ${c.offset}, expected ${e.bytes}` : null;
  }

  /** Takes a checked chunk into the staged transfer (written at the next cut). */
  accept(c: SnapshotChunk): void {
    this.expected = { index: c.meta.index, term: c.meta.term, bytes: c.offset + c.data.length };
  }

  /** Writes a staged chunk (page cache); `sync` makes it durable. */
  write(c: SnapshotChunk): void {
    const { ops } = this;
    if (c.offset === 0) this.start(c.meta);
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

  async sync(): Promise<void> {
    const p = this.partial;
    if (p === null) return;
    const { ops } = this;
    await Promise.all([
      promisify<void>((cb) => ops.fdatasync(p.dataFd, cb)),
      promisify<void>((cb) => ops.fdatasync(p.chunksFd, cb)),
    ]);
  }

  /**
   * Ends the completely received transfer of `meta`: closes it and checksums its bytes into a version-1
   * manifest. The caller publishes the directory (throws if the transfer is not `meta`, or incomplete).
   */
  finish(meta: SnapshotMeta): FinishedTransfer {
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
    const dir = `${this.root}/partial`;
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
    return { dir, manifest: streamManifest(meta, sums), extras: ['meta.json', 'chunks'] };
  }

  close(): void {
    if (this.partial) {
      this.ops.closeSync(this.partial.dataFd);
      this.ops.closeSync(this.partial.chunksFd);
      this.partial = null;
    }
  }

  /** Keeps the prefix of an interrupted transfer whose chunks check out; drops the rest. */
  recover(): void {
    const { ops } = this;
    const dir = `${this.root}/partial`;
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

  /** Starts a new transfer at its first chunk, replacing any earlier one. */
  private start(meta: SnapshotMeta): void {
    const { ops } = this;
    const dir = `${this.root}/partial`;
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
    fsyncDir(ops, this.root);
    this.partial = { meta: m, bytes: 0, done: false, dataFd, chunksFd, chunkRecords: 0 };
  }
}
