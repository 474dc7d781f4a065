import { randomUUID } from 'node:crypto';
import { isUuid, readUuid, UUID_BYTES, writeUuid } from './uuid';

describe('uuid', () => {
  it('accepts exactly 8-4-4-4-12 hex digits with dashes, in either case', () => {
    const good = [
      '00000000-0000-4000-8000-000000000000',
      'ABCDEF01-2345-6789-abcd-ef0123456789',
      randomUUID(),
    ];
    for (const s of good) expect(isUuid(s)).toBe(true);
    const bad = [
      '',
      '00000000-0000-4000-8000-00000000000', // 35
      '00000000-0000-4000-8000-0000000000000', // 37
      '00000000_0000-4000-8000-000000000000',
      '0000000g-0000-4000-8000-000000000000',
      '00000000-0000-4000-8000-00000000000\u0660', // a non-ASCII digit
      '000000000-000-4000-8000-000000000000', // dash moved
      '{0000000-0000-4000-8000-000000000000}',
    ];
    for (const s of bad) expect(isUuid(s)).toBe(false);
    expect(isUuid(42)).toBe(false);
    expect(isUuid(undefined)).toBe(false);
  });

  it('writes the 16 bytes and reads back the lower-case form', () => {
    for (let k = 0; k < 200; k++) {
      const id = k % 2 ? randomUUID() : randomUUID().toUpperCase();
      const out = Buffer.alloc(UUID_BYTES + 3);
      writeUuid(id, out, 3);
      expect(out.subarray(3).toString('hex')).toBe(id.replace(/-/g, '').toLowerCase());
      expect(readUuid(out, 3)).toBe(id.toLowerCase());
    }
  });

  it('refuses to write what is not a UUID', () => {
    const out = Buffer.alloc(UUID_BYTES);
    expect(() => writeUuid('00000000-0000-4000-8000-00000000000x', out, 0)).toThrow(/not a UUID/);
    expect(() => writeUuid('000000000-000-4000-8000-000000000000', out, 0)).toThrow(/not a UUID/);
    expect(() => writeUuid('short', out, 0)).toThrow(/not a UUID/);
  });
});
