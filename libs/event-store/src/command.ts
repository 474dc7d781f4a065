import { EventStoreError } from './errors';
import { EventStoreLimits } from './limits';
import { AppendCommand, AppendInput, ExpectedRevision, PreparedEvent } from './types';
import { isUuid, readUuid, UUID_BYTES, writeUuid } from './uuid';

const STREAM_ID_RE = /^[A-Za-z0-9._:@-]+$/;
const EMPTY_OBJECT_JSON: Uint8Array = Buffer.from('{}');

/** Validates a stream id (API.md): 1–256 chars of [A-Za-z0-9._:@-], not starting with `$`. Returns a problem or null. */
export function streamIdProblem(streamId: unknown, charsMax = 256): string | null {
  if (typeof streamId !== 'string') return 'must be a string';
  if (streamId.length === 0) return 'must not be empty';
  if (streamId.length > charsMax) return `longer than ${charsMax} characters`;
  if (streamId.startsWith('$')) return "names starting with '$' are reserved";
  if (!STREAM_ID_RE.test(streamId)) return 'only A-Z a-z 0-9 . _ : @ - are allowed';
  return null;
}

export function expectedRevisionProblem(e: unknown): string | null {
  if (e === 'any' || e === 'no_stream' || e === 'stream_exists') return null;
  if (typeof e === 'number' && Number.isSafeInteger(e) && e >= 0) return null;
  return "must be 'any', 'no_stream', 'stream_exists' or an integer revision >= 0";
}

function invalid(field: string, problem: string): EventStoreError {
  return new EventStoreError('invalid_request', `${field}: ${problem}`, [{ field, problem }]);
}

function jsonBytes(value: unknown, field: string): Uint8Array {
  if (value === undefined) return EMPTY_OBJECT_JSON;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw invalid(field, `not a JSON value (${(e as Error).message})`);
  }
  if (text === undefined) throw invalid(field, 'not a JSON value');
  return Buffer.from(text, 'utf8');
}

/**
 * Validates a client's append and turns it into the replicated command: ids assigned (`newId` for events
 * without one), data and metadata serialized once to JSON bytes, the leader's timestamp recorded.
 * Throws EventStoreError('invalid_request' | 'payload_too_large') naming the field.
 */
export function prepareAppend(
  input: AppendInput,
  limits: EventStoreLimits,
  now: Date,
  newId: () => string,
): AppendCommand {
  if (typeof input !== 'object' || input === null) throw invalid('body', 'must be an object');
  const streamProblem = streamIdProblem(input.streamId, limits.streamIdCharsMax);
  if (streamProblem) throw invalid('streamId', streamProblem);
  const expectedRevision: ExpectedRevision = input.expectedRevision ?? 'any';
  const expectedProblem = expectedRevisionProblem(expectedRevision);
  if (expectedProblem) throw invalid('expectedRevision', expectedProblem);
  if (!Array.isArray(input.events)) throw invalid('events', 'must be an array');
  if (input.events.length === 0) throw invalid('events', 'at least one event is required');
  if (input.events.length > limits.eventsPerAppendMax) {
    throw new EventStoreError(
      'payload_too_large',
      `events: ${input.events.length} events, at most ${limits.eventsPerAppendMax} per append`,
    );
  }
  const seen = new Map<string, number>();
  const events: PreparedEvent[] = [];
  let totalBytes = 0;
  for (let i = 0; i < input.events.length; i++) {
    const prepared = prepareEvent(input.events[i], `events[${i}]`, limits, newId);
    const earlier = seen.get(prepared.id);
    if (earlier !== undefined) throw invalid(`events[${i}].id`, `duplicates events[${earlier}].id`);
    seen.set(prepared.id, i);
    totalBytes += prepared.data.length + prepared.metadata.length;
    if (totalBytes > limits.appendBytesMax) {
      throw new EventStoreError(
        'payload_too_large',
        `events: data + metadata exceed ${limits.appendBytesMax} bytes per append`,
      );
    }
    events.push(prepared);
  }
  return { kind: 'append', streamId: input.streamId, expectedRevision, timestamp: now.toISOString(), events };
}

function prepareEvent(
  e: unknown,
  field: string,
  limits: EventStoreLimits,
  newId: () => string,
): PreparedEvent {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) throw invalid(field, 'must be an object');
  const ev = e as Record<string, unknown>;
  let id: string;
  if (ev.id === undefined || ev.id === null) {
    id = newId();
    if (!isUuid(id)) throw new Error(`prepareAppend: newId() returned '${id}', not a UUID`);
  } else if (!isUuid(ev.id)) {
    throw invalid(`${field}.id`, 'not a UUID');
  } else {
    id = ev.id;
  }
  if (typeof ev.type !== 'string' || ev.type.length === 0)
    throw invalid(`${field}.type`, 'required, a non-empty string');
  if (ev.type.length > limits.eventTypeCharsMax)
    throw invalid(`${field}.type`, `longer than ${limits.eventTypeCharsMax} characters`);
  const data = jsonBytes(ev.data, `${field}.data`);
  const metadata = jsonBytes(ev.metadata, `${field}.metadata`);
  if (data.length + metadata.length > limits.eventBytesMax) {
    throw new EventStoreError(
      'payload_too_large',
      `${field}: data + metadata are ${data.length + metadata.length} bytes serialized, at most ${limits.eventBytesMax}`,
    );
  }
  return { id: id.toLowerCase(), type: ev.type, data, metadata };
}

// ---- binary encoding of the command (little endian) ----
// u8 version(1) u8 kind(1=append) f64 expected(-1 any, -2 no_stream, -3 stream_exists, >=0 exact)
// u8 tsLen ts(ascii) u16 streamLen stream(utf8) u32 count
// per event: 16B id, u16 typeLen type(utf8), u32 dataLen data, u32 metaLen metadata

const COMMAND_VERSION = 1;
const KIND_APPEND = 1;
/**
 * Several append commands in one Raft entry, applied one after the other exactly as if each were its own
 * entry: u8 version(1) u8 kind(2) u32 count, then per command u32 length + the command's bytes.
 * The leader groups the appends that arrive in the same event-loop turn, so concurrent single-event
 * appends share one entry's log record, checksum, replication and bookkeeping.
 */
const KIND_BATCH = 2;
const BATCH_HEADER_BYTES = 2 + 4;

/** Packs encoded append commands into one batch command (at least two; a single command goes alone). */
export function encodeBatch(commands: readonly Uint8Array[]): Uint8Array {
  if (commands.length < 2)
    throw new Error(`encodeBatch: ${commands.length} commands, a batch holds at least 2`);
  let size = BATCH_HEADER_BYTES;
  for (const c of commands) size += 4 + c.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = COMMAND_VERSION;
  out[1] = KIND_BATCH;
  let o = out.writeUInt32LE(commands.length, 2);
  for (const c of commands) {
    o = out.writeUInt32LE(c.length, o);
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** True when the entry is a batch command (a malformed batch is reported by splitBatch). */
export function isBatch(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === COMMAND_VERSION && bytes[1] === KIND_BATCH;
}

/** The commands of a batch, as views into `bytes`. Throws on a malformed batch. */
export function splitBatch(bytes: Uint8Array): Buffer[] {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < BATCH_HEADER_BYTES || !isBatch(b)) throw new Error('decodeBatch: not a batch command');
  const count = b.readUInt32LE(2);
  // Each command takes at least 4 bytes of length: a count beyond that is corrupt (and must not allocate).
  if (count < 2 || count > (b.length - BATCH_HEADER_BYTES) / 4)
    throw new Error(`decodeBatch: count ${count} does not fit ${b.length} bytes`);
  const out: Buffer[] = [];
  let o = BATCH_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (o + 4 > b.length) throw new Error(`decodeBatch: truncated at command ${i}`);
    const len = b.readUInt32LE(o);
    o += 4;
    if (o + len > b.length) throw new Error(`decodeBatch: command ${i} of ${len} bytes runs past the end`);
    out.push(b.subarray(o, o + len));
    o += len;
  }
  if (o !== b.length) throw new Error(`decodeBatch: ${b.length - o} trailing bytes`);
  return out;
}

export function encodeExpected(e: ExpectedRevision): number {
  return e === 'any' ? -1 : e === 'no_stream' ? -2 : e === 'stream_exists' ? -3 : e;
}

export function decodeExpected(n: number): ExpectedRevision {
  return n === -1 ? 'any' : n === -2 ? 'no_stream' : n === -3 ? 'stream_exists' : n;
}

export function encodeCommand(cmd: AppendCommand): Uint8Array {
  const stream = Buffer.from(cmd.streamId, 'utf8');
  const ts = Buffer.from(cmd.timestamp, 'latin1');
  const types = cmd.events.map((e) => Buffer.from(e.type, 'utf8'));
  let size = 2 + 8 + 1 + ts.length + 2 + stream.length + 4;
  for (let i = 0; i < cmd.events.length; i++) {
    size +=
      UUID_BYTES + 2 + types[i].length + 4 + cmd.events[i].data.length + 4 + cmd.events[i].metadata.length;
  }
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  out[o++] = COMMAND_VERSION;
  out[o++] = KIND_APPEND;
  o = out.writeDoubleLE(encodeExpected(cmd.expectedRevision), o);
  out[o++] = ts.length;
  o += ts.copy(out, o);
  o = out.writeUInt16LE(stream.length, o);
  o += stream.copy(out, o);
  o = out.writeUInt32LE(cmd.events.length, o);
  for (let i = 0; i < cmd.events.length; i++) {
    const e = cmd.events[i];
    writeUuid(e.id, out, o);
    o += UUID_BYTES;
    o = out.writeUInt16LE(types[i].length, o);
    o += types[i].copy(out, o);
    o = out.writeUInt32LE(e.data.length, o);
    out.set(e.data, o);
    o += e.data.length;
    o = out.writeUInt32LE(e.metadata.length, o);
    out.set(e.metadata, o);
    o += e.metadata.length;
  }
  if (o !== size) throw new Error(`encodeCommand: wrote ${o} bytes, computed ${size}`);
  return out;
}

/**
 * A decoded command as apply uses it: byte fields are offsets into `bytes` (the entry; no copies, no views).
 * An event's `tail` (u16 typeLen type u32 dataLen data u32 metaLen metadata) has the same layout as the end
 * of a stored record, and so has the command's `head` (u8 tsLen ts u16 streamLen stream): apply copies both.
 */
export interface DecodedEvent {
  /** Offset of the 16 id bytes. */
  idAt: number;
  type: string;
  tailAt: number;
  tailEnd: number;
  dataAt: number;
  dataLen: number;
  metaAt: number;
  metaLen: number;
}

export interface DecodedCommand {
  bytes: Buffer;
  streamId: string;
  expectedRevision: ExpectedRevision;
  timestamp: string;
  headAt: number;
  headLen: number;
  events: DecodedEvent[];
}

/** Decodes a command; data/metadata are views into `bytes` (no copy). Throws on malformed input. */
export function decodeCommand(bytes: Uint8Array): AppendCommand {
  const raw = decodeCommandRaw(bytes);
  const b = raw.bytes;
  return {
    kind: 'append',
    streamId: raw.streamId,
    expectedRevision: raw.expectedRevision,
    timestamp: raw.timestamp,
    events: raw.events.map((e) => ({
      id: readUuid(b, e.idAt),
      type: e.type,
      data: b.subarray(e.dataAt, e.dataAt + e.dataLen),
      metadata: b.subarray(e.metaAt, e.metaAt + e.metaLen),
    })),
  };
}

/**
 * Event type names decoded from entries, reused while the same bytes recur: an append's events and the
 * next appends mostly repeat a handful of types, so apply gets the same string objects (no decoding, and
 * their hashes are already computed for the projections' maps).
 */
class TypeNameCache {
  private readonly names: string[] = new Array(TYPE_CACHE_SLOTS).fill('');
  private readonly bytes: Buffer[] = new Array(TYPE_CACHE_SLOTS).fill(Buffer.alloc(0));

  decode(b: Buffer, o: number, len: number): string {
    if (len > TYPE_CACHE_BYTES_MAX) return b.toString('utf8', o, o + len);
    // Slot by length and the first and last bytes: cheap, and distinct types rarely collide.
    const slot = (len * 31 + (len > 0 ? b[o] * 7 + b[o + len - 1] : 0)) & (TYPE_CACHE_SLOTS - 1);
    const cached = this.bytes[slot];
    if (cached.length === len) {
      let same = true;
      for (let i = 0; i < len; i++) {
        if (cached[i] !== b[o + i]) {
          same = false;
          break;
        }
      }
      if (same) return this.names[slot];
    }
    const name = b.toString('utf8', o, o + len);
    this.bytes[slot] = Buffer.from(b.subarray(o, o + len));
    this.names[slot] = name;
    return name;
  }
}
const TYPE_CACHE_SLOTS = 64;
const TYPE_CACHE_BYTES_MAX = 64;
const typeNames = new TypeNameCache();

export function decodeCommandRaw(bytes: Uint8Array): DecodedCommand {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (o: number, n: number) => {
    if (o + n > b.length) throw new Error(`decodeCommand: truncated at byte ${o} (need ${n} of ${b.length})`);
  };
  need(0, 11);
  if (b[0] !== COMMAND_VERSION) throw new Error(`decodeCommand: unknown version ${b[0]}`);
  if (b[1] !== KIND_APPEND) throw new Error(`decodeCommand: unknown kind ${b[1]}`);
  let o = 2;
  const expectedRevision = decodeExpected(b.readDoubleLE(o));
  o += 8;
  const headAt = o;
  const tsLen = b[o++];
  need(o, tsLen + 2);
  const timestamp = b.toString('latin1', o, o + tsLen);
  o += tsLen;
  const streamLen = b.readUInt16LE(o);
  o += 2;
  need(o, streamLen + 4);
  const streamId = b.toString('utf8', o, o + streamLen);
  o += streamLen;
  const headLen = o - headAt;
  const count = b.readUInt32LE(o);
  o += 4;
  const events: DecodedEvent[] = [];
  for (let i = 0; i < count; i++) {
    need(o, UUID_BYTES + 2);
    const idAt = o;
    o += UUID_BYTES;
    const tailAt = o;
    const typeLen = b.readUInt16LE(o);
    o += 2;
    need(o, typeLen + 4);
    const type = typeNames.decode(b, o, typeLen);
    o += typeLen;
    const dataLen = b.readUInt32LE(o);
    o += 4;
    need(o, dataLen + 4);
    const dataAt = o;
    o += dataLen;
    const metaLen = b.readUInt32LE(o);
    o += 4;
    need(o, metaLen);
    const metaAt = o;
    o += metaLen;
    events.push({ idAt, type, tailAt, tailEnd: o, dataAt, dataLen, metaAt, metaLen });
  }
  if (o !== b.length) throw new Error(`decodeCommand: ${b.length - o} trailing bytes`);
  return { bytes: b, streamId, expectedRevision, timestamp, headAt, headLen, events };
}
