import { EventEnvelope } from '../types';
import { readUuid, UUID_BYTES } from '../uuid';

/**
 * One stored event in an event file (little endian):
 *   u32 recordBytes (whole record, this field included)  f64 position  f64 revision  16B id
 *   u8 tsLen ts(ascii)  u16 streamLen streamId(ascii)  u16 typeLen type(utf8)
 *   u32 dataLen data(JSON utf8)  u32 metaLen metadata(JSON utf8)
 */
export const RECORD_HEADER_BYTES = 4 + 8 + 8 + UUID_BYTES;
const RECORD_FIXED_BYTES = RECORD_HEADER_BYTES + 1 + 2 + 2 + 4 + 4;

export interface RecordFields {
  position: number;
  revision: number;
  /** The id's 16 bytes. */
  id: Uint8Array;
  timestamp: string;
  streamId: string;
  type: string;
  data: Uint8Array;
  metadata: Uint8Array;
}

export function recordBytes(f: RecordFields): number {
  return (
    RECORD_FIXED_BYTES +
    f.timestamp.length +
    f.streamId.length +
    Buffer.byteLength(f.type, 'utf8') +
    f.data.length +
    f.metadata.length
  );
}

/** Encodes a record into `out` at `o`; returns the offset after it. */
export function encodeRecord(f: RecordFields, out: Buffer, o: number): number {
  const start = o;
  o += 4;
  o = out.writeDoubleLE(f.position, o);
  o = out.writeDoubleLE(f.revision, o);
  if (f.id.length !== UUID_BYTES) throw new Error(`encodeRecord: id of ${f.id.length} bytes`);
  out.set(f.id, o);
  o += UUID_BYTES;
  out[o++] = f.timestamp.length;
  o += out.write(f.timestamp, o, 'latin1');
  o = out.writeUInt16LE(f.streamId.length, o);
  o += out.write(f.streamId, o, 'latin1');
  const typeLen = out.write(f.type, o + 2, 'utf8');
  o = out.writeUInt16LE(typeLen, o) + typeLen;
  o = out.writeUInt32LE(f.data.length, o);
  out.set(f.data, o);
  o += f.data.length;
  o = out.writeUInt32LE(f.metadata.length, o);
  out.set(f.metadata, o);
  o += f.metadata.length;
  out.writeUInt32LE(o - start, start);
  return o;
}

/**
 * A stored event decoded from record bytes. streamId, type, revision, position and timestamp are decoded
 * eagerly; id, data and metadata on first access (replay of projections rarely needs them).
 * Serializes (JSON.stringify) as the plain API envelope.
 */
export class StoredEvent implements EventEnvelope {
  readonly position: number;
  readonly revision: number;
  readonly timestamp: string;
  readonly streamId: string;
  readonly type: string;
  private idCache: string | undefined;
  private dataCache: unknown = undefined;
  private metaCache: unknown = undefined;
  private readonly dataStart: number;
  private readonly metaStart: number;

  /** The record's size in bytes (its length prefix). */
  get byteLength(): number {
    return this.buf.readUInt32LE(this.start);
  }

  /**
   * `buf` must not be modified afterwards (it is kept for the lazy fields). `known` skips decoding the
   * strings when the caller just wrote the record from them (apply).
   */
  constructor(
    private readonly buf: Buffer,
    private readonly start: number,
    known?: { position: number; revision: number; timestamp: string; streamId: string; type: string },
  ) {
    let o = start + RECORD_HEADER_BYTES;
    const tsLen = buf[o++];
    if (known === undefined) {
      this.position = buf.readDoubleLE(start + 4);
      this.revision = buf.readDoubleLE(start + 12);
      this.timestamp = buf.toString('latin1', o, o + tsLen);
    } else {
      this.position = known.position;
      this.revision = known.revision;
      this.timestamp = known.timestamp;
    }
    o += tsLen;
    const streamLen = buf.readUInt16LE(o);
    o += 2;
    this.streamId = known === undefined ? buf.toString('latin1', o, o + streamLen) : known.streamId;
    o += streamLen;
    const typeLen = buf.readUInt16LE(o);
    o += 2;
    this.type = known === undefined ? buf.toString('utf8', o, o + typeLen) : known.type;
    o += typeLen;
    this.dataStart = o;
    this.metaStart = o + 4 + buf.readUInt32LE(o);
  }

  get id(): string {
    if (this.idCache === undefined) this.idCache = readUuid(this.buf, this.start + 20);
    return this.idCache;
  }

  get data(): unknown {
    if (this.dataCache === undefined) this.dataCache = JSON.parse(this.rawData().toString('utf8'));
    return this.dataCache;
  }

  get metadata(): unknown {
    if (this.metaCache === undefined) this.metaCache = JSON.parse(this.rawMetadata().toString('utf8'));
    return this.metaCache;
  }

  rawData(): Buffer {
    return this.buf.subarray(this.dataStart + 4, this.metaStart);
  }

  rawMetadata(): Buffer {
    return this.buf.subarray(this.metaStart + 4, this.metaStart + 4 + this.buf.readUInt32LE(this.metaStart));
  }

  /** The 16 id bytes. */
  rawId(): Buffer {
    return this.buf.subarray(this.start + 20, this.start + 20 + UUID_BYTES);
  }

  toEnvelope(): EventEnvelope {
    return {
      id: this.id,
      streamId: this.streamId,
      type: this.type,
      revision: this.revision,
      position: this.position,
      timestamp: this.timestamp,
      data: this.data,
      metadata: this.metadata,
    };
  }

  /**
   * The envelope as JSON text, built from the stored JSON bytes without parsing them (fast path for
   * HTTP/SSE). Identical to JSON.stringify(toEnvelope()) up to whitespace inside data/metadata.
   */
  toJSONText(): string {
    return (
      `{"id":"${this.id}","streamId":${JSON.stringify(this.streamId)},"type":${JSON.stringify(this.type)},` +
      `"revision":${this.revision},"position":${this.position},"timestamp":"${this.timestamp}",` +
      `"data":${this.rawData().toString('utf8')},"metadata":${this.rawMetadata().toString('utf8')}}`
    );
  }

  toJSON(): EventEnvelope {
    return this.toEnvelope();
  }
}
