/** In the stored probe count: the filter is blocked (see BloomFilter). */
const BLOCKED = 0x80000000;
/** Bits per block of a blocked filter: one 64-byte cache line. */
const BLOCK_BITS = 512;

/**
 * A Bloom filter over keys (stream ids, partition keys): "is this key in that run?" answered without
 * reading the run. 10 bits per key and 7 probes.
 *
 * Blocked (what runs are written with): the first hash picks one 64-byte block, and every probe falls in
 * it. A lookup of a new key asks every run's filter (dozens with millions of streams), and a classic
 * filter's 7 probes spread over megabytes were 7 cache misses per run: ~10-15% of a leader's CPU at 2M
 * streams. About 1% of absent keys are reported as maybe present (a little more than the classic 0.8%).
 * Classic filters (runs written before) are still read.
 */
export class BloomFilter {
  private readonly blocks: number;

  constructor(
    readonly bits: Uint8Array,
    readonly probes: number,
    readonly blocked = false,
  ) {
    if (blocked && bits.length % (BLOCK_BITS / 8) !== 0)
      throw new Error(`bloom filter: ${bits.length} bytes is not a whole number of blocks`);
    this.blocks = blocked ? bits.length / (BLOCK_BITS / 8) : 0;
  }

  static forCount(count: number, bitsPerKey = 10): BloomFilter {
    const blockBytes = BLOCK_BITS / 8;
    const bytes = Math.max(1, Math.ceil((Math.max(1, count) * bitsPerKey) / BLOCK_BITS)) * blockBytes;
    const probes = Math.max(1, Math.min(30, Math.round(bitsPerKey * Math.LN2)));
    return new BloomFilter(new Uint8Array(bytes), probes, true);
  }

  /** A filter as stored in a run: its bytes and the stored probe field (which says whether it is blocked). */
  static fromStored(bits: Uint8Array, storedProbes: number): BloomFilter {
    const blocked = (storedProbes & BLOCKED) !== 0;
    return new BloomFilter(bits, storedProbes & ~BLOCKED, blocked);
  }

  /** The probe field to store next to the bytes. */
  get storedProbes(): number {
    return (this.blocked ? this.probes | BLOCKED : this.probes) >>> 0;
  }

  add(key: string): void {
    const [h1, h2] = hashPair(key);
    if (this.blocked) {
      const base = this.blockOf(h1);
      const step = (h2 >>> 9) | 1;
      for (let i = 0, p = h2; i < this.probes; i++, p += step) {
        const b = base + (p & (BLOCK_BITS - 1));
        this.bits[b >>> 3] |= 1 << (b & 7);
      }
      return;
    }
    const m = this.bits.length * 8;
    for (let i = 0; i < this.probes; i++) {
      const bit = (h1 + Math.imul(i, h2)) >>> 0;
      const b = bit % m;
      this.bits[b >>> 3] |= 1 << (b & 7);
    }
  }

  mayContain(key: string): boolean {
    const [h1, h2] = hashPair(key);
    if (this.blocked) {
      const base = this.blockOf(h1);
      const step = (h2 >>> 9) | 1;
      for (let i = 0, p = h2; i < this.probes; i++, p += step) {
        const b = base + (p & (BLOCK_BITS - 1));
        if ((this.bits[b >>> 3] & (1 << (b & 7))) === 0) return false;
      }
      return true;
    }
    const m = this.bits.length * 8;
    for (let i = 0; i < this.probes; i++) {
      const b = ((h1 + Math.imul(i, h2)) >>> 0) % m;
      if ((this.bits[b >>> 3] & (1 << (b & 7))) === 0) return false;
    }
    return true;
  }

  /** The first bit of the block a key hashing to `h1` lives in (multiply-shift: no division). */
  private blockOf(h1: number): number {
    return Math.floor((h1 / 4294967296) * this.blocks) * BLOCK_BITS;
  }
}

const pair: [number, number] = [0, 0];

let lastKey: string | null = null;

/**
 * Two independent 32-bit hashes of the string's UTF-16 code units (FNV-1a and a murmur3-style mix). A lookup
 * asks every run's filter about the same key in a row: the last key's hashes are kept, so they are computed
 * once per lookup however many runs there are.
 */
function hashPair(key: string): [number, number] {
  if (key === lastKey) return pair;
  lastKey = key;
  let a = 0x811c9dc5;
  let b = 0x9747b28c ^ key.length;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  b = Math.imul(b ^ (b >>> 13), 0xc2b2ae35);
  b ^= b >>> 16;
  pair[0] = a >>> 0;
  // Odd, so the probes of double hashing visit distinct bits.
  pair[1] = (b | 1) >>> 0;
  return pair;
}
