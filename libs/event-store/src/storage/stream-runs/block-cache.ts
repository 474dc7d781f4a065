/** One decoded block of a run: its entries in key order (stream id, then revision). */
export interface Block {
  ids: string[];
  revs: Uint32Array;
  positions: Float64Array;
  /** What the block costs in memory, roughly: what the cache budget counts. */
  bytes: number;
}

/** Anything the cache holds: it only needs to know what each costs. */
export interface Cached {
  bytes: number;
}

/**
 * The decoded blocks of every run, least recently used first out, bounded by bytes. Shared by all runs of
 * an index (or all partition stores of the projections) so one budget covers them. Each run gets its own
 * id from the cache, so blocks of different runs never meet under one key.
 */
/** Blocks per run a cache key can tell apart (4 KiB blocks: runs up to 256 GiB). */
const BLOCKS_PER_RUN = 2 ** 26;

export class BlockCache<B extends Cached = Block> {
  /** Keyed by run id × BLOCKS_PER_RUN + block number: a number, hashed for free, unlike a string. */
  private readonly blocks = new Map<number, B>();
  /**
   * Keys of blocks missed lately but not cached (oldest first): a block is decoded and cached on its second
   * miss within the last `seenMax` misses. With millions of streams most lookups touch a block once (a cold
   * stream); caching each of those only evicted blocks that were wanted again, and decoding every key of a
   * block to find one cost more than the lookup. A point lookup on a block not admitted scans its bytes.
   */
  private readonly seen = new Set<number>();
  private readonly seenMax: number;
  private nextRunId = 1;
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly bytesMax: number) {
    // About four times the blocks the budget holds (a decoded block costs about twice its 4 KiB).
    this.seenMax = Math.max(1024, Math.ceil(bytesMax / 2048));
  }

  /** Whether a block just missed should be read into the cache: true on its second miss in the window. */
  admit(key: number): boolean {
    if (this.seen.delete(key)) return true;
    this.seen.add(key);
    if (this.seen.size > this.seenMax) this.seen.delete(this.seen.values().next().value as number);
    return false;
  }

  /** An id for a run opened over this cache: its blocks' keys are key(id, block). */
  newRunId(): number {
    return this.nextRunId++;
  }

  static key(runId: number, block: number): number {
    if (block >= BLOCKS_PER_RUN)
      throw new Error(`block cache: block ${block} of a run is past the key space`);
    return runId * BLOCKS_PER_RUN + block;
  }

  get(key: number): B | undefined {
    const b = this.blocks.get(key);
    if (b === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Map iteration order is insertion order: re-inserting makes it the most recently used.
    this.blocks.delete(key);
    this.blocks.set(key, b);
    return b;
  }

  set(key: number, block: B): void {
    const old = this.blocks.get(key);
    if (old !== undefined) {
      this.bytes -= old.bytes;
      this.blocks.delete(key);
    }
    this.blocks.set(key, block);
    this.bytes += block.bytes;
    for (const [k, b] of this.blocks) {
      if (this.bytes <= this.bytesMax || this.blocks.size <= 1) break;
      this.blocks.delete(k);
      this.bytes -= b.bytes;
    }
  }

  /** Drops the blocks of one run (deleted after a merge). */
  dropRun(runId: number): void {
    for (const [k, b] of this.blocks) {
      if (Math.floor(k / BLOCKS_PER_RUN) !== runId) continue;
      this.blocks.delete(k);
      this.bytes -= b.bytes;
    }
  }

  get size(): { blocks: number; bytes: number } {
    return { blocks: this.blocks.size, bytes: this.bytes };
  }
}
