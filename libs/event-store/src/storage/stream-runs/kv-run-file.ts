import { BlockCache, Cached } from './block-cache';
import { BloomFilter } from './bloom';
import { Batches, BlockRef, keyBytes, keyScratch, RunFrame, RunInfo, RunWriter } from './run-file';

/**
 * A key → value run: an immutable file of (key, value) pairs in key order, one value per key, where the
 * value is text (a projection partition's state as JSON). The same frame as the stream index's runs
 * (run-file.ts): blocks of about 4 KiB, a block index (first key, offset, length, CRC-32C), a Bloom
 * filter over the keys and a footer, under its own magic number. A block holds u32 count, then per pair
 * u16 key bytes, key (UTF-8), u32 value bytes, value (UTF-8).
 *
 * The footer's `streams` field counts keys and `maxPosition` is the event position the values are as of.
 */

const KV_MAGIC = 0x4b565231; // "KVR1"

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
  entries: Iterable<KvWriteEntry> | AsyncIterable<KvWriteEntry> | Batches<KvWriteEntry>,
  keysMax: number,
  asOfPosition: number,
  sync = true,
): Promise<RunInfo> {
  const w = await RunWriter.create(file, keysMax);
  let prev: string | null = null;
  const add = ([key, value]: KvWriteEntry): void => {
    if (prev !== null && !(prev < key)) throw new Error(`key-value run: keys out of order at ${key}`);
    const keyBytes = Buffer.byteLength(key, 'utf8');
    if (keyBytes > 0xffff) throw new Error(`key-value run: key of ${keyBytes} bytes is too long`);
    const valueBytes = typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.length;
    w.room(2 + keyBytes + 4 + valueBytes, key, 0);
    const b = w.block;
    let o = b.writeUInt16LE(keyBytes, w.blockLen);
    o += b.write(key, o, 'utf8');
    o = b.writeUInt32LE(valueBytes, o);
    o += typeof value === 'string' ? b.write(value, o, 'utf8') : value.copy(b, o);
    w.added(o);
    w.bloom.add(key);
    prev = key;
  };
  try {
    await w.consume(entries, add);
    const count = w.entries;
    const { bytes, crc32c } = await w.finish({ streams: count, maxPosition: asOfPosition }, KV_MAGIC, sync);
    return { name, entries: count, streams: count, maxPosition: asOfPosition, bytes, crc32c };
  } catch (e) {
    await w.abort();
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
    const block = this.lookupBlock(b);
    if (block === undefined) {
      // Not worth caching yet: the pair found by comparing bytes, only its value decoded.
      const buf = this.scratchBlock(b);
      const want = keyBytes(key);
      const count = buf.readUInt32LE(0);
      for (let k = 0, o = 4; k < count; k++) {
        const len = buf.readUInt16LE(o);
        o += 2;
        const match = len === want && buf.compare(keyScratch, 0, want, o, o + len) === 0;
        const vl = buf.readUInt32LE(o + len);
        o += len + 4;
        if (match) return buf.toString('utf8', o, o + vl);
        o += vl;
      }
      return undefined;
    }
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
    // A value's bytes are valid until the next pair is asked for (the merge copies them into its output).
    const reuse = { buf: Buffer.allocUnsafeSlow(8192) };
    for (let b = 0; b < this.refs.length; b++) {
      const block = this.readBlockReusing(b, reuse);
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
