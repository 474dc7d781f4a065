import * as os from 'node:os';
import { UUID_BYTES } from '../uuid';

/** Words of an id read 4 bytes at a time are the little-endian words hashAt() builds byte by byte. */
const littleEndian = os.endianness() === 'LE';

/**
 * The idempotency window: the ids of the events at the most recent `capacity` positions, i.e. positions
 * [max(0, end - capacity), end). Being defined by position only, it is identical on every node.
 * A ring of 16-byte ids (slot = position % capacity) plus an open-addressing hash table (linear probing,
 * backward-shift deletion). A cell is two words: slot + 1 (0 = empty) and the id's full hash, so probing
 * and the shifts of a deletion never touch the ring (a cache miss per cell otherwise: evicting the oldest id
 * on every append cost half of apply's time once the window was full). Memory: 16 B × capacity + 8 B × table.
 */
export class IdWindow {
  private readonly ring: Uint8Array;
  /** The ring as 32-bit words (4 per id), for hashing ids already in the ring. */
  private readonly ringWords: Int32Array;
  /** Cell k: [2k] slot + 1 (0 = empty), [2k + 1] hash of the id in that slot. */
  private readonly cells: Uint32Array;
  private readonly mask: number;
  /** Positions [start, end) are in the window. */
  private start = 0;
  private end = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1 || capacity > 2 ** 28) {
      throw new Error(`IdWindow: capacity ${capacity} must be an integer in 1..2^28`);
    }
    this.ring = new Uint8Array(capacity * UUID_BYTES);
    this.ringWords = new Int32Array(this.ring.buffer, this.ring.byteOffset, capacity * (UUID_BYTES / 4));
    let size = 1;
    while (size < capacity * 2) size *= 2;
    this.cells = new Uint32Array(size * 2);
    this.mask = size - 1;
  }

  /** Starts empty at `nextPosition` (positions before it are outside the window). */
  reset(nextPosition: number): void {
    this.cells.fill(0);
    this.start = this.end = nextPosition;
  }

  /** Adds the id (16 bytes at `src[o]`) of the event at `position`, which must be the next position. */
  add(position: number, src: Uint8Array, o: number): void {
    if (position !== this.end) throw new Error(`IdWindow.add: position ${position}, expected ${this.end}`);
    if (this.end - this.start === this.capacity) this.evictOldest();
    const slot = position % this.capacity;
    this.ring.set(src.subarray(o, o + UUID_BYTES), slot * UUID_BYTES);
    this.insert(slot, this.hashSlot(slot));
    this.end++;
  }

  /** The position of the event with this id (16 bytes at `src[o]`), or -1 if not in the window. */
  find(src: Uint8Array, o: number): number {
    const h = this.hashAt(src, o);
    const cells = this.cells;
    let i = h & this.mask;
    while (cells[2 * i] !== 0) {
      if (cells[2 * i + 1] === h) {
        const slot = cells[2 * i] - 1;
        if (this.equalsAt(slot, src, o)) return this.positionOfSlot(slot);
      }
      i = (i + 1) & this.mask;
    }
    return -1;
  }

  /** Positions [start, end) and their ids in position order (16 B each). */
  encode(): Buffer {
    const n = this.end - this.start;
    const out = Buffer.allocUnsafe(16 + n * UUID_BYTES);
    out.writeDoubleLE(this.start, 0);
    out.writeDoubleLE(this.end, 8);
    // The window is at most two runs of the ring (before and after the wrap): two copies, not one per id.
    for (let p = this.start, o = 16; p < this.end;) {
      const slot = p % this.capacity;
      const run = Math.min(this.end - p, this.capacity - slot);
      out.set(this.ring.subarray(slot * UUID_BYTES, (slot + run) * UUID_BYTES), o);
      p += run;
      o += run * UUID_BYTES;
    }
    return out;
  }

  /** Loads an encoded window; with a smaller capacity only the most recent ids are kept. */
  load(buf: Buffer): void {
    const start = buf.readDoubleLE(0);
    const end = buf.readDoubleLE(8);
    if (buf.length !== 16 + (end - start) * UUID_BYTES)
      throw new Error(`IdWindow.load: ${buf.length} bytes for positions ${start}..${end}`);
    const from = Math.max(start, end - this.capacity);
    this.reset(from);
    // Bulk: copy the ids into their ring slots (at most two runs), then index each slot. No eviction can
    // happen (end - from <= capacity), so this equals add() per position without its per-id copies.
    for (let p = from; p < end;) {
      const slot = p % this.capacity;
      const run = Math.min(end - p, this.capacity - slot);
      const src = 16 + (p - start) * UUID_BYTES;
      this.ring.set(buf.subarray(src, src + run * UUID_BYTES), slot * UUID_BYTES);
      for (let k = 0; k < run; k++) this.insert(slot + k, this.hashSlot(slot + k));
      p += run;
    }
    this.end = end;
  }

  private insert(slot: number, h: number): void {
    const cells = this.cells;
    let i = h & this.mask;
    while (cells[2 * i] !== 0) i = (i + 1) & this.mask;
    cells[2 * i] = slot + 1;
    cells[2 * i + 1] = h;
  }

  private positionOfSlot(slot: number): number {
    const startSlot = this.start % this.capacity;
    return this.start + ((slot - startSlot + this.capacity) % this.capacity);
  }

  private evictOldest(): void {
    const slot = this.start % this.capacity;
    const cells = this.cells;
    // The oldest slot's id is read from the ring in position order (sequential, cache friendly).
    let i = this.hashSlot(slot) & this.mask;
    while (cells[2 * i] !== slot + 1) {
      if (cells[2 * i] === 0)
        throw new Error(`IdWindow: id of position ${this.start} missing from the table`);
      i = (i + 1) & this.mask;
    }
    // Backward-shift deletion keeps every probe chain unbroken without tombstones.
    let j = i;
    while (true) {
      j = (j + 1) & this.mask;
      const cell = cells[2 * j];
      if (cell === 0) break;
      const home = cells[2 * j + 1] & this.mask;
      const movable = i <= j ? home <= i || home > j : home <= i && home > j;
      if (movable) {
        cells[2 * i] = cell;
        cells[2 * i + 1] = cells[2 * j + 1];
        i = j;
      }
    }
    cells[2 * i] = 0;
    this.start++;
  }

  private equalsAt(slot: number, src: Uint8Array, o: number): boolean {
    const r = slot * UUID_BYTES;
    for (let k = 0; k < UUID_BYTES; k++) if (this.ring[r + k] !== src[o + k]) return false;
    return true;
  }

  /** hashAt() of the id in ring slot `slot`, reading whole words. */
  private hashSlot(slot: number): number {
    if (!littleEndian) return this.hashAt(this.ring, slot * UUID_BYTES);
    const r = this.ringWords;
    const o = slot * 4;
    let h = 0x811c9dc5;
    h = Math.imul(h ^ r[o], 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h ^ r[o + 1], 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h ^ r[o + 2], 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h ^ r[o + 3], 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    return (h ^ (h >>> 13)) >>> 0;
  }

  private hashAt(b: Uint8Array, o: number): number {
    let h = 0x811c9dc5;
    for (let k = 0; k < UUID_BYTES; k += 4) {
      const w = b[o + k] | (b[o + k + 1] << 8) | (b[o + k + 2] << 16) | (b[o + k + 3] << 24);
      h = Math.imul(h ^ w, 0x9e3779b1);
      h ^= h >>> 15;
    }
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    return (h ^ (h >>> 13)) >>> 0;
  }
}
