import { crc32c } from '@node-rs/crc32';
import { crcJsBytesMax } from './limits';

// CRC-32C (Castagnoli), slicing-by-8. For small records a JS loop beats the native call plus a subarray.
const table = buildTable();

function buildTable(): Int32Array {
  const t = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let k = 1; k < 8; k++) {
      c = t[c & 255] ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
}

function crcJs(b: Uint8Array, start: number, end: number): number {
  const t = table;
  let c = ~0;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    c ^= b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
    c =
      t[1792 + (c & 255)] ^
      t[1536 + ((c >>> 8) & 255)] ^
      t[1280 + ((c >>> 16) & 255)] ^
      t[1024 + (c >>> 24)] ^
      t[768 + b[i + 4]] ^
      t[512 + b[i + 5]] ^
      t[256 + b[i + 6]] ^
      t[b[i + 7]];
  }
  for (; i < end; i++) c = t[(c ^ b[i]) & 255] ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32C of `b[start, end)`. */
export function crc32cRange(b: Uint8Array, start: number, end: number): number {
  if (end - start <= crcJsBytesMax) return crcJs(b, start, end);
  return crc32c(b.subarray(start, end)) >>> 0;
}

/** Continues a running CRC-32C (start with 0). */
export function crc32cUpdate(running: number, b: Uint8Array): number {
  return crc32c(b, running) >>> 0;
}
