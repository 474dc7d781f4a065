import { Entry, EntryType } from '../core/types';
import { crc32cRange } from './crc';
import { entryBytesMax } from './limits';

/**
 * One log record, little endian:
 *   0  u32 payload length
 *   4  u32 CRC-32C over bytes [8, 25 + length): index, term, type, payload
 *   8  u32+u32 index (low, high)
 *  16  u32+u32 term (low, high)
 *  24  u8  entry type
 *  25  payload
 * A header of 25 zero bytes is never a record (index ≥ 1): it marks the end of the written part of a
 * preallocated segment.
 */
export const recordHeaderBytes = 25;
const two32 = 0x1_0000_0000;

function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

function getU32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

/** Encodes `entry` at `b[o]`; the caller made room for recordHeaderBytes + entry.data.length. Returns the record's end. */
export function encodeRecord(b: Uint8Array, o: number, entry: Entry): number {
  const len = entry.data.length;
  const index = entry.index;
  const term = entry.term;
  putU32(b, o, len);
  putU32(b, o + 8, index % two32);
  putU32(b, o + 12, Math.floor(index / two32));
  putU32(b, o + 16, term % two32);
  putU32(b, o + 20, Math.floor(term / two32));
  b[o + 24] = entry.type;
  b.set(entry.data, o + recordHeaderBytes);
  const end = o + recordHeaderBytes + len;
  putU32(b, o + 4, crc32cRange(b, o + 8, end));
  return end;
}

export function recordPayloadLength(b: Uint8Array, o: number): number {
  return getU32(b, o);
}

export function recordIndex(b: Uint8Array, o: number): number {
  return getU32(b, o + 8) + getU32(b, o + 12) * two32;
}

export function recordTerm(b: Uint8Array, o: number): number {
  return getU32(b, o + 16) + getU32(b, o + 20) * two32;
}

export function recordType(b: Uint8Array, o: number): number {
  return b[o + 24];
}

export function isZeroHeader(b: Uint8Array, o: number): boolean {
  for (let i = 0; i < recordHeaderBytes; i++) if (b[o + i] !== 0) return false;
  return true;
}

export type RecordCheck = 'ok' | 'bad-length' | 'bad-crc' | 'bad-type';

/** Checks the record at `b[o]`; the valid bytes of `b` end at `limit`. */
export function checkRecord(b: Uint8Array, o: number, limit = b.length): RecordCheck {
  const len = getU32(b, o);
  if (len > entryBytesMax || o + recordHeaderBytes + len > limit) return 'bad-length';
  if (crc32cRange(b, o + 8, o + recordHeaderBytes + len) !== getU32(b, o + 4)) return 'bad-crc';
  if (b[o + 24] > EntryType.Config) return 'bad-type';
  return 'ok';
}

/** Decodes a checked record; the payload is copied so the entry does not pin the read buffer. */
export function decodeRecord(b: Uint8Array, o: number): Entry {
  const len = getU32(b, o);
  const start = o + recordHeaderBytes;
  return {
    index: recordIndex(b, o),
    term: recordTerm(b, o),
    type: b[o + 24] as EntryType,
    data: Uint8Array.prototype.slice.call(b, start, start + len),
  };
}
