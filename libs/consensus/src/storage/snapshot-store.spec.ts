import * as fs from 'fs';
import * as path from 'path';
import { SnapshotChunk } from '../core/ready';
import { ConfigState, SnapshotMeta } from '../core/types';
import { DurableStorage, DurableStorageOptions } from './durable-storage';
import {
  CapturingLogger,
  chunksOf,
  collect,
  entries,
  expectEntry,
  removeDir,
  tempDir,
} from './testing/fixtures';

jest.setTimeout(60_000);

const config = (voters: string[]): ConfigState => ({ voters, outgoing: [], learners: [], addresses: {} });
const meta = (index: number, term: number, voters = ['a', 'b', 'c']): SnapshotMeta => ({
  index,
  term,
  config: config(voters),
});

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let k = 0; k < n; k++) b[k] = (k * 13 + seed * 101 + (k >> 9)) & 255;
  return b;
}

/** The chunks a leader would send for `data`, `size` bytes each, from `from`. */
function chunks(m: SnapshotMeta, data: Buffer, size: number, from = 0): SnapshotChunk[] {
  const out: SnapshotChunk[] = [];
  for (let o = from; o < data.length; o += size) {
    const end = Math.min(data.length, o + size);
    out.push({ meta: m, offset: o, data: data.subarray(o, end), done: end === data.length });
  }
  return out;
}

function readAllChunks(s: DurableStorage, max: number): Buffer {
  const parts: Buffer[] = [];
  for (let offset = 0, k = 0; k < 100_000; k++) {
    const c = s.snapshotChunk(offset, max);
    expect(c.data.length).toBeLessThanOrEqual(max);
    parts.push(Buffer.from(c.data));
    offset += c.data.length;
    if (c.done) return Buffer.concat(parts);
  }
  throw new Error('snapshotChunk never said done');
}

describe('snapshot store', () => {
  let dir: string;
  let logger: CapturingLogger;
  const small: DurableStorageOptions = { segmentBytes: 4096, cacheEntries: 16, snapshotsKeep: 2 };
  const open = (opts: DurableStorageOptions = {}) => DurableStorage.open(dir, { ...small, logger, ...opts });
  const published = () =>
    fs
      .readdirSync(path.join(dir, 'snapshots'))
      .filter((n) => /^\d{20}-\d+$/.test(n))
      .sort();

  beforeEach(() => {
    dir = tempDir('storage-snap-');
    logger = new CapturingLogger();
  });
  afterEach(() => removeDir(dir));

  test('a saved snapshot is published with its manifest, readable as a stream and in chunks, and survives reopen', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 50) });
    const data = bytes(3 * 1024 * 1024 + 123, 1); // more than one 1 MiB checksum block
    await s.saveSnapshot(meta(40, 1), chunksOf(data, 77_777));
    expect(s.snapshotMeta()).toEqual(meta(40, 1));
    expect(s.term(40)).toBe(1);
    expect((await collect(s.readSnapshot())).equals(data)).toBe(true);
    expect(readAllChunks(s, 1_000_000).equals(data)).toBe(true);
    expect(readAllChunks(s, 4096).equals(data)).toBe(true);
    const manifest = JSON.parse(
      fs.readFileSync(path.join(dir, 'snapshots', published()[0], 'manifest.json'), 'utf8'),
    );
    expect(manifest).toMatchObject({
      index: 40,
      term: 1,
      size: data.length,
      config: config(['a', 'b', 'c']),
    });
    expect(manifest.blockCrc32c).toHaveLength(4);
    await s.close();
    const r = await open();
    expect(r.snapshotMeta()).toEqual(meta(40, 1));
    expect((await collect(r.readSnapshot())).equals(data)).toBe(true);
    expect(r.lastIndex()).toBe(50);
    await r.close();
  });

  test('an empty snapshot is a valid snapshot', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 5) });
    await s.saveSnapshot(meta(5, 1), chunksOf(Buffer.alloc(0), 10));
    expect(readAllChunks(s, 100).length).toBe(0);
    await s.close();
    const r = await open();
    expect(r.snapshotMeta().index).toBe(5);
    expect((await collect(r.readSnapshot())).length).toBe(0);
    await r.close();
  });

  test('only the newest N snapshots are kept', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 50) });
    for (const i of [10, 20, 30, 40]) await s.saveSnapshot(meta(i, 1), chunksOf(bytes(1000, i), 300));
    expect(published()).toEqual([`${'30'.padStart(20, '0')}-1`, `${'40'.padStart(20, '0')}-1`]);
    expect((await collect(s.readSnapshot())).equals(bytes(1000, 40))).toBe(true);
    await s.close();
  });

  test('an older snapshot than the latest is ignored; one past the durable log is refused', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 50) });
    await s.saveSnapshot(meta(30, 1), chunksOf(bytes(10, 1), 5));
    await s.saveSnapshot(meta(20, 1), chunksOf(bytes(10, 2), 5));
    expect(s.snapshotMeta().index).toBe(30);
    await expect(s.saveSnapshot(meta(60, 1), chunksOf(bytes(10, 3), 5))).rejects.toThrow(
      /past the log's last durable index 50/,
    );
    await s.close();
  });

  test('the latest configuration comes from the snapshot when no Config entry follows it', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 10) });
    await s.saveSnapshot(meta(8, 1, ['x', 'y']), chunksOf(bytes(10, 1), 5));
    expect(s.initialState().config.voters).toEqual(['x', 'y']);
    await s.close();
  });

  describe('incoming transfers', () => {
    test('chunks persisted before a restart are resumed from the reported offset, then installed', async () => {
      const data = bytes(200_000, 7);
      const m = meta(100, 3);
      const all = chunks(m, data, 30_000);
      const s = await open();
      await s.persist({ entries: [], snapshotChunk: all[0] });
      await s.persist({ entries: [], snapshotChunk: all[1] });
      await s.close();
      const r = await open();
      expect(r.initialState().partialSnapshot).toEqual({ index: 100, term: 3, bytes: 60_000 });
      for (const c of chunks(m, data, 30_000, 60_000)) await r.persist({ entries: [], snapshotChunk: c });
      await r.installSnapshot(m);
      expect(r.snapshotMeta()).toEqual(m);
      expect(r.initialState().partialSnapshot).toBeUndefined();
      expect(r.lastIndex()).toBe(100);
      expect(r.firstIndex()).toBe(101);
      expect((await collect(r.readSnapshot())).equals(data)).toBe(true);
      await r.persist({ entries: entries(101, 105, 3) });
      await r.close();
      const again = await open();
      expect(again.snapshotMeta()).toEqual(m);
      expect(again.lastIndex()).toBe(105);
      expect(again.initialState().config.voters).toEqual(['a', 'b', 'c']);
      expect(fs.existsSync(path.join(dir, 'snapshots', 'partial'))).toBe(false);
      await again.close();
    });

    test('unverified bytes after the last durable chunk are dropped on restart', async () => {
      const data = bytes(50_000, 9);
      const m = meta(10, 2);
      const s = await open();
      for (const c of chunks(m, data, 20_000).slice(0, 2)) await s.persist({ entries: [], snapshotChunk: c });
      await s.close();
      fs.appendFileSync(path.join(dir, 'snapshots', 'partial', 'data'), Buffer.alloc(5000, 0xee)); // a torn chunk write
      const r = await open();
      expect(r.initialState().partialSnapshot).toEqual({ index: 10, term: 2, bytes: 40_000 });
      expect(
        logger.has(/resumed the partial snapshot 10\/2 at 40000 bytes \(dropped 5000 unverified bytes\)/),
      ).toBe(true);
      await r.persist({ entries: [], snapshotChunk: chunks(m, data, 20_000)[2] });
      await r.installSnapshot(m);
      expect((await collect(r.readSnapshot())).equals(data)).toBe(true);
      await r.close();
    });

    test('a chunk that does not continue the transfer is refused without failing the storage', async () => {
      const data = bytes(30_000, 1);
      const m = meta(10, 2);
      const [c0, c1, c2] = chunks(m, data, 10_000);
      const s = await open();
      await expect(s.persist({ entries: [], snapshotChunk: c1 })).rejects.toThrow(
        /without the transfer's start/,
      );
      await s.persist({ entries: [], snapshotChunk: c0 });
      await expect(s.persist({ entries: [], snapshotChunk: c2 })).rejects.toThrow(
        /offset 20000, expected 10000/,
      );
      await s.persist({ entries: [], snapshotChunk: c1 });
      await s.persist({ entries: [], snapshotChunk: c2 });
      await s.installSnapshot(m);
      expect(s.failure()).toBeNull();
      await s.close();
    });

    test('a new transfer (offset 0) replaces an unfinished one', async () => {
      const s = await open();
      await s.persist({ entries: [], snapshotChunk: chunks(meta(10, 2), bytes(30_000, 1), 10_000)[0] });
      const data = bytes(15_000, 2);
      for (const c of chunks(meta(20, 3), data, 10_000)) await s.persist({ entries: [], snapshotChunk: c });
      await expect(s.installSnapshot(meta(10, 2))).rejects.toThrow(/received transfer is 20\/3/);
      await s.installSnapshot(meta(20, 3));
      expect((await collect(s.readSnapshot())).equals(data)).toBe(true);
      await s.close();
    });

    test('installing an incomplete transfer is refused', async () => {
      const s = await open();
      const m = meta(10, 2);
      await s.persist({ entries: [], snapshotChunk: chunks(m, bytes(30_000, 1), 10_000)[0] });
      await expect(s.installSnapshot(m)).rejects.toThrow(/incomplete, 10000 bytes/);
      expect(s.failure()).toBeNull();
      await s.close();
    });

    test('install keeps the log after the snapshot when the log has its entry with its term', async () => {
      const s = await open();
      for (let i = 1; i <= 200; i += 20) await s.persist({ entries: entries(i, i + 19, 1) });
      const m = meta(150, 1);
      for (const c of chunks(m, bytes(1000, 1), 400)) await s.persist({ entries: [], snapshotChunk: c });
      await s.installSnapshot(m);
      expect(s.lastIndex()).toBe(200);
      expect(s.firstIndex()).toBeLessThanOrEqual(151);
      expect(s.firstIndex()).toBeGreaterThan(1); // whole segments up to 150 are gone
      s.entries(151, 201, 1 << 20).forEach((e, k) => expectEntry(e, 151 + k));
      await s.close();
      const r = await open();
      expect(r.lastIndex()).toBe(200);
      expect(r.snapshotMeta().index).toBe(150);
      await r.close();
    });

    test('install drops the whole log when the log conflicts with the snapshot', async () => {
      const s = await open();
      for (let i = 1; i <= 200; i += 20) await s.persist({ entries: entries(i, i + 19, 1) });
      const m = meta(150, 4);
      for (const c of chunks(m, bytes(1000, 1), 400)) await s.persist({ entries: [], snapshotChunk: c });
      await s.installSnapshot(m);
      expect(s.lastIndex()).toBe(150);
      expect(s.firstIndex()).toBe(151);
      expect(s.term(150)).toBe(4);
      expect(s.term(149)).toBeUndefined();
      expect(fs.readdirSync(path.join(dir, 'log')).filter((n) => n.endsWith('.seg'))).toEqual([]);
      await s.persist({ entries: entries(151, 160, 4) });
      await s.close();
      const r = await open();
      expect(r.firstIndex()).toBe(151);
      expect(r.lastIndex()).toBe(160);
      await r.close();
    });

    test('install also happens when the log is shorter than the snapshot', async () => {
      const s = await open();
      await s.persist({ entries: entries(1, 5, 1) });
      const m = meta(1000, 5);
      for (const c of chunks(m, bytes(100, 1), 100)) await s.persist({ entries: [], snapshotChunk: c });
      await s.installSnapshot(m);
      expect(s.lastIndex()).toBe(1000);
      await s.close();
    });

    test('persist calls made during an install wait for it and complete in order', async () => {
      const s = await open();
      await s.persist({ entries: entries(1, 10, 1) });
      const m = meta(50, 2);
      for (const c of chunks(m, bytes(1000, 1), 1000)) await s.persist({ entries: [], snapshotChunk: c });
      const order: string[] = [];
      const install = s.installSnapshot(m).then(() => void order.push('install'));
      const after = s.persist({ entries: entries(51, 52, 2) }).then(() => void order.push('append'));
      await Promise.all([install, after]);
      expect(order).toEqual(['install', 'append']);
      expect(s.lastIndex()).toBe(52);
      await s.close();
    });
  });
});
