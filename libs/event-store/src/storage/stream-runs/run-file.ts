import { crc32c } from '@node-rs/crc32';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { Block, BlockCache, Cached } from './block-cache';
import { BloomFilter } from './bloom';

/**
 * One run: an immutable file of (stream id, revision) → position entries in key order, written once and
 * never changed (so a snapshot cut can hard-link it). Layout:
 *
 *   blocks   each about BLOCK_BYTES: u32 count, then per entry u16 id bytes, id (UTF-8), u32 revision, f64 position
 *   index    per block: u16 id bytes, first id, u32 first revision, f64 offset, u32 length, u32 CRC-32C of the block
 *   bloom    u32 probes (high bit: blocked, see bloom.ts), the filter's bytes (over stream ids)
 *   footer   FOOTER_BYTES, see writeFooter; its CRC covers the index, the bloom and the footer's fields
 *
 * The index and the bloom filter stay in memory (about 60 bytes per block and 10 bits per stream); blocks
 * are read with pread on demand and kept in the shared BlockCache. Keys compare as JavaScript strings, then
 * by revision.
 */

export const RUN_SUFFIX = '.run';
const MAGIC = 0x52554e31; // "RUN1"
export const FOOTER_BYTES = 60;
const BLOCK_BYTES = 4096;

/** One entry: stream id, revision, position. */
export type RunEntry = [string, number, number];

export interface RunInfo {
  name: string;
  entries: number;
  streams: number;
  /** The highest event position in the run. */
  maxPosition: number;
  bytes: number;
  /** CRC-32C of the whole file (snapshot archives carry it). */
  crc32c: number;
}

export interface BlockRef {
  firstId: string;
  firstRev: number;
  offset: number;
  length: number;
  crc: number;
}

export function compareKey(idA: string, revA: number, idB: string, revB: number): number {
  if (idA < idB) return -1;
  if (idA > idB) return 1;
  return revA - revB;
}

/** Bytes of blocks gathered before they are written out. */
const WRITE_CHUNK_BYTES = 1 << 20;

/**
 * Entries handed to a run writer in arrays. An async generator that yields each entry costs a promise and
 * microtask hops per entry and never gives the event loop a turn on its own; batches cost one await each,
 * and the producer yields to the loop between them when its slice is used up.
 */
export class Batches<T> {
  constructor(readonly batches: AsyncIterable<T[]>) {}
}

/** Entries per batch from the main thread's table writers: small enough to check the slice often. */
export const BATCH_ENTRIES = 512;

/**
 * The writing half every kind of run shares: blocks of about BLOCK_BYTES filled in place (a u32 count, then
 * the caller's encoded entries), copied one after another into one chunk buffer of WRITE_CHUNK_BYTES that goes
 * out with one write and is then reused (a buffer per block was most of the small allocations a node made
 * while writing and merging runs, and they fragment the allocator's heaps), the
 * block index and Bloom filter, then the footer; the file goes through a temporary name (fsynced when asked)
 * and is renamed into place, so a run is complete or absent. Memory: one chunk, the block index, the filter.
 */
export class RunWriter {
  /** The block being filled; callers write an entry at `blockLen` after `room()`, then call `added()`. */
  block = Buffer.allocUnsafe(BLOCK_BYTES * 2);
  blockLen = 4;
  readonly bloom: BloomFilter;
  entries = 0;
  private blockCount = 0;
  private readonly refs: BlockRef[] = [];
  /** Blocks ended but not yet written, at chunk[0, chunkLen). */
  private chunk = Buffer.allocUnsafeSlow(WRITE_CHUNK_BYTES + 2 * BLOCK_BYTES);
  private chunkLen = 0;
  private offset = 0;
  private fileCrc = 0;
  private firstId = '';
  private firstRev = 0;

  private constructor(
    private readonly file: string,
    private readonly tmp: string,
    private readonly fh: fsp.FileHandle,
    keysMax: number,
  ) {
    this.bloom = BloomFilter.forCount(keysMax);
  }

  static async create(file: string, keysMax: number): Promise<RunWriter> {
    const tmp = `${file}.tmp`;
    return new RunWriter(file, tmp, await fsp.open(tmp, 'w'), keysMax);
  }

  /**
   * Makes room for an entry of at most `need` bytes whose key is (id, rev): ends the block when it would
   * pass BLOCK_BYTES, grows it for a large entry. Then write the entry at `blockLen` and call `added()`.
   */
  room(need: number, id: string, rev: number): void {
    if (this.blockCount > 0 && this.blockLen + need > BLOCK_BYTES) this.endBlock();
    if (this.blockLen + need > this.block.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.blockLen + need, this.block.length * 2));
      this.block.copy(grown, 0, 0, this.blockLen);
      this.block = grown;
    }
    if (this.blockCount === 0) {
      this.firstId = id;
      this.firstRev = rev;
    }
  }

  /** The entry written at the old `blockLen` ends at `end`. */
  added(end: number): void {
    this.blockLen = end;
    this.blockCount++;
    this.entries++;
  }

  /** Whether a chunk of blocks is ready to go out (then `await flush()`). */
  get chunkFull(): boolean {
    return this.chunkLen >= WRITE_CHUNK_BYTES;
  }

  /**
   * Feeds every entry to `add` (which writes it into the block), sending chunks out as they fill. A plain
   * iterable is read without an await per entry (a merge on the merge thread), Batches one await per batch
   * (the main thread's table writes), an async iterable item by item.
   */
  async consume<T>(
    entries: Iterable<T> | AsyncIterable<T> | Batches<T>,
    add: (entry: T) => void,
  ): Promise<void> {
    if (entries instanceof Batches) {
      for await (const batch of entries.batches)
        for (let i = 0; i < batch.length; i++) {
          if (this.chunkFull) await this.flush();
          add(batch[i]);
        }
      return;
    }
    if (Symbol.asyncIterator in entries) {
      for await (const e of entries) {
        if (this.chunkFull) await this.flush();
        add(e);
      }
      return;
    }
    for (const e of entries) {
      if (this.chunkFull) await this.flush();
      add(e);
    }
  }

  async flush(): Promise<void> {
    const out = this.chunk.subarray(0, this.chunkLen);
    this.fileCrc = crc32c(out, this.fileCrc);
    for (let done = 0; done < out.length;)
      done += (await this.fh.write(out, done, out.length - done)).bytesWritten;
    this.chunkLen = 0;
  }

  /** Writes the last block, the index, the filter and the footer, then renames the file into place. */
  async finish(
    fields: { streams: number; maxPosition: number },
    magic: number,
    sync: boolean,
  ): Promise<{ bytes: number; crc32c: number }> {
    if (this.blockCount > 0) this.endBlock();
    const index = encodeIndex(this.refs);
    const bloomBytes = Buffer.allocUnsafe(4 + this.bloom.bits.length);
    bloomBytes.writeUInt32LE(this.bloom.storedProbes, 0);
    Buffer.from(this.bloom.bits.buffer, this.bloom.bits.byteOffset, this.bloom.bits.length).copy(
      bloomBytes,
      4,
    );
    const footer = writeFooter(
      {
        indexOffset: this.offset,
        indexLength: index.length,
        bloomOffset: this.offset + index.length,
        bloomLength: bloomBytes.length,
        entries: this.entries,
        streams: fields.streams,
        maxPosition: fields.maxPosition,
        metaCrc: crc32c(bloomBytes, crc32c(index)),
      },
      magic,
    );
    const rest = [this.chunk.subarray(0, this.chunkLen), index, bloomBytes, footer];
    for (const b of rest) this.fileCrc = crc32c(b, this.fileCrc);
    await this.fh.writev(rest);
    if (sync) await this.fh.sync();
    await this.fh.close();
    await fsp.rename(this.tmp, this.file);
    const bytes = this.offset + index.length + bloomBytes.length + FOOTER_BYTES;
    return { bytes, crc32c: this.fileCrc >>> 0 };
  }

  /** Gives up: closes and removes the temporary file. */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => {});
    await fsp.rm(this.tmp, { force: true });
  }

  private endBlock(): void {
    this.block.writeUInt32LE(this.blockCount, 0);
    const len = this.blockLen;
    if (this.chunkLen + len > this.chunk.length) {
      // A block grown for a large entry: a bigger chunk (the next flush comes before the next entry).
      const grown = Buffer.allocUnsafeSlow(this.chunkLen + len + WRITE_CHUNK_BYTES);
      this.chunk.copy(grown, 0, 0, this.chunkLen);
      this.chunk = grown;
    }
    this.block.copy(this.chunk, this.chunkLen, 0, len);
    const buf = this.chunk.subarray(this.chunkLen, this.chunkLen + len);
    this.refs.push({
      firstId: this.firstId,
      firstRev: this.firstRev,
      offset: this.offset,
      length: buf.length,
      crc: crc32c(buf),
    });
    this.chunkLen += len;
    this.offset += len;
    this.blockLen = 4;
    this.blockCount = 0;
  }
}

/**
 * Writes entries, in key order, to `file` (through a temporary name, fsynced, then renamed): the run is
 * complete or absent. `streamsMax` bounds the number of distinct streams (it sizes the Bloom filter).
 */
export async function writeRun(
  file: string,
  name: string,
  entries: Iterable<RunEntry> | AsyncIterable<RunEntry> | Batches<RunEntry>,
  streamsMax: number,
  sync = true,
): Promise<RunInfo> {
  const w = await RunWriter.create(file, streamsMax);
  let streams = 0;
  let maxPosition = -1;
  let prevId: string | null = null;
  let prevRev = 0;
  const add = ([id, rev, position]: RunEntry): void => {
    if (prevId !== null && compareKey(prevId, prevRev, id, rev) >= 0)
      throw new Error(`stream index: run entries out of order at ${id}@${rev}`);
    const idBytes = Buffer.byteLength(id, 'utf8');
    if (idBytes > 0xffff) throw new Error(`stream index: stream id of ${idBytes} bytes is too long`);
    w.room(2 + idBytes + 12, id, rev);
    const b = w.block;
    let o = b.writeUInt16LE(idBytes, w.blockLen);
    o += b.write(id, o, 'utf8');
    o = b.writeUInt32LE(rev, o);
    w.added(b.writeDoubleLE(position, o));
    if (id !== prevId) {
      streams++;
      w.bloom.add(id);
    }
    if (position > maxPosition) maxPosition = position;
    prevId = id;
    prevRev = rev;
  };
  try {
    await w.consume(entries, add);
    const { bytes, crc32c: crc } = await w.finish({ streams, maxPosition }, MAGIC, sync);
    return { name, entries: w.entries, streams, maxPosition, bytes, crc32c: crc };
  } catch (e) {
    await w.abort();
    throw e;
  }
}

export function encodeIndex(refs: BlockRef[]): Buffer {
  const ids = refs.map((r) => Buffer.from(r.firstId, 'utf8'));
  let size = 4;
  for (const id of ids) size += 2 + id.length + 4 + 8 + 4 + 4;
  const out = Buffer.allocUnsafe(size);
  let o = out.writeUInt32LE(refs.length, 0);
  refs.forEach((r, k) => {
    o = out.writeUInt16LE(ids[k].length, o);
    o += ids[k].copy(out, o);
    o = out.writeUInt32LE(r.firstRev, o);
    o = out.writeDoubleLE(r.offset, o);
    o = out.writeUInt32LE(r.length, o);
    o = out.writeUInt32LE(r.crc, o);
  });
  return out;
}

export interface Footer {
  indexOffset: number;
  indexLength: number;
  bloomOffset: number;
  bloomLength: number;
  entries: number;
  streams: number;
  maxPosition: number;
  metaCrc: number;
}

export function writeFooter(f: Footer, magic = MAGIC): Buffer {
  const b = Buffer.alloc(FOOTER_BYTES);
  let o = b.writeUInt32LE(magic, 0);
  o = b.writeDoubleLE(f.indexOffset, o);
  o = b.writeUInt32LE(f.indexLength, o);
  o = b.writeDoubleLE(f.bloomOffset, o);
  o = b.writeUInt32LE(f.bloomLength, o);
  o = b.writeDoubleLE(f.entries, o);
  o = b.writeDoubleLE(f.streams, o);
  o = b.writeDoubleLE(f.maxPosition, o);
  o = b.writeUInt32LE(f.metaCrc, o);
  b.writeUInt32LE(crc32c(b.subarray(0, o)), FOOTER_BYTES - 4);
  return b;
}

export function readFooter(b: Buffer, file: string, magic = MAGIC): Footer {
  const bad = (why: string) => new Error(`run ${file} is damaged (${why})`);
  if (b.length !== FOOTER_BYTES || b.readUInt32LE(0) !== magic) throw bad('no footer');
  if (crc32c(b.subarray(0, FOOTER_BYTES - 4)) !== b.readUInt32LE(FOOTER_BYTES - 4)) throw bad('footer CRC');
  let o = 4;
  const next = (bytes: 4 | 8) => {
    const v = bytes === 4 ? b.readUInt32LE(o) : b.readDoubleLE(o);
    o += bytes;
    return v;
  };
  return {
    indexOffset: next(8),
    indexLength: next(4),
    bloomOffset: next(8),
    bloomLength: next(4),
    entries: next(8),
    streams: next(8),
    maxPosition: next(8),
    metaCrc: next(4),
  };
}

/**
 * What every kind of run has once open: the file, its block index and Bloom filter in memory, blocks read on
 * demand (checked against their CRC) and kept in a cache shared with other runs. Subclasses decode blocks.
 */
export abstract class RunFrame<B extends Cached> {
  protected readonly runId: number;

  protected constructor(
    protected readonly file: string,
    protected readonly fd: number,
    protected readonly refs: BlockRef[],
    protected readonly bloom: BloomFilter,
    protected readonly cache: BlockCache<B>,
  ) {
    this.runId = cache.newRunId();
  }

  /**
   * Opens `file` and checks its footer (of `magic`), its sections' sizes (and the size `bytes` expected, when
   * known), and the CRC of its block index and filter. The caller owns the returned descriptor.
   */
  protected static openFrame(
    file: string,
    magic: number,
    bytes?: number,
  ): { fd: number; size: number; footer: Footer; refs: BlockRef[]; bloom: BloomFilter } {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      if (size < FOOTER_BYTES) throw new Error(`run ${file} is damaged (${size} bytes)`);
      const f = readFooter(preadExactly(fd, FOOTER_BYTES, size - FOOTER_BYTES, file), file, magic);
      if (
        f.bloomOffset + f.bloomLength + FOOTER_BYTES !== size ||
        f.indexOffset + f.indexLength !== f.bloomOffset ||
        (bytes !== undefined && size !== bytes)
      )
        throw new Error(`run ${file} is damaged (sections do not add up to ${size} bytes)`);
      const meta = preadExactly(fd, f.indexLength + f.bloomLength, f.indexOffset, file);
      if (crc32c(meta) !== f.metaCrc) throw new Error(`run ${file} is damaged (index CRC)`);
      const refs = decodeIndex(meta.subarray(0, f.indexLength));
      const bloomBytes = meta.subarray(f.indexLength);
      const bloom = BloomFilter.fromStored(
        new Uint8Array(bloomBytes.subarray(4)),
        bloomBytes.readUInt32LE(0),
      );
      return { fd, size, footer: f, refs, bloom };
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  close(): void {
    fs.closeSync(this.fd);
    this.cache.dropRun(this.runId);
  }

  /** Memory this run keeps outside the cache (block index and Bloom filter), roughly. */
  residentBytes(): number {
    return this.bloom.bits.length + this.refs.length * 64;
  }

  protected abstract decode(buf: Buffer): B;

  /** The last block whose first key is at or before the sought one (`notAfter`), or -1: a binary search. */
  protected lastBlockWhere(notAfter: (ref: BlockRef) => boolean): number {
    let lo = 0;
    let hi = this.refs.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (notAfter(this.refs[mid])) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /**
   * Block b for a point lookup: from the cache, or read, decoded and cached when the cache admits it (its
   * second miss lately); undefined otherwise, and the caller scans scratchBlock(b) instead.
   */
  protected lookupBlock(b: number): B | undefined {
    const key = BlockCache.key(this.runId, b);
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    if (!this.cache.admit(key)) return undefined;
    const block = this.readBlock(b);
    this.cache.set(key, block);
    return block;
  }

  /** Block b's bytes, checked, in a buffer shared by every run: valid until the next call, never kept. */
  protected scratchBlock(b: number): Buffer {
    const ref = this.refs[b];
    if (scratch.length < ref.length)
      scratch = Buffer.allocUnsafeSlow(Math.max(ref.length, 2 * scratch.length));
    const buf = scratch.subarray(0, ref.length);
    preadInto(this.fd, buf, ref.offset, this.file);
    if (crc32c(buf) !== ref.crc)
      throw new Error(`run ${this.file} is damaged (CRC of block ${b} at ${ref.offset})`);
    return buf;
  }

  /** Block b, from the cache or read, checked and decoded (then cached). */
  protected block(b: number): B {
    const key = BlockCache.key(this.runId, b);
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    const block = this.readBlock(b);
    this.cache.set(key, block);
    return block;
  }

  /**
   * Block b read into `reuse.buf` (grown when too small) and decoded, without the cache: for a reader that is
   * done with a block before it asks for the next (a merge reads each run once, block after block). One
   * buffer per reader instead of one per block: the blocks of merges were most of the small buffers a node
   * allocated and freed, which fragment the allocator's heap.
   */
  protected readBlockReusing(b: number, reuse: { buf: Buffer }): B {
    const ref = this.refs[b];
    if (reuse.buf.length < ref.length)
      reuse.buf = Buffer.allocUnsafeSlow(Math.max(ref.length, 2 * reuse.buf.length));
    const buf = reuse.buf.subarray(0, ref.length);
    preadInto(this.fd, buf, ref.offset, this.file);
    if (crc32c(buf) !== ref.crc)
      throw new Error(`run ${this.file} is damaged (CRC of block ${b} at ${ref.offset})`);
    return this.decode(buf);
  }

  /** Block b read from the file and decoded, without the cache. */
  protected readBlock(b: number): B {
    const ref = this.refs[b];
    const buf = preadExactly(this.fd, ref.length, ref.offset, this.file);
    if (crc32c(buf) !== ref.crc)
      throw new Error(`run ${this.file} is damaged (CRC of block ${b} at ${ref.offset})`);
    return this.decode(buf);
  }
}

/** An open run of the stream index: (stream id, revision) → position. */
export class RunReader extends RunFrame<Block> {
  private constructor(
    readonly info: RunInfo,
    file: string,
    fd: number,
    refs: BlockRef[],
    bloom: BloomFilter,
    cache: BlockCache,
  ) {
    super(file, fd, refs, bloom, cache);
  }

  /** Opens and checks a run's footer, index and bloom filter (blocks are checked when read). */
  static open(file: string, name: string, cache: BlockCache, crc32cOfFile = 0): RunReader {
    const { fd, size, footer: f, refs, bloom } = RunFrame.openFrame(file, MAGIC);
    const info: RunInfo = {
      name,
      entries: f.entries,
      streams: f.streams,
      maxPosition: f.maxPosition,
      bytes: size,
      crc32c: crc32cOfFile,
    };
    return new RunReader(info, file, fd, refs, bloom, cache);
  }

  /** The stream's highest revision in this run, or -1. */
  lastRevision(id: string): number {
    if (!this.bloom.mayContain(id)) return -1;
    const b = this.lastBlockAtOrBefore(id, 0xffffffff);
    if (b < 0) return -1;
    const block = this.lookupBlock(b);
    if (block === undefined) {
      // The block's last entry of the stream (entries are in revision order), found by comparing bytes.
      const buf = this.scratchBlock(b);
      const want = keyBytes(id);
      const count = buf.readUInt32LE(0);
      let rev = -1;
      for (let k = 0, o = 4; k < count; k++) {
        const len = buf.readUInt16LE(o);
        o += 2;
        if (len === want && buf.compare(keyScratch, 0, want, o, o + len) === 0)
          rev = buf.readUInt32LE(o + len);
        o += len + 12;
      }
      return rev;
    }
    for (let k = block.ids.length - 1; k >= 0; k--) {
      if (block.ids[k] === id) return block.revs[k];
      if (block.ids[k] < id) return -1;
    }
    return -1;
  }

  /** Adds the stream's positions of revisions from..to (inclusive) held here to `out` (revision → position). */
  collect(id: string, from: number, to: number, out: Map<number, number>): void {
    if (!this.bloom.mayContain(id)) return;
    let b = Math.max(0, this.lastBlockAtOrBefore(id, from));
    for (; b < this.refs.length; b++) {
      const ref = this.refs[b];
      if (compareKey(ref.firstId, ref.firstRev, id, to) > 0) return;
      const block = this.lookupBlock(b);
      if (block === undefined) {
        if (!this.collectRaw(b, id, from, to, out)) return;
        continue;
      }
      for (let k = 0; k < block.ids.length; k++) {
        const c = compareKey(block.ids[k], block.revs[k], id, from);
        if (c < 0) continue;
        if (block.ids[k] !== id || block.revs[k] > to) return;
        out.set(block.revs[k], block.positions[k]);
      }
    }
  }

  /**
   * collect() over block b's bytes (not decoded): the stream's entries are contiguous, so a non-matching
   * entry after a matching one, or a revision past `to`, ends it (false: nothing further can match).
   */
  private collectRaw(b: number, id: string, from: number, to: number, out: Map<number, number>): boolean {
    const buf = this.scratchBlock(b);
    const want = keyBytes(id);
    const count = buf.readUInt32LE(0);
    let matched = false;
    for (let k = 0, o = 4; k < count; k++) {
      const len = buf.readUInt16LE(o);
      o += 2;
      const match = len === want && buf.compare(keyScratch, 0, want, o, o + len) === 0;
      o += len;
      if (match) {
        matched = true;
        const rev = buf.readUInt32LE(o);
        if (rev > to) return false;
        if (rev >= from) out.set(rev, buf.readDoubleLE(o + 4));
      } else if (matched) return false;
      o += 12;
    }
    return true;
  }

  /** Every entry, in key order (for merging runs). */
  *entries(): Generator<[string, number, number]> {
    const reuse = { buf: Buffer.allocUnsafeSlow(8192) };
    for (let b = 0; b < this.refs.length; b++) {
      const block = this.readBlockReusing(b, reuse);
      for (let k = 0; k < block.ids.length; k++) yield [block.ids[k], block.revs[k], block.positions[k]];
    }
  }

  /** The last block whose first key is ≤ (id, rev), or -1. */
  private lastBlockAtOrBefore(id: string, rev: number): number {
    return this.lastBlockWhere((r) => compareKey(r.firstId, r.firstRev, id, rev) <= 0);
  }

  protected decode(buf: Buffer): Block {
    const count = buf.readUInt32LE(0);
    const ids: string[] = new Array(count);
    const revs = new Uint32Array(count);
    const positions = new Float64Array(count);
    let o = 4;
    let idBytes = 0;
    for (let k = 0; k < count; k++) {
      const len = buf.readUInt16LE(o);
      o += 2;
      ids[k] = buf.toString('utf8', o, o + len);
      idBytes += len;
      o += len;
      revs[k] = buf.readUInt32LE(o);
      positions[k] = buf.readDoubleLE(o + 4);
      o += 12;
    }
    return { ids, revs, positions, bytes: 64 + count * 40 + idBytes * 2 };
  }
}

export function decodeIndex(b: Buffer): BlockRef[] {
  const n = b.readUInt32LE(0);
  const refs: BlockRef[] = new Array(n);
  let o = 4;
  for (let k = 0; k < n; k++) {
    const len = b.readUInt16LE(o);
    o += 2;
    const firstId = b.toString('utf8', o, o + len);
    o += len;
    refs[k] = {
      firstId,
      firstRev: b.readUInt32LE(o),
      offset: b.readDoubleLE(o + 4),
      length: b.readUInt32LE(o + 12),
      crc: b.readUInt32LE(o + 16),
    };
    o += 20;
  }
  return refs;
}

/** Where point lookups read a block not worth caching (see RunFrame.scratchBlock). */
let scratch = Buffer.allocUnsafeSlow(64 * 1024);
/** The UTF-8 bytes of the key a point lookup compares against (see keyBytes); keys in runs have < 64 KiB. */
export const keyScratch = Buffer.allocUnsafeSlow(0x10000);

/**
 * Puts `key`'s UTF-8 bytes at the start of keyScratch and returns their number, or -1 for a key too long
 * to be in any run (its length field is a u16), which then matches nothing.
 */
export function keyBytes(key: string): number {
  if (key.length * 3 > 0xffff && Buffer.byteLength(key, 'utf8') > 0xffff) return -1;
  return keyScratch.write(key, 0, 'utf8');
}

function preadInto(fd: number, buf: Buffer, position: number, file: string): void {
  let got = 0;
  while (got < buf.length) {
    const n = fs.readSync(fd, buf, got, buf.length - got, position + got);
    if (n === 0)
      throw new Error(`stream index: run ${file} ends early (wanted ${buf.length} bytes at ${position})`);
    got += n;
  }
}

export function preadExactly(fd: number, length: number, position: number, file: string): Buffer {
  // Not from the shared pool: a cached block must not keep a pool slab (and its neighbours) alive.
  const buf = Buffer.allocUnsafeSlow(length);
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, buf, got, length - got, position + got);
    if (n === 0)
      throw new Error(`stream index: run ${file} ends early (wanted ${length} bytes at ${position})`);
    got += n;
  }
  return buf;
}
