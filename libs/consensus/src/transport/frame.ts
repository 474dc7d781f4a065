/**
 * Frames on a peer connection: u32 LE length of the rest, u8 kind, payload.
 * A MESSAGES frame carries u32 count and that many encoded messages (codec.ts): everything one lane
 * had to send in one tick goes out as one frame (up to frameCoalesceBytesMax).
 */
import { Message } from '../core/messages';
import { CodecError, Reader, Writer, messageBytesUpperBound, readMessage, writeMessage } from './codec';

export enum FrameKind {
  /** server → client: magic, version, nonce. */
  Hello = 1,
  /** client → server: its node id, the id it wants to reach, lane, its nonce, its advertised address, the MAC. */
  Auth = 2,
  /** server → client: its node id and its MAC over the client's nonce. */
  Accept = 3,
  /** either way: a reason, then the connection closes. */
  Refuse = 4,
  Messages = 5,
}

export const frameHeaderBytes = 5;

export interface Frame {
  kind: FrameKind;
  /** A view into the received bytes; valid only until the next push. */
  payload: Buffer;
}

/** A frame with a handshake payload built by `build`, sized at most `payloadBytesMax`. */
export function encodeFrame(kind: FrameKind, payloadBytesMax: number, build: (w: Writer) => void): Buffer {
  const w = new Writer(Buffer.allocUnsafe(frameHeaderBytes + payloadBytesMax), frameHeaderBytes);
  build(w);
  w.buf.writeUInt32LE(w.offset - 4, 0);
  w.buf[4] = kind;
  return w.buf.subarray(0, w.offset);
}

export interface EncodedMessages {
  frame: Buffer;
  /** Messages in the frame. */
  encoded: number;
  /** Messages that could not be encoded (left out of the frame). */
  failed: { message: Message; error: Error }[];
}

/** One MESSAGES frame; `boundBytes` is the sum of messageBytesUpperBound over `messages`. */
export function encodeMessagesFrame(messages: readonly Message[], boundBytes: number): EncodedMessages {
  const w = new Writer(Buffer.allocUnsafe(frameHeaderBytes + 4 + boundBytes), frameHeaderBytes + 4);
  const failed: EncodedMessages['failed'] = [];
  for (const m of messages) {
    try {
      writeMessage(w, m);
    } catch (err) {
      if (!(err instanceof CodecError)) throw err;
      failed.push({ message: m, error: err });
    }
  }
  const encoded = messages.length - failed.length;
  w.buf.writeUInt32LE(w.offset - 4, 0);
  w.buf[4] = FrameKind.Messages;
  w.buf.writeUInt32LE(encoded, frameHeaderBytes);
  return { frame: w.buf.subarray(0, w.offset), encoded, failed };
}

export function messagesFrameBound(messages: readonly Message[]): number {
  let n = 0;
  for (const m of messages) n += messageBytesUpperBound(m);
  return n;
}

export function decodeMessagesPayload(payload: Buffer): Message[] {
  const r = new Reader(payload, 0, payload.length);
  const count = r.u32('message count');
  // The smallest message takes more than 16 bytes: a larger count is corrupt and must not allocate.
  if (count * 16 > payload.length)
    throw new CodecError(`bad message count ${count} for a ${payload.length}-byte frame`);
  const out: Message[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = readMessage(r);
  if (r.offset !== payload.length)
    throw new CodecError(`${payload.length - r.offset} bytes after ${count} messages`);
  return out;
}

/**
 * Splits a byte stream into frames. Buffers at most one frame (≤ frameBytesMax + header); a length
 * over the limit is a CodecError before anything of that frame is buffered.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(public frameBytesMax: number) {}

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    while (this.buffered >= 4) {
      const head = this.contiguous(4);
      const len = head.readUInt32LE(0);
      if (len < 1 || len > this.frameBytesMax) {
        throw new CodecError(`frame length ${len} outside [1, ${this.frameBytesMax}]`);
      }
      if (this.buffered < 4 + len) break;
      const frame = this.take(4 + len);
      const kind = frame[4];
      if (!(kind in FrameKind)) throw new CodecError(`unknown frame kind ${kind}`);
      frames.push({ kind: kind as FrameKind, payload: frame.subarray(frameHeaderBytes) });
    }
    return frames;
  }

  /** The first chunk, merged with the next ones until it holds at least n bytes. */
  private contiguous(n: number): Buffer {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0];
  }

  private take(n: number): Buffer {
    const first = this.contiguous(n);
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}
