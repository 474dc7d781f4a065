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

/** streamId → positions of its events, in revision order. */
export class StreamIndex {
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

  /** Binary form: u32 streams, then per stream u16 idLen, id(latin1), u32 count, f64 × count. */
  encode(): Buffer {
    let size = 4;
    for (const [id, s] of this.streams) size += 2 + id.length + 4 + 8 * s.count;
    const out = Buffer.allocUnsafe(size);
    let o = out.writeUInt32LE(this.streams.size, 0);
    for (const [id, s] of this.streams) {
      o = out.writeUInt16LE(id.length, o);
      o += out.write(id, o, 'latin1');
      o = out.writeUInt32LE(s.count, o);
      const bytes = Buffer.from(s.positions.buffer, s.positions.byteOffset, s.count * 8);
      o += bytes.copy(out, o);
    }
    if (o !== size) throw new Error(`StreamIndex.encode: wrote ${o} bytes, computed ${size}`);
    return out;
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
