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
 * an index (or all partition stores of the projections) so one budget covers them. Keys are prefixed by
 * run, so blocks of different kinds never meet under one key.
 */
export class BlockCache<B extends Cached = Block> {
  private readonly blocks = new Map<string, B>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly bytesMax: number) {}

  get(key: string): B | undefined {
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

  set(key: string, block: B): void {
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
  dropPrefix(prefix: string): void {
    for (const [k, b] of this.blocks) {
      if (!k.startsWith(prefix)) continue;
      this.blocks.delete(k);
      this.bytes -= b.bytes;
    }
  }

  get size(): { blocks: number; bytes: number } {
    return { blocks: this.blocks.size, bytes: this.bytes };
  }
}
