import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Prng } from '@app/consensus/testing';
import { BloomFilter } from './bloom';
import { DiskStreamIndex, DiskStreamIndexOptions } from './disk-stream-index';

/** The index as a plain map, to compare against. */
class Model {
  readonly streams = new Map<string, number[]>();
  append(id: string, position: number): number {
    let s = this.streams.get(id);
    if (s === undefined) this.streams.set(id, (s = []));
    s.push(position);
    return s.length - 1;
  }
  lastRevision(id: string): number {
    return (this.streams.get(id)?.length ?? 0) - 1;
  }
}

const small: Partial<DiskStreamIndexOptions> = {
  memtableEntriesMax: 50,
  blockCacheBytes: 64 * 1024,
  runsPerMerge: 4,
};

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stream-index-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Appends `n` events to streams drawn from `streams` ids (some new, most existing), checking each answer. */
function fill(
  index: DiskStreamIndex,
  model: Model,
  prng: Prng,
  n: number,
  streams: number,
  from: number,
): number {
  let position = from;
  for (let i = 0; i < n; i++) {
    const id = `s-${prng.int(0, streams - 1)}`;
    expect(index.lastRevision(id)).toBe(model.lastRevision(id));
    position += prng.int(1, 3);
    expect(index.append(id, position)).toBe(model.append(id, position));
  }
  return position;
}

function expectSame(index: DiskStreamIndex, model: Model, prng: Prng): void {
  for (const [id, positions] of model.streams) {
    expect(index.lastRevision(id)).toBe(positions.length - 1);
    expect(index.positions(id, 0, 1e9)).toEqual(positions);
    const lo = prng.int(0, positions.length - 1);
    const hi = prng.int(lo, positions.length + 2);
    expect(index.positions(id, lo, hi)).toEqual(positions.slice(lo, hi + 1));
  }
  expect(index.lastRevision('never-written')).toBe(-1);
  expect(index.positions('never-written', 0, 10)).toEqual([]);
  expect(index.size()).toBe(model.streams.size);
}

describe('DiskStreamIndex', () => {
  it.each([
    ['on the merge thread', true],
    ['on the event loop', false],
  ])(
    'answers like a map across the live table, frozen tables, runs and merges (merges %s)',
    async (_, thread) => {
      const index = DiskStreamIndex.open(dir, { ...small, mergeThread: thread });
      const model = new Model();
      const prng = new Prng(1);
      let position = -1;
      for (let round = 0; round < 6; round++) {
        position = fill(index, model, prng, 400, 300, position);
        expectSame(index, model, prng);
        await index.flush();
        expectSame(index, model, prng);
      }
      await index.whenIdle();
      expectSame(index, model, prng);
      const s = index.stats();
      // 2,400 entries in tables of 50 make 48 runs; tiered merges (4 of similar size) keep about log4 of that.
      expect(s.runs).toBeLessThanOrEqual(8);
      expect(s.tableEntries).toBe(0);
      expect(s.cacheBytes).toBeLessThanOrEqual(64 * 1024);
      expect(s.cacheHits + s.cacheMisses).toBeGreaterThan(0);
      await index.close();
    },
    60_000,
  );

  it('runs written at cuts (a few entries each) do not wall tiers off: the run count stays logarithmic', async () => {
    const index = DiskStreamIndex.open(dir, small);
    const model = new Model();
    const prng = new Prng(5);
    let position = -1;
    for (let cut = 0; cut < 40; cut++) {
      // 101 entries: two full tables, then a run of one entry when the cut flushes.
      position = fill(index, model, prng, 101, 2000, position);
      await index.flush();
    }
    await index.whenIdle();
    // 80 full tables and 40 one-entry runs: tiers of 4 hold about 3 per level (4,040 entries: ~4 levels).
    expect(index.stats().runs).toBeLessThanOrEqual(12);
    expectSame(index, model, prng);
    await index.close();
  }, 60_000);

  it('reopens from its runs; after a crash the caller re-appends what came after durableThrough', async () => {
    const model = new Model();
    const prng = new Prng(2);
    const events: [string, number][] = [];
    const first = DiskStreamIndex.open(dir, small);
    let position = -1;
    for (let i = 0; i < 1000; i++) {
      const id = `s-${prng.int(0, 199)}`;
      position += 1;
      events.push([id, position]);
      first.append(id, position);
      model.append(id, position);
    }
    await first.flush();
    // More events that reach the live table but not a run: a crash loses them.
    for (let i = 0; i < 30; i++) {
      const id = `s-${prng.int(0, 260)}`;
      position += 1;
      events.push([id, position]);
      first.append(id, position);
      model.append(id, position);
    }
    expect(first.durableThrough).toBeLessThan(position);
    await first.close(); // no flush: what a crash leaves on disk

    const again = DiskStreamIndex.open(dir, small);
    expect(again.indexedThrough).toBe(again.durableThrough);
    for (const [id, p] of events) if (p > again.indexedThrough) again.append(id, p);
    expectSame(again, model, prng);
    await again.close();
  });

  it('removes what an interrupted run write or merge left behind, and reopens consistent', async () => {
    const model = new Model();
    const prng = new Prng(3);
    const index = DiskStreamIndex.open(dir, small);
    fill(index, model, prng, 300, 100, -1);
    await index.flush();
    await index.close();
    // A run written but not named by the manifest, and a half-written temporary file.
    fs.writeFileSync(path.join(dir, '9999999999.run'), Buffer.alloc(100, 7));
    fs.writeFileSync(path.join(dir, '9999999998.run.tmp'), Buffer.alloc(10, 1));
    const again = DiskStreamIndex.open(dir, small);
    expect(fs.existsSync(path.join(dir, '9999999999.run'))).toBe(false);
    expect(fs.existsSync(path.join(dir, '9999999998.run.tmp'))).toBe(false);
    expectSame(again, model, prng);
    await again.close();
  });

  it('refuses a damaged run with an error naming the file', async () => {
    const index = DiskStreamIndex.open(dir, { ...small, memtableEntriesMax: 1000 });
    const model = new Model();
    fill(index, model, new Prng(4), 500, 50, -1);
    await index.flush();
    await index.close();
    const run = fs.readdirSync(dir).find((n) => n.endsWith('.run'))!;
    const file = path.join(dir, run);
    const bytes = fs.readFileSync(file);
    bytes[10] ^= 0xff; // inside the first block
    fs.writeFileSync(file, bytes);
    const damaged = DiskStreamIndex.open(dir, small);
    expect(() => damaged.positions('s-1', 0, 100)).toThrow(
      new RegExp(`run ${file} is damaged \\(CRC of block 0`),
    );
    await damaged.close();
    bytes[bytes.length - 5] ^= 0xff; // the footer
    fs.writeFileSync(file, bytes);
    expect(() => DiskStreamIndex.open(dir, small)).toThrow(/is damaged \(footer CRC\)/);
  });

  it('refuses positions that do not grow', () => {
    const index = DiskStreamIndex.open(dir, small);
    index.append('a', 5);
    expect(() => index.append('b', 5)).toThrow(/position 5 does not follow 5/);
  });
});

describe('BloomFilter', () => {
  it('never forgets a key and reports about 1% of absent keys at 10 bits per key', () => {
    const bloom = BloomFilter.forCount(10_000);
    for (let i = 0; i < 10_000; i++) bloom.add(`order-${i}`);
    for (let i = 0; i < 10_000; i++) expect(bloom.mayContain(`order-${i}`)).toBe(true);
    let falsePositives = 0;
    for (let i = 0; i < 100_000; i++) if (bloom.mayContain(`cart-${i}`)) falsePositives++;
    expect(falsePositives / 100_000).toBeLessThan(0.02);
  });
});
