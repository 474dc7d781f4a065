import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * A torn write at the end of a killed node's Raft log: what a crash in the middle of writing a record
 * leaves. The format is libs/consensus/src/storage/record.ts's (little endian: u32 payload length, u32
 * CRC-32C, u64 index, u64 term, u8 type, payload) in preallocated, zero-filled segment files
 * `<20-digit first index>.seg` (segment.ts); recovery (segment-recovery.ts) scans the last segment and
 * zeroes a damaged tail as long as no valid record follows it.
 *
 * Only bytes after the last valid record are written, in the zero-filled part of the last segment:
 * nothing the node wrote (let alone fsynced and acknowledged) is touched. Raft cannot survive losing
 * acknowledged entries on a node, and that would not be a product bug; a torn unsynced record is.
 */

export interface TearResult {
  segment: string | null;
  /** Offset of the torn record (the end of the last valid one). */
  offset: number;
  bytes: number;
  /** The index the torn record claims (the next one after the log's last). */
  index: number;
  how: string;
}

const headerBytes = 25;
const entryBytesMax = 64 * 1024 * 1024;

/** Deterministic bytes from a seed (xorshift32). */
function garbage(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff || 0x5a;
  }
  return b;
}

/**
 * Finds the end of the valid records of the last segment in `logDir` by walking the length fields (the
 * node was killed, so nothing is appending) and writes a torn record there, in one of three shapes chosen
 * by `seed`: a partial header, a full header whose payload is cut short, or a complete record whose
 * checksum does not match (a torn sector in its middle).
 */
export function tearLogTail(logDir: string, seed: number): TearResult {
  const segs = fs.existsSync(logDir) ? fs.readdirSync(logDir).filter((n) => /^\d{20}\.seg$/.test(n)) : [];
  if (segs.length === 0) return { segment: null, offset: 0, bytes: 0, index: 0, how: 'no segment file' };
  segs.sort();
  const file = path.join(logDir, segs[segs.length - 1]);
  const data = fs.readFileSync(file);
  let pos = 0;
  let nextIndex = Number(segs[segs.length - 1].slice(0, 20));
  let lastTerm = 1;
  for (let i = 0; i < 10_000_000; i++) {
    if (pos + headerBytes > data.length) break;
    let zero = true;
    for (let k = 0; k < headerBytes; k++) if (data[pos + k] !== 0) zero = false;
    if (zero) break;
    const len = data.readUInt32LE(pos);
    const index = data.readUInt32LE(pos + 8) + data.readUInt32LE(pos + 12) * 2 ** 32;
    if (len > entryBytesMax || pos + headerBytes + len > data.length || index !== nextIndex) break;
    lastTerm = data.readUInt32LE(pos + 16) + data.readUInt32LE(pos + 20) * 2 ** 32;
    nextIndex = index + 1;
    pos += headerBytes + len;
  }
  const shape = Math.abs(seed) % 3;
  const payloadLen = 64 + (Math.abs(seed) % 400);
  const record = garbage(seed, headerBytes + payloadLen);
  record.writeUInt32LE(payloadLen, 0);
  record.writeUInt32LE(nextIndex % 2 ** 32, 8);
  record.writeUInt32LE(Math.floor(nextIndex / 2 ** 32), 12);
  record.writeUInt32LE(lastTerm % 2 ** 32, 16);
  record.writeUInt32LE(Math.floor(lastTerm / 2 ** 32), 20);
  record[24] = 0;
  // The checksum field stays garbage: it cannot match, so the record never reads as valid.
  let bytes: number;
  let how: string;
  if (shape === 0) {
    bytes = 5 + (Math.abs(seed) % 15);
    how = `partial header (${bytes} of ${headerBytes} bytes)`;
  } else if (shape === 1) {
    bytes = headerBytes + Math.floor(payloadLen / 2);
    how = `header and half of a ${payloadLen}-byte payload, the rest never written`;
  } else {
    bytes = record.length;
    how = `complete ${payloadLen}-byte record with a checksum that does not match`;
  }
  if (shape === 1) record.fill(0, bytes);
  bytes = Math.min(bytes, data.length - pos);
  if (bytes <= 0)
    return { segment: file, offset: pos, bytes: 0, index: nextIndex, how: 'segment full: nothing torn' };
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, record, 0, bytes, pos);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return { segment: file, offset: pos, bytes, index: nextIndex, how };
}
