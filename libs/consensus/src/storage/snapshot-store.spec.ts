import * as fs from 'fs';
import * as path from 'path';
import { SnapshotChunk } from '../core/ready';
import { ConfigState, SnapshotMeta } from '../core/types';
import { crc32c } from '@node-rs/crc32';
import { SnapshotPart } from '../node/ports';
import { DurableStorage, DurableStorageOptions } from './durable-storage';
import { StorageCorruptionError } from './errors';
import { FileOps } from './file-ops';
import {
  CapturingLogger,
  chunksOf,
  collect,
  entries,
  expectEntry,
  removeDir,
  tempDir,
} from '../testing/storage-fixtures';

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

/** A file part over the first `length` bytes of `file` (the file may be longer). */
function filePart(file: string, length: number): SnapshotPart {
  const b = fs.readFileSync(file).subarray(0, length);
  return { file, length, crc32c: crc32c(b) >>> 0 };
}

function concatParts(parts: SnapshotPart[]): Buffer {
  return Buffer.concat(
    parts.map((p) => ('bytes' in p ? Buffer.from(p.bytes) : fs.readFileSync(p.file).subarray(0, p.length))),
  );
}

function ioError(code: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: injected`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
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
  describe('snapshots in parts (hard-linked files)', () => {
    let src: string;
    const partsDir = () => path.join(dir, 'snapshots', published()[published().length - 1]);
    /** Two state-machine files: `a` is closed (3 MiB + 5), `b` grows past its part's length (like an open file). */
    function makeParts(): { parts: SnapshotPart[]; expected: Buffer } {
      const a = path.join(src, 'a');
      const b = path.join(src, 'b');
      fs.writeFileSync(a, bytes(3 * 1024 * 1024 + 5, 2));
      fs.writeFileSync(b, bytes(70_000, 3));
      const parts: SnapshotPart[] = [
        { bytes: Buffer.from('MAGIC') },
        { bytes: Buffer.from('head-a') },
        filePart(a, 3 * 1024 * 1024 + 5),
        { bytes: Buffer.from('tail-a|head-b') },
        filePart(b, 50_000),
        { bytes: new Uint8Array(0) },
        { file: a, length: 0, crc32c: 0 },
        { bytes: Buffer.from('end') },
      ];
      const expected = concatParts(parts);
      fs.appendFileSync(b, bytes(1000, 4)); // appends past the part's length are not part of the snapshot
      return { parts, expected };
    }

    beforeEach(() => {
      src = tempDir('storage-snap-src-');
    });
    afterEach(() => removeDir(src));

    test('are stored as links plus one bytes file, readable as a stream and in chunks across part boundaries', async () => {
      const s = await open();
      await s.persist({ entries: entries(1, 50) });
      const { parts, expected } = makeParts();
      await s.saveSnapshot(meta(40, 1), parts);
      expect(s.snapshotMeta()).toEqual(meta(40, 1));
      const m = JSON.parse(fs.readFileSync(path.join(partsDir(), 'manifest.json'), 'utf8'));
      expect(m.version).toBe(2);
      expect(m.size).toBe(expected.length);
      // Adjacent bytes parts are merged; empty parts are dropped.
      expect(m.parts.map((p: { kind: string; length: number }) => [p.kind, p.length])).toEqual([
        ['bytes', 11],
        ['file', 3 * 1024 * 1024 + 5],
        ['bytes', 13],
        ['file', 50_000],
        ['bytes', 3],
      ]);
      // The file parts share the source's inode: nothing of the history was copied.
      const linked = m.parts.filter((p: { kind: string }) => p.kind === 'file');
      expect(fs.statSync(path.join(partsDir(), linked[0].name)).ino).toBe(
        fs.statSync(path.join(src, 'a')).ino,
      );
      expect(fs.statSync(path.join(partsDir(), linked[1].name)).ino).toBe(
        fs.statSync(path.join(src, 'b')).ino,
      );
      expect((await collect(s.readSnapshot())).equals(expected)).toBe(true);
      for (const max of [1, 777, 4096, 1_000_000, 10_000_000]) {
        if (max === 1) {
          // Single bytes at and around every boundary.
          let start = 0;
          for (const p of m.parts as { length: number }[]) {
            for (const o of [start - 1, start, start + 1].filter((x) => x >= 0 && x < expected.length)) {
              expect(Buffer.from(s.snapshotChunk(o, 1).data)).toEqual(expected.subarray(o, o + 1));
            }
            start += p.length;
          }
          continue;
        }
        expect(readAllChunks(s, max).equals(expected)).toBe(true);
      }
      // A chunk spanning three parts.
      const from = 11 + 3 * 1024 * 1024;
      expect(Buffer.from(s.snapshotChunk(from, 30).data)).toEqual(expected.subarray(from, from + 30));
      const last = s.snapshotChunk(expected.length - 2, 100);
      expect(last.done).toBe(true);
      expect(Buffer.from(last.data)).toEqual(expected.subarray(expected.length - 2));
      await s.close();
    });

    test('survive reopen after the source files are removed (the links keep the bytes)', async () => {
      const s = await open();
      await s.persist({ entries: entries(1, 50) });
      const { parts, expected } = makeParts();
      await s.saveSnapshot(meta(40, 1), parts);
      await s.close();
      removeDir(src);
      const r = await open();
      expect(r.snapshotMeta()).toEqual(meta(40, 1));
      expect(r.lastIndex()).toBe(50);
      expect((await collect(r.readSnapshot())).equals(expected)).toBe(true);
      expect(readAllChunks(r, 100_000).equals(expected)).toBe(true);
      await r.close();
    });

    test('a version-1 snapshot (one data file) still opens, beside a newer version-2 one', async () => {
      const s = await open();
      await s.persist({ entries: entries(1, 50) });
      const old = bytes(2 * 1024 * 1024 + 9, 5);
      await s.saveSnapshot(meta(20, 1), chunksOf(old, 65_536));
      await s.close();
      const v1 = path.join(dir, 'snapshots', published()[0]);
      expect(JSON.parse(fs.readFileSync(path.join(v1, 'manifest.json'), 'utf8')).version).toBe(1);
      expect(fs.readdirSync(v1).sort()).toEqual(['data', 'manifest.json']);
      const r = await open();
      expect(r.snapshotMeta()).toEqual(meta(20, 1));
      expect((await collect(r.readSnapshot())).equals(old)).toBe(true);
      expect(readAllChunks(r, 300_000).equals(old)).toBe(true);
      const { parts, expected } = makeParts();
      await r.saveSnapshot(meta(40, 1), parts);
      await r.close();
      expect(published()).toHaveLength(2);
      const again = await open();
      expect(again.snapshotMeta()).toEqual(meta(40, 1));
      expect((await collect(again.readSnapshot())).equals(expected)).toBe(true);
      await again.close();
    });

    async function expectOpenCorruption(file: string, detail: RegExp): Promise<void> {
      const err = await open().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StorageCorruptionError);
      expect((err as StorageCorruptionError).file).toBe(file);
      expect((err as StorageCorruptionError).message).toMatch(detail);
    }

    async function savedParts(): Promise<{ names: string[]; expected: Buffer }> {
      const s = await open();
      await s.persist({ entries: entries(1, 50) });
      const { parts, expected } = makeParts();
      await s.saveSnapshot(meta(40, 1), parts);
      await s.close();
      const m = JSON.parse(fs.readFileSync(path.join(partsDir(), 'manifest.json'), 'utf8'));
      return {
        names: m.parts
          .filter((p: { kind: string }) => p.kind === 'file')
          .map((p: { name: string }) => p.name),
        expected,
      };
    }

    test('a missing linked part stops the open, naming the file', async () => {
      const { names } = await savedParts();
      const file = path.join(partsDir(), names[0]);
      fs.rmSync(file);
      await expectOpenCorruption(file, /snapshot part is missing/);
    });

    test('a linked part shorter than its length stops the open, naming the file', async () => {
      const { names } = await savedParts();
      const file = path.join(partsDir(), names[1]);
      fs.truncateSync(file, 49_999);
      await expectOpenCorruption(file, /snapshot part is 49999 bytes, its manifest needs 50000/);
    });

    test('a damaged bytes part stops the open', async () => {
      await savedParts();
      const file = path.join(partsDir(), 'bytes');
      const b = fs.readFileSync(file);
      b[12] ^= 1;
      fs.writeFileSync(file, b);
      await expectOpenCorruption(file, /bytes part at offset 11 does not match its manifest checksum/);
    });

    test('a damaged linked part is not read at open, but reading the snapshot fails at that part', async () => {
      const { names } = await savedParts();
      const file = path.join(partsDir(), names[0]);
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, Buffer.from([0xff, 0x00, 0xff]), 0, 3, 2 * 1024 * 1024);
      fs.closeSync(fd);
      const r = await open();
      const err = await collect(r.readSnapshot()).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StorageCorruptionError);
      expect((err as StorageCorruptionError).file).toBe(file);
      expect((err as StorageCorruptionError).message).toMatch(
        /snapshot part does not match its manifest checksum/,
      );
      await r.close();
    });

    test('where hard links fail (EXDEV), file parts are copied up to their length and checked', async () => {
      let links = 0;
      const noLinks: FileOps = {
        ...fs,
        linkSync: () => {
          links++;
          throw ioError('EXDEV');
        },
      };
      const s = await open({ fileOps: noLinks });
      await s.persist({ entries: entries(1, 50) });
      const { parts, expected } = makeParts();
      await s.saveSnapshot(meta(40, 1), parts);
      expect(links).toBe(2);
      expect(logger.has(/2 file part\(s\) could not be hard-linked .* and were copied/)).toBe(true);
      const m = JSON.parse(fs.readFileSync(path.join(partsDir(), 'manifest.json'), 'utf8'));
      const copy = path.join(partsDir(), m.parts[3].name);
      expect(fs.statSync(copy).ino).not.toBe(fs.statSync(path.join(src, 'b')).ino);
      expect(fs.statSync(copy).size).toBe(50_000); // only the part, not what the source grew by
      expect((await collect(s.readSnapshot())).equals(expected)).toBe(true);
      expect(readAllChunks(s, 65_536).equals(expected)).toBe(true);
      // A copy is checked against the part's CRC: a wrong one fails the save, not the storage.
      const b = path.join(src, 'b');
      await expect(s.saveSnapshot(meta(45, 1), [{ file: b, length: 100, crc32c: 12345 }])).rejects.toThrow(
        /does not match the CRC-32C the state machine gave/,
      );
      expect(s.failure()).toBeNull();
      expect(s.snapshotMeta()).toEqual(meta(40, 1));
      await s.close();
      const r = await open();
      expect((await collect(r.readSnapshot())).equals(expected)).toBe(true);
      await r.close();
    });

    test('a missing or short source file fails the save without failing the storage', async () => {
      const s = await open();
      await s.persist({ entries: entries(1, 50) });
      const { parts, expected } = makeParts();
      await s.saveSnapshot(meta(30, 1), parts);
      await expect(
        s.saveSnapshot(meta(40, 1), [{ file: path.join(src, 'gone'), length: 10, crc32c: 0 }]),
      ).rejects.toThrow(/does not exist/);
      await expect(
        s.saveSnapshot(meta(40, 1), [{ file: path.join(src, 'b'), length: 1_000_000, crc32c: 0 }]),
      ).rejects.toThrow(/has 71000 bytes, fewer than its length 1000000/);
      expect(s.failure()).toBeNull();
      expect(s.snapshotMeta()).toEqual(meta(30, 1));
      expect(fs.readdirSync(path.join(dir, 'snapshots')).filter((n) => n.startsWith('tmp-'))).toEqual([]);
      expect((await collect(s.readSnapshot())).equals(expected)).toBe(true);
      await s.persist({ entries: entries(51, 51) });
      await s.close();
    });

    test('pruning an old parts snapshot removes only its links', async () => {
      const s = await open();
      await s.persist({ entries: entries(1, 50) });
      for (const i of [10, 20, 30]) await s.saveSnapshot(meta(i, 1), makeParts().parts);
      expect(published()).toHaveLength(2);
      expect(fs.existsSync(path.join(src, 'a'))).toBe(true);
      expect(fs.statSync(path.join(src, 'a')).nlink).toBe(3); // the source and two snapshots
      await s.close();
    });
  });
});
