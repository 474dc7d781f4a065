/**
 * The binary codec of Raft messages. Hand-written, little-endian, no JSON:
 * - integers (index, term, offsets, seq) as float64: exact for every safe integer, checked on decode;
 * - strings (node ids, addresses) as u16 byte length + UTF-8;
 * - byte payloads (entry data, snapshot chunks) as u32 length + the raw bytes;
 * - booleans packed into one flags byte per message.
 * A message on the wire: u32 length of the rest, u8 type tag, the fields. The length lets a reader
 * check that a message was consumed exactly (and skip nothing silently).
 */
import { Message, MessageType } from '../core/messages';
import { ConfigState, Entry, EntryType, MemberAddress, SnapshotMeta } from '../core/types';

export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

const TAGS: Record<MessageType, number> = {
  VoteRequest: 1,
  VoteResponse: 2,
  AppendRequest: 3,
  AppendResponse: 4,
  SnapshotRequest: 5,
  SnapshotResponse: 6,
  TimeoutNow: 7,
};

const stringBytesMax = 0xffff;
const listItemsMax = 0xffff;
const entryTypes = new Set<number>([EntryType.Normal, EntryType.Noop, EntryType.Config]);

/** Writes into a buffer sized by `messageBytesUpperBound`; overflow is a programmer error. */
export class Writer {
  constructor(
    readonly buf: Buffer,
    public offset: number,
  ) {}

  u8(v: number): void {
    this.buf[this.offset++] = v;
  }
  u16(v: number): void {
    this.offset = this.buf.writeUInt16LE(v, this.offset);
  }
  u32(v: number): void {
    this.offset = this.buf.writeUInt32LE(v, this.offset);
  }
  int(v: number, field: string): void {
    if (!Number.isSafeInteger(v)) throw new CodecError(`cannot encode ${field}=${v}: not a safe integer`);
    this.offset = this.buf.writeDoubleLE(v, this.offset);
  }
  str(s: string, field: string): void {
    const start = this.offset;
    const n = this.buf.write(s, start + 2, 'utf8');
    if (n > stringBytesMax) throw new CodecError(`cannot encode ${field}: ${n} bytes > ${stringBytesMax}`);
    this.buf.writeUInt16LE(n, start);
    this.offset = start + 2 + n;
  }
  bytes(b: Uint8Array): void {
    this.u32(b.byteLength);
    this.buf.set(b, this.offset);
    this.offset += b.byteLength;
  }
}

/** Reads within [offset, end); every read past `end` is a CodecError naming the field. */
export class Reader {
  constructor(
    readonly buf: Buffer,
    public offset: number,
    readonly end: number,
  ) {}

  private need(n: number, field: string): void {
    if (this.offset + n > this.end) {
      throw new CodecError(
        `truncated ${field}: needs ${n} bytes at offset ${this.offset}, message ends at ${this.end}`,
      );
    }
  }
  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.offset++];
  }
  u16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16LE(this.offset);
    this.offset += 2;
    return v;
  }
  u32(field: string): number {
    this.need(4, field);
    const v = this.buf.readUInt32LE(this.offset);
    this.offset += 4;
    return v;
  }
  int(field: string): number {
    this.need(8, field);
    const v = this.buf.readDoubleLE(this.offset);
    this.offset += 8;
    if (!Number.isSafeInteger(v)) throw new CodecError(`bad ${field}: ${v} is not a safe integer`);
    return v;
  }
  str(field: string): string {
    const n = this.u16(field);
    this.need(n, field);
    const s = this.buf.toString('utf8', this.offset, this.offset + n);
    this.offset += n;
    return s;
  }
  /** A copy: decoded messages never pin the frame buffer they came in. */
  bytes(field: string): Uint8Array {
    const n = this.u32(field);
    this.need(n, field);
    const out = new Uint8Array(n);
    out.set(this.buf.subarray(this.offset, this.offset + n));
    this.offset += n;
    return out;
  }

  /** Like bytes(), but a view into `copy`, which holds this reader's bytes from `copyStart` on. */
  bytesIn(field: string, copy: Uint8Array, copyStart: number): Uint8Array {
    const n = this.u32(field);
    this.need(n, field);
    const at = this.offset - copyStart;
    this.offset += n;
    return copy.subarray(at, at + n);
  }
}

/** Wire bytes of a string, over-estimated without encoding it (UTF-16 unit → at most 3 UTF-8 bytes). */
function strBound(s: string): number {
  return 2 + s.length * 3;
}

function configBound(c: ConfigState): number {
  let n = 3 * 2;
  for (const list of [c.voters, c.outgoing, c.learners]) for (const id of list) n += strBound(id);
  n += 2;
  for (const [id, a] of Object.entries(c.addresses))
    n += strBound(id) + strBound(a.raftAddress) + strBound(a.httpUrl);
  return n;
}

/** An upper bound of the encoded size, including the 4-byte length prefix. Cheap: no string encoding. */
export function messageBytesUpperBound(m: Message): number {
  let n = 4 + 1 + strBound(m.from) + strBound(m.to) + 8;
  switch (m.type) {
    case 'VoteRequest':
      return n + 1 + 16;
    case 'VoteResponse':
      return n + 1;
    case 'AppendRequest':
      n += 32 + 4;
      for (const e of m.entries) n += 8 + 8 + 1 + 4 + e.data.byteLength;
      return n;
    case 'AppendResponse':
      return n + 1 + 40;
    case 'SnapshotRequest':
      return n + 16 + configBound(m.meta.config) + 8 + 1 + 8 + 4 + m.data.byteLength;
    case 'SnapshotResponse':
      return n + 16 + 1 + 8;
    case 'TimeoutNow':
      return n;
  }
}

function writeConfig(w: Writer, c: ConfigState): void {
  for (const [name, list] of [
    ['voters', c.voters],
    ['outgoing', c.outgoing],
    ['learners', c.learners],
  ] as const) {
    if (list.length > listItemsMax)
      throw new CodecError(`cannot encode config.${name}: ${list.length} ids > ${listItemsMax}`);
    w.u16(list.length);
    for (const id of list) w.str(id, `config.${name}`);
  }
  const addresses = Object.entries(c.addresses);
  if (addresses.length > listItemsMax)
    throw new CodecError(`cannot encode config.addresses: too many (${addresses.length})`);
  w.u16(addresses.length);
  for (const [id, a] of addresses) {
    w.str(id, 'config.addresses id');
    w.str(a.raftAddress, 'config.addresses raftAddress');
    w.str(a.httpUrl, 'config.addresses httpUrl');
  }
}

function readConfig(r: Reader): ConfigState {
  const lists: string[][] = [];
  for (const name of ['voters', 'outgoing', 'learners']) {
    const n = r.u16(`config.${name} count`);
    const list: string[] = [];
    for (let i = 0; i < n; i++) list.push(r.str(`config.${name}`));
    lists.push(list);
  }
  const addresses: Record<string, MemberAddress> = {};
  const n = r.u16('config.addresses count');
  for (let i = 0; i < n; i++) {
    const id = r.str('config.addresses id');
    addresses[id] = {
      raftAddress: r.str('config.addresses raftAddress'),
      httpUrl: r.str('config.addresses httpUrl'),
    };
  }
  return { voters: lists[0], outgoing: lists[1], learners: lists[2], addresses };
}

function writeBody(w: Writer, m: Message): void {
  switch (m.type) {
    case 'VoteRequest':
      w.u8((m.preVote ? 1 : 0) | (m.transfer ? 2 : 0));
      w.int(m.lastLogIndex, 'lastLogIndex');
      w.int(m.lastLogTerm, 'lastLogTerm');
      return;
    case 'VoteResponse':
      w.u8((m.preVote ? 1 : 0) | (m.granted ? 2 : 0));
      return;
    case 'AppendRequest':
      w.int(m.prevLogIndex, 'prevLogIndex');
      w.int(m.prevLogTerm, 'prevLogTerm');
      w.int(m.leaderCommit, 'leaderCommit');
      w.int(m.seq, 'seq');
      w.u32(m.entries.length);
      for (const e of m.entries) {
        w.int(e.index, 'entry.index');
        w.int(e.term, 'entry.term');
        if (!entryTypes.has(e.type))
          throw new CodecError(`cannot encode entry.type ${e.type} at index ${e.index}`);
        w.u8(e.type);
        w.bytes(e.data);
      }
      return;
    case 'AppendResponse':
      w.u8(m.success ? 1 : 0);
      w.int(m.matchIndex, 'matchIndex');
      w.int(m.conflictTerm, 'conflictTerm');
      w.int(m.conflictIndex, 'conflictIndex');
      w.int(m.lastLogIndex, 'lastLogIndex');
      w.int(m.seq, 'seq');
      return;
    case 'SnapshotRequest':
      w.int(m.meta.index, 'meta.index');
      w.int(m.meta.term, 'meta.term');
      writeConfig(w, m.meta.config);
      w.int(m.offset, 'offset');
      w.u8(m.done ? 1 : 0);
      w.int(m.seq, 'seq');
      w.bytes(m.data);
      return;
    case 'SnapshotResponse':
      w.int(m.index, 'index');
      w.int(m.nextOffset, 'nextOffset');
      w.u8(m.installed ? 1 : 0);
      w.int(m.seq, 'seq');
      return;
    case 'TimeoutNow':
      return;
  }
}

/**
 * Encodes one message at w.offset (which advances). On a CodecError the writer is left where it
 * started, so the caller can skip the message and go on with the frame.
 */
export function writeMessage(w: Writer, m: Message): void {
  const start = w.offset;
  try {
    const tag = TAGS[m.type];
    if (tag === undefined) throw new CodecError(`cannot encode message type ${String((m as Message).type)}`);
    w.offset += 4;
    w.u8(tag);
    w.str(m.from, 'from');
    w.str(m.to, 'to');
    w.int(m.term, 'term');
    writeBody(w, m);
    w.buf.writeUInt32LE(w.offset - start - 4, start);
  } catch (err) {
    w.offset = start;
    throw err;
  }
}

function readFlags(r: Reader, allowed: number): number {
  const f = r.u8('flags');
  if ((f & ~allowed) !== 0) throw new CodecError(`bad flags 0x${f.toString(16)}`);
  return f;
}

/** Entries come last in an AppendRequest: their bytes are copied in one piece and the entries' data are views of it. */
function readEntries(r: Reader): Entry[] {
  const n = r.u32('entries count');
  // Every entry takes at least 21 bytes: a count larger than what remains is corrupt (and must not allocate).
  if (n * 21 > r.end - r.offset)
    throw new CodecError(`bad entries count ${n}: only ${r.end - r.offset} bytes left`);
  if (n === 0) return [];
  const copyStart = r.offset;
  const copy = new Uint8Array(r.end - copyStart);
  copy.set(r.buf.subarray(copyStart, r.end));
  const entries: Entry[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const index = r.int('entry.index');
    const term = r.int('entry.term');
    const type = r.u8('entry.type');
    if (!entryTypes.has(type)) throw new CodecError(`bad entry.type ${type}`);
    entries[i] = { index, term, type: type as EntryType, data: r.bytesIn('entry.data', copy, copyStart) };
  }
  return entries;
}

function readBody(r: Reader, tag: number, from: string, to: string, term: number): Message {
  switch (tag) {
    case TAGS.VoteRequest: {
      const f = readFlags(r, 3);
      return {
        type: 'VoteRequest',
        from,
        to,
        term,
        preVote: (f & 1) !== 0,
        transfer: (f & 2) !== 0,
        lastLogIndex: r.int('lastLogIndex'),
        lastLogTerm: r.int('lastLogTerm'),
      };
    }
    case TAGS.VoteResponse: {
      const f = readFlags(r, 3);
      return { type: 'VoteResponse', from, to, term, preVote: (f & 1) !== 0, granted: (f & 2) !== 0 };
    }
    case TAGS.AppendRequest: {
      const prevLogIndex = r.int('prevLogIndex');
      const prevLogTerm = r.int('prevLogTerm');
      const leaderCommit = r.int('leaderCommit');
      const seq = r.int('seq');
      return {
        type: 'AppendRequest',
        from,
        to,
        term,
        prevLogIndex,
        prevLogTerm,
        leaderCommit,
        seq,
        entries: readEntries(r),
      };
    }
    case TAGS.AppendResponse: {
      const success = readFlags(r, 1) === 1;
      return {
        type: 'AppendResponse',
        from,
        to,
        term,
        success,
        matchIndex: r.int('matchIndex'),
        conflictTerm: r.int('conflictTerm'),
        conflictIndex: r.int('conflictIndex'),
        lastLogIndex: r.int('lastLogIndex'),
        seq: r.int('seq'),
      };
    }
    case TAGS.SnapshotRequest: {
      const meta: SnapshotMeta = {
        index: r.int('meta.index'),
        term: r.int('meta.term'),
        config: readConfig(r),
      };
      const offset = r.int('offset');
      const done = readFlags(r, 1) === 1;
      return {
        type: 'SnapshotRequest',
        from,
        to,
        term,
        meta,
        offset,
        done,
        seq: r.int('seq'),
        data: r.bytes('data'),
      };
    }
    case TAGS.SnapshotResponse: {
      const index = r.int('index');
      const nextOffset = r.int('nextOffset');
      const installed = readFlags(r, 1) === 1;
      return { type: 'SnapshotResponse', from, to, term, index, nextOffset, installed, seq: r.int('seq') };
    }
    case TAGS.TimeoutNow:
      return { type: 'TimeoutNow', from, to, term };
    default:
      throw new CodecError(`unknown message tag ${tag}`);
  }
}

/** Decodes one message at r.offset (which advances past it). Throws CodecError on any malformed byte. */
export function readMessage(r: Reader): Message {
  const len = r.u32('message length');
  const end = r.offset + len;
  if (end > r.end) throw new CodecError(`message length ${len} runs past the frame end`);
  const mr = new Reader(r.buf, r.offset, end);
  const tag = mr.u8('type tag');
  const from = mr.str('from');
  const to = mr.str('to');
  const term = mr.int('term');
  const m = readBody(mr, tag, from, to, term);
  if (mr.offset !== end) throw new CodecError(`${m.type} has ${end - mr.offset} trailing bytes`);
  r.offset = end;
  return m;
}

/** One message alone (for tests and tools); frames are built by frame.ts. */
export function encodeMessage(m: Message): Buffer {
  const w = new Writer(Buffer.allocUnsafe(messageBytesUpperBound(m)), 0);
  writeMessage(w, m);
  return w.buf.subarray(0, w.offset);
}

export function decodeMessage(buf: Buffer): Message {
  const r = new Reader(buf, 0, buf.length);
  const m = readMessage(r);
  if (r.offset !== buf.length) throw new CodecError(`${buf.length - r.offset} bytes after the message`);
  return m;
}
