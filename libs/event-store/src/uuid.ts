import { randomUUID } from 'node:crypto';

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export const UUID_BYTES = 16;

export function isUuid(s: unknown): s is string {
  return typeof s === 'string' && UUID_RE.test(s);
}

/** Writes the 16 bytes of a (validated) UUID string into `out` at `offset`. */
export function writeUuid(id: string, out: Uint8Array, offset: number): void {
  const hex = id.slice(0, 8) + id.slice(9, 13) + id.slice(14, 18) + id.slice(19, 23) + id.slice(24, 36);
  const n = Buffer.from(out.buffer, out.byteOffset, out.byteLength).write(hex, offset, UUID_BYTES, 'hex');
  if (n !== UUID_BYTES) throw new Error(`writeUuid: '${id}' is not a UUID`);
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
