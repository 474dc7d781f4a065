import * as fs from 'fs';
import * as path from 'path';
import { DurableStorage, DurableStorageOptions } from './durable-storage';
import { StorageCorruptionError } from './errors';
import { recordHeaderBytes } from './record';
import {
  CapturingLogger,
  chunksOf,
  collect,
  entries,
  expectEntry,
  removeDir,
  segmentFiles,
  tempDir,
} from '../testing/storage-fixtures';

jest.setTimeout(60_000);

// Fault injection: damage is written into the files directly, then the directory is reopened.
const recordBytes = recordHeaderBytes + 32; // fixtures' entries carry 32-byte payloads
const small: DurableStorageOptions = { segmentBytes: 4096, cacheEntries: 16 };

describe('recovery rules', () => {
  let dir: string;
  let logger: CapturingLogger;
  const open = (opts: DurableStorageOptions = {}) => DurableStorage.open(dir, { ...small, logger, ...opts });
  const logPath = (name: string) => path.join(dir, 'log', name);
  const tail = () => logPath(segmentFiles(dir).slice(-1)[0]);
  /** Byte offset of entry `index` in its segment (all records have the same size). */
  const offsetIn = (file: string, index: number) =>
    (index - Number(path.basename(file, '.seg'))) * recordBytes;

  async function build(last: number): Promise<void> {
    const s = await open();
    for (let i = 1; i <= last; i += 10) await s.persist({ entries: entries(i, Math.min(last, i + 9)) });
    await s.close();
  }

  function patch(file: string, offset: number, bytes: Uint8Array): void {
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, bytes, 0, bytes.length, offset);
    fs.closeSync(fd);
  }

  function flip(file: string, offset: number): void {
    const fd = fs.openSync(file, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset);
    b[0] ^= 0x5a;
    fs.writeSync(fd, b, 0, 1, offset);
    fs.closeSync(fd);
  }

  async function expectCorruption(
    file: string,
    offset: number,
    detail: RegExp,
  ): Promise<StorageCorruptionError> {
    const err = await open().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StorageCorruptionError);
    const c = err as StorageCorruptionError;
    expect(c.file).toBe(file);
    expect(c.offset).toBe(offset);
    expect(c.message).toMatch(detail);
    expect(c.message).toMatch(/--repair=discard-and-rejoin/);
    expect(c.message).toMatch(/REPAIR=discard-and-rejoin/);
    return c;
  }

  beforeEach(() => {
    dir = tempDir('storage-recovery-');
    logger = new CapturingLogger();
  });
  afterEach(() => removeDir(dir));

  test('a partial record at the end is cut off, with a log line saying how many bytes went', async () => {
    await build(100);
    const file = tail();
    const end = offsetIn(file, 101);
    const half = Buffer.alloc(40, 0xab);
    half.writeUInt32LE(32, 0); // a plausible length: the record is just cut short
    patch(file, end, half);
    const s = await open();
    expect(s.lastIndex()).toBe(100);
    expect(logger.has(new RegExp(`truncated a torn tail at offset ${end} .*40 bytes discarded`))).toBe(true);
    await s.persist({ entries: entries(101, 105) });
    await s.close();
    const r = await open();
    expect(r.lastIndex()).toBe(105);
    r.entries(95, 106, 1 << 20).forEach((e, k) => expectEntry(e, 95 + k));
    await r.close();
  });

  test('a bad checksum in the very last record cuts off that record only', async () => {
    await build(100);
    const file = tail();
    flip(file, offsetIn(file, 100) + recordHeaderBytes + 5);
    const s = await open();
    expect(s.lastIndex()).toBe(99);
    expect(logger.has(new RegExp(`checksum mismatch.*${recordBytes} bytes discarded`))).toBe(true);
    await s.close();
  });

  test('garbage after the last record is zeroed', async () => {
    await build(30);
    const file = tail();
    patch(file, offsetIn(file, 31) + 7, Buffer.from('not a record at all'));
    const s = await open();
    expect(s.lastIndex()).toBe(30);
    expect(logger.has(/torn tail .* 26 bytes discarded/)).toBe(true);
    await s.close();
    const again = new CapturingLogger();
    const r = await DurableStorage.open(dir, { ...small, logger: again });
    expect(again.has(/torn tail/)).toBe(false);
    await r.close();
  });

  test('a bad checksum before the tail stops the open, naming file, offset and the repair option', async () => {
    await build(60);
    const file = tail();
    const at = offsetIn(file, 40);
    flip(file, at + recordHeaderBytes + 3);
    await expectCorruption(file, at, /checksum mismatch.*valid record \(index 41\)/);
  });

  test('a damaged length field before the tail is not mistaken for a torn tail', async () => {
    await build(60);
    const file = tail();
    const at = offsetIn(file, 30);
    patch(file, at, Buffer.from([0xff, 0xff, 0x00, 0x00]));
    await expectCorruption(file, at, /not a torn tail/);
  });

  test('a zeroed hole with valid records after it is damage, not the end of the log', async () => {
    await build(60);
    const file = tail();
    const at = offsetIn(file, 20);
    patch(file, at, Buffer.alloc(recordBytes));
    await expectCorruption(file, at, /valid record \(index 21\)/);
  });

  test('repair discard-and-rejoin moves the log and snapshots aside and starts empty, keeping term and vote', async () => {
    const s = await open();
    await s.persist({ hardState: { term: 7, vote: 'n3', commit: 0 }, entries: entries(1, 60, 7) });
    await s.saveSnapshot(
      { index: 10, term: 7, config: { voters: ['n1'], outgoing: [], learners: [], addresses: {} } },
      chunksOf(Buffer.from('snap'), 2),
    );
    await s.close();
    const file = tail();
    flip(file, offsetIn(file, 20) + recordHeaderBytes);
    await expect(open()).rejects.toThrow(StorageCorruptionError);
    const r = await open({ repair: 'discard-and-rejoin' });
    expect(r.lastIndex()).toBe(0);
    expect(r.snapshotMeta().index).toBe(0);
    expect(r.initialState().hardState).toEqual({ term: 7, vote: 'n3', commit: 0 });
    expect(logger.has(/repair discard-and-rejoin: moved the log and snapshots to .*discarded-/)).toBe(true);
    const aside = fs.readdirSync(dir).filter((n) => n.startsWith('discarded-'));
    expect(aside).toHaveLength(1);
    expect(fs.readdirSync(path.join(dir, aside[0]))).toEqual(['log', 'snapshots']);
    await r.persist({ entries: entries(11, 12, 8) }).catch((e: Error) => expect(e.message).toMatch(/follow/));
    await r.persist({ entries: entries(1, 3, 8) });
    expect(r.lastIndex()).toBe(3);
    await r.close();
  });

  test('repair does nothing to a healthy directory', async () => {
    await build(20);
    const s = await open({ repair: 'discard-and-rejoin' });
    expect(s.lastIndex()).toBe(20);
    expect(fs.readdirSync(dir).some((n) => n.startsWith('discarded-'))).toBe(false);
    await s.close();
  });

  test('a missing segment in the sequence stops the open', async () => {
    await build(300);
    const segs = segmentFiles(dir);
    expect(segs.length).toBeGreaterThanOrEqual(4);
    fs.rmSync(logPath(segs[1]));
    await expectCorruption(logPath(segs[2]), 0, /a segment is missing/);
  });

  test('a missing first segment (the log no longer reaches back to the snapshot) stops the open', async () => {
    await build(300);
    const segs = segmentFiles(dir);
    fs.rmSync(logPath(segs[0]));
    fs.rmSync(logPath(segs[0].replace('.seg', '.idx')));
    await expectCorruption(logPath(segs[1]), 0, /segments are missing/);
  });

  test('an interrupted compaction (an older segment reappeared) is finished', async () => {
    const s = await open();
    for (let i = 1; i <= 300; i += 10) await s.persist({ entries: entries(i, i + 9) });
    await s.saveSnapshot(
      { index: 250, term: 1, config: { voters: [], outgoing: [], learners: [], addresses: {} } },
      chunksOf(Buffer.from('x'), 1),
    );
    await s.close();
    const segs = segmentFiles(dir);
    fs.rmSync(logPath(segs[1])); // as if segs[1]'s unlink reached the disk but segs[0]'s did not
    const r = await open();
    expect(logger.has(/finished an interrupted compaction/)).toBe(true);
    expect(r.firstIndex()).toBe(Number(segs[2].slice(0, 20)));
    expect(r.lastIndex()).toBe(300);
    await r.close();
  });

  test('a damaged sidecar index is rebuilt by scanning its segment', async () => {
    await build(200);
    const idx = fs.readdirSync(path.join(dir, 'log')).filter((n) => n.endsWith('.idx'))[0];
    flip(logPath(idx), 40);
    const s = await open();
    expect(logger.has(/rebuilt the index of .* by a scan \(sidecar checksum mismatch\)/)).toBe(true);
    s.entries(1, 201, 1 << 20).forEach((e, k) => expectEntry(e, k + 1));
    await s.close();
  });

  test('a missing sidecar index is rebuilt by scanning its segment', async () => {
    await build(200);
    const idx = fs.readdirSync(path.join(dir, 'log')).filter((n) => n.endsWith('.idx'));
    for (const n of idx) fs.rmSync(logPath(n));
    const s = await open();
    expect(logger.has(/rebuilt the index .* \(no sidecar index\): 70 entries/)).toBe(true);
    expect(s.lastIndex()).toBe(200);
    await s.close();
    expect(fs.readdirSync(path.join(dir, 'log')).filter((n) => n.endsWith('.idx'))).toHaveLength(idx.length);
  });

  test('a stale sidecar that outlived a truncation is not trusted (its last record changed)', async () => {
    await build(200);
    const [first, second] = segmentFiles(dir);
    const idxFile = logPath(first.replace('.seg', '.idx'));
    const stale = fs.readFileSync(idxFile);
    const s = await open();
    // Rewrite the whole log with a new term in the same batches: same record sizes, so the same offsets.
    for (let i = 1; i <= 200; i += 10) await s.persist({ entries: entries(i, Math.min(200, i + 9), 5) });
    await s.close();
    expect(segmentFiles(dir)[1]).toBe(second);
    fs.writeFileSync(idxFile, stale); // as if the sidecar's unlink and rewrite had not reached the disk
    const r = await open();
    expect(logger.has(/rebuilt the index of .* \(last record does not match the sidecar\)/)).toBe(true);
    expect(r.term(10)).toBe(5);
    expectEntry(r.entries(10, 11, 100)[0], 10, 5);
    await r.close();
  });

  test('damage inside a sealed segment without a sidecar stops the open', async () => {
    await build(200);
    const segs = segmentFiles(dir);
    fs.rmSync(logPath(segs[0].replace('.seg', '.idx')));
    const file = logPath(segs[0]);
    flip(file, offsetIn(file, 10) + recordHeaderBytes);
    await expectCorruption(file, offsetIn(file, 10), /checksum mismatch in a sealed segment/);
  });

  test('damage inside a sealed segment with a sidecar is found when the entry is read', async () => {
    await build(200);
    const file = logPath(segmentFiles(dir)[0]);
    flip(file, offsetIn(file, 10) + recordHeaderBytes);
    const s = await open(); // sealed segments are not checksummed on open (only their last record)
    expect(() => s.entries(5, 20, 1 << 20)).toThrow(StorageCorruptionError);
    expect(() => s.entries(5, 20, 1 << 20)).toThrow(new RegExp(`${file}.*offset ${offsetIn(file, 10)}`));
    expectEntry(s.entries(11, 12, 100)[0], 11);
    await s.close();
  });

  test('a sealed segment whose last record disagrees with the sidecar is scanned instead', async () => {
    await build(200);
    const [first, second] = segmentFiles(dir);
    const file = logPath(first);
    const lastOfFirst = Number(second.slice(0, 20)) - 1;
    flip(file, offsetIn(file, lastOfFirst) + recordHeaderBytes);
    await expectCorruption(file, offsetIn(file, lastOfFirst), /checksum mismatch in a sealed segment/);
    expect(logger.lines).toEqual([]);
  });

  test('a snapshot manifest checksum mismatch stops the open', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 10) });
    await s.saveSnapshot(
      { index: 8, term: 1, config: { voters: ['a'], outgoing: [], learners: [], addresses: {} } },
      chunksOf(Buffer.alloc(5000, 1), 1000),
    );
    await s.close();
    const snapDir = path.join(dir, 'snapshots', fs.readdirSync(path.join(dir, 'snapshots'))[0]);
    const manifest = path.join(snapDir, 'manifest.json');
    fs.writeFileSync(manifest, fs.readFileSync(manifest, 'utf8').replace('"index": 8', '"index": 9'));
    await expectCorruption(manifest, 0, /manifest checksum mismatch/);
  });

  test('snapshot data that does not match its manifest stops the open, naming the block', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 10) });
    const data = Buffer.alloc(2.5 * 1024 * 1024, 3);
    await s.saveSnapshot(
      { index: 8, term: 1, config: { voters: ['a'], outgoing: [], learners: [], addresses: {} } },
      chunksOf(data, 300_000),
    );
    expect((await collect(s.readSnapshot())).equals(data)).toBe(true);
    await s.close();
    const snapDir = path.join(dir, 'snapshots', fs.readdirSync(path.join(dir, 'snapshots'))[0]);
    flip(path.join(snapDir, 'data'), 2 * 1024 * 1024 + 17);
    await expectCorruption(path.join(snapDir, 'data'), 2 * 1024 * 1024, /block 2 does not match/);
  });

  test('a damaged hard-state file stops the open', async () => {
    const s = await open();
    await s.persist({ hardState: { term: 4, vote: 'a', commit: 0 }, entries: [] });
    await s.close();
    const file = path.join(dir, 'hardstate.json');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('"term":4', '"term":5'));
    await expectCorruption(file, 0, /hard state checksum mismatch/);
  });

  test('an install interrupted after publishing the snapshot drops the conflicting log on open', async () => {
    await build(20);
    const s = await open();
    // A snapshot whose term disagrees with the log's entry at its index, as after a crash mid-install.
    await s.saveSnapshot(
      { index: 15, term: 9, config: { voters: [], outgoing: [], learners: [], addresses: {} } },
      chunksOf(Buffer.from('s'), 1),
    );
    await s.close();
    const r = await open();
    expect(logger.has(/entry 15 has term 1, the snapshot's is 9: dropped the log/)).toBe(true);
    expect(r.lastIndex()).toBe(15);
    expect(r.firstIndex()).toBe(16);
    expect(r.term(15)).toBe(9);
    await r.persist({ entries: entries(16, 18, 9) });
    await r.close();
    const again = await open();
    expect(again.lastIndex()).toBe(18);
    await again.close();
  });
});
