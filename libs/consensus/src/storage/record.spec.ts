import { crc32c } from '@node-rs/crc32';
import { EntryType } from '../core/types';
import { crc32cRange } from './crc';
import { checkRecord, decodeRecord, encodeRecord, isZeroHeader, recordHeaderBytes } from './record';
import { Segment } from './segment';

describe('record framing', () => {
  test('the JS CRC-32C agrees with @node-rs/crc32 for every length up to 2 KiB and at any offset', () => {
    const b = Buffer.alloc(4096);
    for (let k = 0; k < b.length; k++) b[k] = (k * 7919 + 13) & 255;
    for (let len = 0; len <= 2048; len += 1 + (len >> 4)) {
      for (const start of [0, 1, 3, 7]) {
        expect(crc32cRange(b, start, start + len)).toBe(crc32c(b.subarray(start, start + len)) >>> 0);
      }
    }
  });

  test('a record round-trips index, term, type and payload, including indexes past 2^32', () => {
    const b = Buffer.alloc(1000);
    const e = { index: 2 ** 40 + 5, term: 2 ** 33 + 1, type: EntryType.Config, data: Buffer.from('hello') };
    const end = encodeRecord(b, 10, e);
    expect(end).toBe(10 + recordHeaderBytes + 5);
    expect(checkRecord(b, 10)).toBe('ok');
    const d = decodeRecord(b, 10);
    expect([d.index, d.term, d.type, Buffer.from(d.data).toString()]).toEqual([
      e.index,
      e.term,
      e.type,
      'hello',
    ]);
    b.fill(0, 10 + recordHeaderBytes, end); // the decoded payload is a copy
    expect(Buffer.from(d.data).toString()).toBe('hello');
    expect(isZeroHeader(b, 10)).toBe(false);
    expect(isZeroHeader(b, end)).toBe(true);
  });

  test('any flipped bit in a record fails its check', () => {
    const b = Buffer.alloc(100);
    const end = encodeRecord(b, 0, {
      index: 7,
      term: 3,
      type: EntryType.Normal,
      data: Buffer.from('payload!'),
    });
    for (let byte = 0; byte < end; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        b[byte] ^= 1 << bit;
        expect(checkRecord(b, 0, end)).not.toBe('ok');
        b[byte] ^= 1 << bit;
      }
    }
    expect(checkRecord(b, 0, end)).toBe('ok');
  });

  test('a sidecar index round-trips and any damage to it is detected', () => {
    const s = new Segment(101, '/x/seg', 4);
    for (let k = 1; k <= 50; k++) s.push(k * 40, k < 20 ? 2 : 5, k === 30);
    const side = s.encodeSidecar(0xdeadbeef);
    const back = Segment.decodeSidecar(side, 101, '/x/seg');
    if (typeof back === 'string') throw new Error(back);
    expect(back.count).toBe(50);
    expect(Array.from(back.offsets)).toEqual(Array.from(s.offsets.subarray(0, 51)));
    expect(back.termAt(101)).toBe(2);
    expect(back.termAt(119)).toBe(2);
    expect(back.termAt(120)).toBe(5);
    expect(back.configs).toEqual([130]);
    expect(back.lastCrc).toBe(0xdeadbeef);
    expect(Segment.decodeSidecar(side, 102, '/x/seg')).toMatch(/another segment/);
    side[40] ^= 1;
    expect(Segment.decodeSidecar(side, 101, '/x/seg')).toMatch(/checksum/);
  });
});
