/** One stream's positions by revision: positions[r] is the global position of revision r. */
export class StreamPositions {
  positions: Float64Array;
  count: number;

  constructor(positions: Float64Array = new Float64Array(4), count = 0) {
    this.positions = positions;
    this.count = count;
  }

  get lastRevision(): number {
    return this.count - 1;
  }

  push(position: number): number {
    if (this.count === this.positions.length) {
      const grown = new Float64Array(this.positions.length * 2);
      grown.set(this.positions);
      this.positions = grown;
    }
    this.positions[this.count] = position;
    return this.count++;
  }
}

/** What reads and appends ask of a stream index, wherever it keeps its entries. */
export interface StreamLookup {
  /** -1 when the stream does not exist. */
  lastRevision(streamId: string): number;
  /** The global positions of revisions from..to (inclusive) that exist, in revision order. */
  positions(streamId: string, from: number, to: number): number[];
  /** Records the stream's next revision at `position` (positions only grow); returns that revision. */
  append(streamId: string, position: number): number;
  /** Number of streams. */
  size(): number;
}

/** streamId → positions of its events, in revision order, in the heap. */
export class StreamIndex implements StreamLookup {
  private readonly streams = new Map<string, StreamPositions>();

  get(streamId: string): StreamPositions | undefined {
    return this.streams.get(streamId);
  }

  /** -1 when the stream does not exist. */
  lastRevision(streamId: string): number {
    return this.streams.get(streamId)?.lastRevision ?? -1;
  }

  /** Records the next revision of a stream at `position`; returns that revision. */
  append(streamId: string, position: number): number {
    return this.getOrCreate(streamId).push(position);
  }

  positions(streamId: string, from: number, to: number): number[] {
    const s = this.streams.get(streamId);
    if (s === undefined) return [];
    const lo = Math.max(0, from);
    const hi = Math.min(to, s.count - 1);
    return hi < lo ? [] : Array.from(s.positions.subarray(lo, hi + 1));
  }

  getOrCreate(streamId: string): StreamPositions {
    let s = this.streams.get(streamId);
    if (!s) {
      s = new StreamPositions();
      this.streams.set(streamId, s);
    }
    return s;
  }

  size(): number {
    return this.streams.size;
  }

  /** Every stream and its positions, in no particular order. */
  entries(): IterableIterator<[string, StreamPositions]> {
    return this.streams.entries();
  }

  /** Binary form: u32 streams, then per stream u16 idLen, id(latin1), u32 count, f64 × count. */
  encode(): Buffer {
    const { chunk, count } = this.encodeSome(this.streams[Symbol.iterator](), Infinity, Infinity);
    return Buffer.concat([countHead(count), chunk]);
  }

  /**
   * encode() of the index as it was when `lastPosition` was the last position, in chunks of about
   * `chunkBytes`, without blocking the event loop: yields between chunks while appends go on. Consistent
   * because positions only grow: a stream's count at the cut is its number of positions ≤ lastPosition
   * (a prefix of its array that later appends never change; a grown array keeps the prefix), and streams
   * created later (first position > lastPosition) are left out. The first chunk is the stream count.
   */
  async encodeAt(lastPosition: number, chunkBytes = 1 << 20): Promise<Buffer[]> {
    const chunks: Buffer[] = [];
    const it = this.streams[Symbol.iterator]();
    let streams = 0;
    for (;;) {
      const { chunk, count, done } = this.encodeSome(it, lastPosition, chunkBytes);
      if (chunk.length > 0) chunks.push(chunk);
      streams += count;
      if (done) break;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return [countHead(streams), ...chunks];
  }

  /** Encodes streams from `it` until about `chunkBytes` are written or the streams run out. */
  private encodeSome(
    it: Iterator<[string, StreamPositions]>,
    lastPosition: number,
    chunkBytes: number,
  ): { chunk: Buffer; count: number; done: boolean } {
    const picked: [string, Float64Array, number][] = [];
    let size = 0;
    let done = false;
    while (size < chunkBytes) {
      const r = it.next();
      if (r.done) {
        done = true;
        break;
      }
      const [id, s] = r.value;
      const n = countUpTo(s, lastPosition);
      if (n === 0) continue;
      picked.push([id, s.positions, n]);
      size += 2 + id.length + 4 + 8 * n;
    }
    const out = Buffer.allocUnsafe(size);
    let o = 0;
    for (const [id, positions, n] of picked) {
      o = out.writeUInt16LE(id.length, o);
      o += out.write(id, o, 'latin1');
      o = out.writeUInt32LE(n, o);
      o += Buffer.from(positions.buffer, positions.byteOffset, n * 8).copy(out, o);
    }
    if (o !== size) throw new Error(`StreamIndex.encode: wrote ${o} bytes, computed ${size}`);
    return { chunk: out, count: picked.length, done };
  }

  static decode(buf: Buffer): StreamIndex {
    const index = new StreamIndex();
    const n = buf.readUInt32LE(0);
    let o = 4;
    for (let i = 0; i < n; i++) {
      const idLen = buf.readUInt16LE(o);
      o += 2;
      const id = buf.toString('latin1', o, o + idLen);
      o += idLen;
      const count = buf.readUInt32LE(o);
      o += 4;
      const positions = new Float64Array(Math.max(4, count));
      new Uint8Array(positions.buffer).set(buf.subarray(o, o + count * 8));
      o += count * 8;
      index.streams.set(id, new StreamPositions(positions, count));
    }
    if (o !== buf.length) throw new Error(`StreamIndex.decode: ${buf.length - o} trailing bytes`);
    return index;
  }
}

function countHead(streams: number): Buffer {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32LE(streams, 0);
  return head;
}

/** How many of the stream's positions are ≤ lastPosition (positions ascend). */
function countUpTo(s: StreamPositions, lastPosition: number): number {
  const p = s.positions;
  if (s.count === 0 || p[s.count - 1] <= lastPosition) return s.count;
  let lo = 0;
  let hi = s.count; // first index with p[i] > lastPosition lies in [lo, hi]
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (p[mid] <= lastPosition) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
