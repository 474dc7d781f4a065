/**
 * A Bloom filter over stream ids: "is this stream in that run?" answered without reading the run. With
 * 10 bits per stream and 7 probes about 1% of absent streams are reported as maybe present.
 */
export class BloomFilter {
  constructor(
    readonly bits: Uint8Array,
    readonly probes: number,
  ) {}

  static forCount(count: number, bitsPerKey = 10): BloomFilter {
    const bytes = Math.max(8, Math.ceil((Math.max(1, count) * bitsPerKey) / 8));
    const probes = Math.max(1, Math.min(30, Math.round(bitsPerKey * Math.LN2)));
    return new BloomFilter(new Uint8Array(bytes), probes);
  }

  add(key: string): void {
    const m = this.bits.length * 8;
    const [h1, h2] = hashPair(key);
    for (let i = 0; i < this.probes; i++) {
      const bit = (h1 + Math.imul(i, h2)) >>> 0;
      const b = bit % m;
      this.bits[b >>> 3] |= 1 << (b & 7);
    }
  }

  mayContain(key: string): boolean {
    const m = this.bits.length * 8;
    const [h1, h2] = hashPair(key);
    for (let i = 0; i < this.probes; i++) {
      const b = ((h1 + Math.imul(i, h2)) >>> 0) % m;
      if ((this.bits[b >>> 3] & (1 << (b & 7))) === 0) return false;
    }
    return true;
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
