import { BloomFilter } from './bloom';

function keys(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${(i * 2654435761) % 1000003}-${i}`);
}

describe('BloomFilter', () => {
  for (const blocked of [true, false]) {
    const kind = blocked ? 'blocked' : 'classic';
    const make = (n: number) =>
      blocked ? BloomFilter.forCount(n) : new BloomFilter(new Uint8Array(Math.ceil((n * 10) / 8)), 7, false);

    it(`${kind}: every added key is maybe present; about 1% of absent keys are`, () => {
      const present = keys('order', 50_000);
      const f = make(present.length);
      for (const k of present) f.add(k);
      for (const k of present) expect(f.mayContain(k)).toBe(true);
      const absent = keys('cart', 100_000);
      const fp = absent.filter((k) => f.mayContain(k)).length / absent.length;
      expect(fp).toBeLessThan(0.02);
      expect(fp).toBeGreaterThan(0.001);
    });

    it(`${kind}: survives being stored and read back (the stored probe field says the kind)`, () => {
      const f = make(1000);
      const present = keys('order', 1000);
      for (const k of present) f.add(k);
      const back = BloomFilter.fromStored(new Uint8Array(f.bits), f.storedProbes);
      expect(back.blocked).toBe(blocked);
      expect(back.probes).toBe(7);
      for (const k of present) expect(back.mayContain(k)).toBe(true);
      for (const k of keys('cart', 1000)) expect(back.mayContain(k)).toBe(f.mayContain(k));
    });
  }

  it('a blocked filter sets every probe of a key within one 64-byte block', () => {
    const f = BloomFilter.forCount(10_000);
    f.add('order-1');
    const touched = new Set<number>();
    f.bits.forEach((b, i) => {
      if (b !== 0) touched.add(Math.floor(i / 64));
    });
    expect(touched.size).toBe(1);
  });
});
