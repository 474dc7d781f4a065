import { randomUUID } from 'node:crypto';

export const UUID_BYTES = 16;

/** Value of an ASCII hex digit, -1 for anything else (indexed by char code < 128). */
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let c = 0; c < 10; c++) HEX_VALUE[48 + c] = c;
for (let c = 0; c < 6; c++) HEX_VALUE[97 + c] = HEX_VALUE[65 + c] = 10 + c;

function hexValue(s: string, i: number): number {
  const c = s.charCodeAt(i);
  return c < 128 ? HEX_VALUE[c] : -1;
}

/** 8-4-4-4-12 hex digits (either case) with dashes: the dash positions. */
function isDashAt(i: number): boolean {
  return i === 8 || i === 13 || i === 18 || i === 23;
}

// Hand-rolled rather than a regular expression: checked and converted for every event of every append.
export function isUuid(s: unknown): s is string {
  if (typeof s !== 'string' || s.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    if (isDashAt(i)) {
      if (s.charCodeAt(i) !== 45) return false;
    } else if (hexValue(s, i) < 0) return false;
  }
  return true;
}

/** Writes the 16 bytes of a UUID string into `out` at `offset`; throws if it is not a UUID. */
export function writeUuid(id: string, out: Uint8Array, offset: number): void {
  if (id.length !== 36) throw new Error(`writeUuid: '${id}' is not a UUID`);
  let o = offset;
  for (let i = 0; i < 36;) {
    if (isDashAt(i)) {
      if (id.charCodeAt(i) !== 45) throw new Error(`writeUuid: '${id}' is not a UUID`);
      i++;
      continue;
    }
    const hi = hexValue(id, i);
    const lo = hexValue(id, i + 1);
    if (hi < 0 || lo < 0 || isDashAt(i + 1)) throw new Error(`writeUuid: '${id}' is not a UUID`);
    out[o++] = (hi << 4) | lo;
    i += 2;
  }
}

const HEX = '0123456789abcdef';
const BYTE_HEX: string[] = Array.from({ length: 256 }, (_, b) => HEX[b >> 4] + HEX[b & 15]);

/** Lower-case canonical text form of 16 bytes at `offset`. */
export function readUuid(bytes: Uint8Array, offset: number): string {
  const h = (k: number) => BYTE_HEX[bytes[offset + k]];
  return (
    h(0) +
    h(1) +
    h(2) +
    h(3) +
    '-' +
    h(4) +
    h(5) +
    '-' +
    h(6) +
    h(7) +
    '-' +
    h(8) +
    h(9) +
    '-' +
    h(10) +
    h(11) +
    h(12) +
    h(13) +
    h(14) +
    h(15)
  );
}

/** A random (v4) UUID, the default `newId` for prepareAppend. */
export function newEventId(): string {
  return randomUUID();
}
