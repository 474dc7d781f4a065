import { crc32c } from '@node-rs/crc32';
import * as fsp from 'node:fs/promises';
import { BlockCache, Cached } from './block-cache';
import { BloomFilter } from './bloom';
import { BlockRef, FOOTER_BYTES, RunFrame, RunInfo, encodeIndex, writeFooter } from './run-file';

/**
 * A key → value run: an immutable file of (key, value) pairs in key order, one value per key, where the
 * value is text (a projection partition's state as JSON). The same frame as the stream index's runs
 * (run-file.ts): blocks of about BLOCK_BYTES, a block index (first key, offset, length, CRC-32C), a Bloom
 * filter over the keys and a footer, under its own magic number. A block holds u32 count, then per pair
 * u16 key bytes, key (UTF-8), u32 value bytes, value (UTF-8).
 *
 * The footer's `streams` field counts keys and `maxPosition` is the event position the values are as of.
 */

const KV_MAGIC = 0x4b565231; // "KVR1"
const BLOCK_BYTES = 4096;
const WRITE_CHUNK_BYTES = 1 << 20;

export type KvEntry = [key: string, value: string];
/** A pair to write: the value as text, or as its UTF-8 bytes (a merge copies them without decoding). */
export type KvWriteEntry = [key: string, value: string | Buffer];

/**
 * A decoded block: its keys in order; values stay bytes in `buf` (start and length of value k at
 * `spans[2k]`, `spans[2k + 1]`) and are decoded only when asked for, since a lookup wants one of them.
 */
export interface KvBlock extends Cached {
  keys: string[];
  buf: Buffer;
  spans: Uint32Array;
}

function valueAt(block: KvBlock, k: number): string {
  const o = block.spans[2 * k];
  return block.buf.toString('utf8', o, o + block.spans[2 * k + 1]);
}

/**
 * Writes pairs, in strictly ascending key order, to `file` through a temporary name: the run is complete
 * or absent. `keysMax` sizes the Bloom filter. `sync`: fsync before the rename (a run that is only ever
 * made durable by being linked into a snapshot cut, which fsyncs what it links, can skip it).
 */
export async function writeKvRun(
  file: string,
  name: string,
  entries: Iterable<KvWriteEntry> | AsyncIterable<KvWriteEntry>,
  keysMax: number,
  asOfPosition: number,
  sync = true,
): Promise<RunInfo> {
  const refs: BlockRef[] = [];
  const bloom = BloomFilter.forCount(keysMax);
  let count = 0;
  let offset = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let fileCrc = 0;
  let block = Buffer.allocUnsafe(BLOCK_BYTES * 2);
  let blockLen = 4;
  let blockCount = 0;
  let firstKey = '';
  let prev: string | null = null;
  const tmp = `${file}.tmp`;
  const fh = await fsp.open(tmp, 'w');
  const endBlock = () => {
    block.writeUInt32LE(blockCount, 0);
    const buf = Buffer.from(block.subarray(0, blockLen));
    refs.push({ firstId: firstKey, firstRev: 0, offset, length: buf.length, crc: crc32c(buf) });
    pending.push(buf);
    pendingBytes += buf.length;
    offset += buf.length;
    blockLen = 4;
    blockCount = 0;
  };
  try {
    for await (const [key, value] of entries) {
      if (prev !== null && !(prev < key)) throw new Error(`key-value run: keys out of order at ${key}`);
      const keyBytes = Buffer.byteLength(key, 'utf8');
      if (keyBytes > 0xffff) throw new Error(`key-value run: key of ${keyBytes} bytes is too long`);
      const valueBytes = typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.length;
      const need = 2 + keyBytes + 4 + valueBytes;
      if (blockCount > 0 && blockLen + need > BLOCK_BYTES) endBlock();
      if (pendingBytes >= WRITE_CHUNK_BYTES) {
        for (const b of pending) fileCrc = crc32c(b, fileCrc);
        await fh.writev(pending);
        pending = [];
        pendingBytes = 0;
      }
      if (blockLen + need > block.length) {
        const grown = Buffer.allocUnsafe(Math.max(blockLen + need, block.length * 2));
        block.copy(grown, 0, 0, blockLen);
        block = grown;
      }
      if (blockCount === 0) firstKey = key;
      blockLen = block.writeUInt16LE(keyBytes, blockLen);
      blockLen += block.write(key, blockLen, 'utf8');
      blockLen = block.writeUInt32LE(valueBytes, blockLen);
      blockLen +=
        typeof value === 'string' ? block.write(value, blockLen, 'utf8') : value.copy(block, blockLen);
      blockCount++;
      count++;
      bloom.add(key);
      prev = key;
    }
    if (blockCount > 0) endBlock();
    const index = encodeIndex(refs);
    const bloomBytes = Buffer.allocUnsafe(4 + bloom.bits.length);
    bloomBytes.writeUInt32LE(bloom.probes, 0);
    Buffer.from(bloom.bits.buffer, bloom.bits.byteOffset, bloom.bits.length).copy(bloomBytes, 4);
    const footer = writeFooter(
      {
        indexOffset: offset,
        indexLength: index.length,
        bloomOffset: offset + index.length,
        bloomLength: bloomBytes.length,
        entries: count,
        streams: count,
        maxPosition: asOfPosition,
        metaCrc: crc32c(bloomBytes, crc32c(index)),
      },
      KV_MAGIC,
    );
    const rest = [...pending, index, bloomBytes, footer];
    for (const b of rest) fileCrc = crc32c(b, fileCrc);
    await fh.writev(rest);
    if (sync) await fh.sync();
    await fh.close();
    await fsp.rename(tmp, file);
    const bytes = offset + index.length + bloomBytes.length + FOOTER_BYTES;
    return { name, entries: count, streams: count, maxPosition: asOfPosition, bytes, crc32c: fileCrc >>> 0 };
  } catch (e) {
    await fh.close().catch(() => {});
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

/** An open key → value run: block index and Bloom filter in memory, blocks read on demand through the cache. */
export class KvRunReader extends RunFrame<KvBlock> {
  private constructor(
    readonly info: RunInfo,
    file: string,
    fd: number,
    refs: BlockRef[],
    bloom: BloomFilter,
    cache: BlockCache<KvBlock>,
  ) {
    super(file, fd, refs, bloom, cache);
  }

  /** Opens a run and checks its footer, index and filter (blocks are checked when read). */
  static open(file: string, info: RunInfo, cache: BlockCache<KvBlock>): KvRunReader {
    const { fd, refs, bloom } = RunFrame.openFrame(file, KV_MAGIC, info.bytes);
    return new KvRunReader(info, file, fd, refs, bloom, cache);
  }

  /** The key's value (JSON text), or undefined when the run does not hold the key. */
  get(key: string): string | undefined {
    if (!this.bloom.mayContain(key)) return undefined;
    const b = this.lastBlockAtOrBefore(key);
    if (b < 0) return undefined;
    const block = this.block(b);
    const k = bisect(block.keys, key);
    return k < block.keys.length && block.keys[k] === key ? valueAt(block, k) : undefined;
  }

  /** Pairs with keys strictly after `after` (null: from the first), in key order. */
  *from(after: string | null): Generator<KvEntry> {
    let b = after === null ? 0 : Math.max(0, this.lastBlockAtOrBefore(after));
    for (; b < this.refs.length; b++) {
      const block = this.block(b);
      let k = after === null ? 0 : bisect(block.keys, after);
      if (after !== null && k < block.keys.length && block.keys[k] === after) k++;
      for (; k < block.keys.length; k++) yield [block.keys[k], valueAt(block, k)];
    }
  }

  /** Every pair in key order with the value's bytes, read without the cache (merges read whole runs once). */
  *rawEntries(): Generator<[string, Buffer]> {
    for (let b = 0; b < this.refs.length; b++) {
      const block = this.readBlock(b);
      for (let k = 0; k < block.keys.length; k++) {
        const o = block.spans[2 * k];
        yield [block.keys[k], block.buf.subarray(o, o + block.spans[2 * k + 1])];
      }
    }
  }

  /** Every pair in key order, read without going through the cache. */
  *entries(): Generator<KvEntry> {
    for (let b = 0; b < this.refs.length; b++) {
      const block = this.readBlock(b);
      for (let k = 0; k < block.keys.length; k++) yield [block.keys[k], valueAt(block, k)];
    }
  }

  private lastBlockAtOrBefore(key: string): number {
    return this.lastBlockWhere((r) => r.firstId <= key);
  }

  protected decode(buf: Buffer): KvBlock {
    const count = buf.readUInt32LE(0);
    const keys: string[] = new Array(count);
    const spans = new Uint32Array(2 * count);
    let o = 4;
    let keyBytes = 0;
    for (let k = 0; k < count; k++) {
      const kl = buf.readUInt16LE(o);
      o += 2;
      keys[k] = buf.toString('utf8', o, o + kl);
      keyBytes += kl;
      o += kl;
      const vl = buf.readUInt32LE(o);
      spans[2 * k] = o + 4;
      spans[2 * k + 1] = vl;
      o += 4 + vl;
    }
    // The bytes, the spans, and the keys (about two bytes per character, plus a header each).
    return { keys, buf, spans, bytes: 128 + buf.length + count * 40 + keyBytes * 2 };
  }
}

/** The first index whose key is ≥ `key`. */
function bisect(keys: string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
