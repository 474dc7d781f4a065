import { StreamIndex } from './stream-index';

/** Positions per stream as plain arrays, for comparing indexes. */
function dump(index: StreamIndex, ids: string[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const id of ids) {
    const s = index.get(id);
    if (s) out[id] = Array.from(s.positions.subarray(0, s.count));
  }
  return out;
}

describe('StreamIndex', () => {
  it('encodes and decodes every stream with its positions', () => {
    const index = new StreamIndex();
    const ids: string[] = [];
    for (let p = 0; p < 5000; p++) {
      const id = `s-${(p * 7919) % 97}`;
      if (!ids.includes(id)) ids.push(id);
      index.append(id, p);
    }
    const copy = StreamIndex.decode(index.encode());
    expect(copy.size()).toBe(index.size());
    expect(dump(copy, ids)).toEqual(dump(index, ids));
  });

  it('encodeAt(P) yields the index as it was at position P although appends go on between its chunks', async () => {
    const index = new StreamIndex();
    const ids: string[] = [];
    let next = 0;
    const appendOne = () => {
      // Streams come and go in a pattern that also creates new streams after the cut.
      const id = `s-${(next * 7919) % (next < 3000 ? 60 : 90)}`;
      if (!ids.includes(id)) ids.push(id);
      index.append(id, next++);
    };
    for (let i = 0; i < 3000; i++) appendOne();
    const cutAt = next - 1;
    const expected = dump(index, ids);

    let appending = true;
    const appender = (async () => {
      while (appending && next < 200_000) {
        for (let i = 0; i < 500; i++) appendOne(); // grows arrays (new buffers) and adds streams
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    })();
    const chunks = await index.encodeAt(cutAt, 256); // tiny chunks: many yields
    appending = false;
    await appender;

    expect(next).toBeGreaterThan(3000 + 500); // appends really happened during the encoding
    expect(chunks.length).toBeGreaterThan(3);
    const decoded = StreamIndex.decode(Buffer.concat(chunks));
    expect(decoded.size()).toBe(Object.keys(expected).length);
    expect(dump(decoded, ids)).toEqual(expected);
  });
});
