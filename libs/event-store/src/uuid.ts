import { randomUUID } from 'node:crypto';

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export const UUID_BYTES = 16;

export function isUuid(s: unknown): s is string {
  return typeof s === 'string' && UUID_RE.test(s);
}

/** Writes the 16 bytes of a (validated) UUID string into `out` at `offset`. */
export function writeUuid(id: string, out: Uint8Array, offset: number): void {
  let j = offset;
  for (let i = 0; i < 36; i++) {
    if (i === 8 || i === 13 || i === 18 || i === 23) continue;
    out[j++] = (hexValue(id.charCodeAt(i)) << 4) | hexValue(id.charCodeAt(++i));
  }
}

const HEX = '0123456789abcdef';
const BYTE_HEX: string[] = Array.from({ length: 256 }, (_, b) => HEX[b >> 4] + HEX[b & 15]);

/** Lower-case canonical text form of 16 bytes at `offset`. */
export function readUuid(bytes: Uint8Array, offset: number): string {
  const h = (k: number) => BYTE_HEX[bytes[offset + k]];
  return (
    h(0) + h(1) + h(2) + h(3) + '-' + h(4) + h(5) + '-' + h(6) + h(7) + '-' + h(8) + h(9) + '-' +
    h(10) + h(11) + h(12) + h(13) + h(14) + h(15)
  );
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  throw new Error(`uuid: invalid hex character code ${c}`);
}

/** A random (v4) UUID, the default `newId` for prepareAppend. */
export function newEventId(): string {
  return randomUUID();
}
