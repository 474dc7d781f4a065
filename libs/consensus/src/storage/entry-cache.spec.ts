import { EntryType } from '../core/types';
import { EntryCache } from './entry-cache';

const e = (index: number, bytes: number) => ({
  index,
  term: 1,
  type: EntryType.Normal,
  data: new Uint8Array(bytes),
});

describe('EntryCache', () => {
  test('keeps at most its count of the newest entries', () => {
    const c = new EntryCache(4, 1 << 20);
    for (let i = 1; i <= 10; i++) c.put(e(i, 10));
    expect([6, 7, 8, 9, 10].map((i) => c.get(i)?.index)).toEqual([undefined, 7, 8, 9, 10]);
  });

  test('evicts the oldest entries to stay within its byte budget', () => {
    const c = new EntryCache(64, 1000);
    for (let i = 1; i <= 10; i++) c.put(e(i, 200));
    const cached = Array.from({ length: 10 }, (_, k) => k + 1).filter((i) => c.get(i) !== undefined);
    expect(cached).toEqual([6, 7, 8, 9, 10]);
  });

  test('does not cache an entry larger than a quarter of the budget', () => {
    const c = new EntryCache(64, 1000);
    c.put(e(1, 251));
    expect(c.get(1)).toBeUndefined();
  });

  test('dropped and cleared entries are gone; a re-put index replaces the old entry', () => {
    const c = new EntryCache(16, 1 << 20);
    for (let i = 1; i <= 8; i++) c.put(e(i, 10));
    c.drop(5, 8);
    expect(c.get(5)).toBeUndefined();
    expect(c.get(4)?.index).toBe(4);
    const replacement = { ...e(5, 3), term: 2 };
    c.put(replacement);
    expect(c.get(5)).toBe(replacement);
    c.clear();
    expect(c.get(4)).toBeUndefined();
  });
});
