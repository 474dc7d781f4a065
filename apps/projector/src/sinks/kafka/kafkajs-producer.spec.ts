import { chunksOf } from './kafkajs-producer';

const rec = (value: string) => ({ topic: 't', key: 'k', value, headers: { position: '1' } });

describe('chunksOf (produce requests below the broker message limit)', () => {
  it('keeps order and cuts runs at the byte bound', () => {
    const records = Array.from({ length: 10 }, (_, i) => rec(String(i).repeat(100)));
    const chunks = chunksOf(records, 500);
    expect(chunks.flat()).toEqual(records);
    expect(chunks.length).toBeGreaterThan(2);
    for (const c of chunks) expect(c.length).toBeGreaterThan(0);
    for (const c of chunks.slice(0, -1))
      expect(c.reduce((s, r) => s + Buffer.byteLength(r.value), 0)).toBeLessThanOrEqual(500);
  });

  it('counts bytes, not characters, and gives an oversized record a run of its own', () => {
    const wide = rec('é'.repeat(300)); // 600 bytes
    const chunks = chunksOf([rec('a'), wide, rec('b')], 400);
    expect(chunks.map((c) => c.map((r) => r.value[0]))).toEqual([['a'], ['é'], ['b']]);
  });

  it('is one run when everything fits', () => {
    expect(chunksOf([rec('a'), rec('b')], 10_000)).toHaveLength(1);
    expect(chunksOf([], 10)).toEqual([]);
  });
});
