import * as fs from 'fs';
import * as path from 'path';
import { crc32c } from '@node-rs/crc32';
import { EntryType, decodeConfig } from '../core/types';
import { DurableStorage, DurableStorageOptions } from './durable-storage';
import {
  CapturingLogger,
  collect,
  configEntry,
  entries,
  entry,
  expectEntry,
  removeDir,
  segmentFiles,
  tempDir,
} from '../testing/storage-fixtures';

jest.setTimeout(60_000);

// Records of 32-byte payloads are 57 bytes: a 4 KiB segment holds 71 of them.
const small: DurableStorageOptions = { segmentBytes: 4096, cacheEntries: 16 };

describe('DurableStorage log', () => {
  let dir: string;
  let logger: CapturingLogger;
  const open = (opts: DurableStorageOptions = {}) => DurableStorage.open(dir, { ...small, logger, ...opts });

  beforeEach(() => {
    dir = tempDir();
    logger = new CapturingLogger();
  });
  afterEach(() => removeDir(dir));

  test('an empty log reports index 0, term 0 and nothing to read, before and after reopen', async () => {
    for (let round = 0; round < 2; round++) {
      const s = await open();
      expect(s.firstIndex()).toBe(1);
      expect(s.lastIndex()).toBe(0);
      expect(s.term(0)).toBe(0);
      expect(s.term(1)).toBeUndefined();
      expect(s.entries(1, 1, 1000)).toEqual([]);
      expect(s.snapshotMeta().index).toBe(0);
      expect(s.readSnapshot()).toBeNull();
      const init = s.initialState();
      expect(init.hardState).toEqual({ term: 0, vote: null, commit: 0 });
      expect(init.config.voters).toEqual([]);
      expect(init.partialSnapshot).toBeUndefined();
      await s.close();
    }
  });

  test('appended entries are readable once durable and survive reopen', async () => {
    const s = await open();
    const p = s.persist({ entries: entries(1, 10) });
    expect(s.lastIndex()).toBe(0); // not durable yet: the reader does not show it
    await p;
    expect(s.lastIndex()).toBe(10);
    const got = s.entries(1, 11, 1 << 20);
    expect(got).toHaveLength(10);
    got.forEach((e, k) => expectEntry(e, k + 1));
    await s.close();
    const r = await open();
    expect(r.firstIndex()).toBe(1);
    expect(r.lastIndex()).toBe(10);
    r.entries(1, 11, 1 << 20).forEach((e, k) => expectEntry(e, k + 1));
    expect(r.term(10)).toBe(1);
    await r.close();
  });

  test('concurrent persists share fsyncs and resolve in call order', async () => {
    const s = await open({ segmentBytes: 1 << 20 });
    const order: number[] = [];
    const calls: Promise<void>[] = [];
    for (let i = 1; i <= 200; i++)
      calls.push(s.persist({ entries: [entry(i)] }).then(() => void order.push(i)));
    await Promise.all(calls);
    expect(order).toEqual(Array.from({ length: 200 }, (_, k) => k + 1));
    const st = s.stats();
    expect(st.persistCalls).toBe(200);
    expect(st.syncs).toBeLessThan(200);
    expect(s.lastIndex()).toBe(200);
    await s.close();
  });

  test('entries roll over segment boundaries; reads, terms and reopen work across them', async () => {
    const s = await open();
    let term = 1;
    for (let i = 1; i <= 400; i += 20) {
      if (i % 100 === 1) term++;
      const batch = entries(i, i + 19, term);
      await s.persist({ entries: batch });
    }
    expect(segmentFiles(dir).length).toBeGreaterThanOrEqual(5);
    const check = (st: DurableStorage) => {
      let i = 1;
      while (i <= 400) {
        const got = st.entries(i, 401, 1000); // ~31 payloads of 32 bytes
        expect(got.length).toBeGreaterThanOrEqual(1);
        expect(got.reduce((n, e) => n + e.data.length, 0)).toBeLessThanOrEqual(1000);
        for (const e of got) {
          expectEntry(e, i, Math.floor((i - 1) / 100) + 2);
          expect(st.term(i)).toBe(Math.floor((i - 1) / 100) + 2);
          i++;
        }
      }
    };
    check(s);
    await s.close();
    const r = await open();
    expect(r.lastIndex()).toBe(400);
    check(r);
    // at least one entry even when it alone exceeds maxBytes
    expect(r.entries(5, 10, 1)).toHaveLength(1);
    await r.close();
  });

  test('reads past the durable end or before the first index throw', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 3) });
    expect(() => s.entries(1, 5, 100)).toThrow(/outside the log/);
    expect(() => s.entries(0, 2, 100)).toThrow(/outside the log/);
    await s.close();
  });

  test('an entry that does not continue the log is rejected and the log is unchanged', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 3) });
    await expect(s.persist({ entries: [entry(5)] })).rejects.toThrow(/follow the log's last index 3/);
    expect(s.lastIndex()).toBe(3);
    await s.persist({ entries: [entry(4)] });
    expect(s.lastIndex()).toBe(4);
    await s.close();
  });

  test('an invalid batch is refused before it changes anything (no truncation is scheduled)', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 10, 2) });
    const gap = [entry(5, 3), entry(6, 3), entry(8, 3)];
    await expect(s.persist({ entries: gap })).rejects.toThrow(/entry index 8 where 7 was expected/);
    await expect(s.persist({ entries: [entry(5, 1)] })).rejects.toThrow(/term 1 below 2/);
    expect(s.lastIndex()).toBe(10);
    await s.persist({ entries: [entry(11, 2)] });
    expect(s.entries(1, 12, 1 << 20).map((e) => e.term)).toEqual(Array(11).fill(2));
    await s.saveSnapshot(
      { index: 6, term: 2, config: decodeConfig(Buffer.from('{}')) },
      (async function* () {
        yield Buffer.from('s');
      })(),
    );
    await expect(s.persist({ entries: [entry(6, 3)] })).rejects.toThrow(/would overwrite the snapshot/);
    await s.close();
    const r = await open();
    expect(r.lastIndex()).toBe(11);
    await r.close();
  });

  test('truncating inside the not-yet-written batch keeps only the new suffix', async () => {
    const s = await open();
    const a = s.persist({ entries: entries(1, 10, 1) });
    const b = s.persist({ entries: entries(6, 8, 2) });
    await Promise.all([a, b]);
    expect(s.lastIndex()).toBe(8);
    expect(s.entries(1, 9, 1 << 20).map((e) => e.term)).toEqual([1, 1, 1, 1, 1, 2, 2, 2]);
    await s.close();
    const r = await open();
    expect(r.lastIndex()).toBe(8);
    r.entries(6, 9, 1 << 20).forEach((e, k) => expectEntry(e, 6 + k, 2));
    await r.close();
  });

  test('truncating durable entries inside the last segment, then reopening', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 20, 1) });
    const p = s.persist({ entries: entries(15, 16, 3) });
    expect(s.lastIndex()).toBe(14); // the truncated suffix vanishes from the reader at once
    await p;
    expect(s.lastIndex()).toBe(16);
    expect(s.term(15)).toBe(3);
    expect(s.term(17)).toBeUndefined();
    await s.close();
    const r = await open();
    expect(r.lastIndex()).toBe(16);
    r.entries(1, 15, 1 << 20).forEach((e, k) => expectEntry(e, k + 1, 1));
    r.entries(15, 17, 1 << 20).forEach((e, k) => expectEntry(e, 15 + k, 3));
    await r.close();
  });

  test('truncating across segments deletes later segments and keeps the rest intact', async () => {
    const s = await open();
    for (let i = 1; i <= 300; i += 30) await s.persist({ entries: entries(i, i + 29, 1) });
    const before = segmentFiles(dir).length;
    expect(before).toBeGreaterThanOrEqual(4);
    await s.persist({ entries: entries(50, 60, 2) });
    expect(segmentFiles(dir).length).toBeLessThan(before);
    expect(s.lastIndex()).toBe(60);
    await s.persist({ entries: entries(61, 200, 2) });
    await s.close();
    const r = await open();
    expect(r.lastIndex()).toBe(200);
    r.entries(1, 50, 1 << 20).forEach((e, k) => expectEntry(e, k + 1, 1));
    let i = 50;
    while (i <= 200) {
      for (const e of r.entries(i, 201, 1 << 20)) expectEntry(e, i++, 2);
    }
    await r.close();
  });

  test('a truncation back to the first index of a segment keeps that segment as the one written', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 71, 1) });
    await s.persist({ entries: entries(72, 100, 1) }); // 72 starts the second segment
    expect(segmentFiles(dir)).toHaveLength(2);
    await s.persist({ entries: entries(72, 75, 2) });
    await s.close();
    const r = await open();
    expect(r.lastIndex()).toBe(75);
    expect(r.term(72)).toBe(2);
    expect(r.term(71)).toBe(1);
    await r.close();
  });

  test('compaction deletes whole segments up to the snapshot, appends continue, reopen agrees', async () => {
    const s = await open();
    for (let i = 1; i <= 300; i += 30) await s.persist({ entries: entries(i, i + 29) });
    await s.compact(250); // no snapshot yet: clamped to 0, nothing goes
    expect(s.firstIndex()).toBe(1);
    await s.saveSnapshot(
      { index: 250, term: 1, config: decodeConfig(Buffer.from('{"voters":["a"]}')) },
      (async function* () {
        yield Buffer.from('state at 250');
      })(),
    );
    const files = segmentFiles(dir).length;
    await s.compact(200);
    expect(segmentFiles(dir).length).toBeLessThan(files);
    const first = s.firstIndex();
    expect(first).toBeGreaterThan(1);
    expect(first).toBeLessThanOrEqual(201);
    expect(s.term(first - 1)).toBeUndefined();
    await s.persist({ entries: entries(301, 320) });
    await s.close();
    const r = await open();
    expect(r.firstIndex()).toBe(first);
    expect(r.lastIndex()).toBe(320);
    expectEntry(r.entries(first, first + 1, 100)[0], first);
    expectEntry(r.entries(320, 321, 100)[0], 320);
    expect(r.snapshotMeta().index).toBe(250);
    await r.close();
  });

  test('a snapshot saved in parts (hard-linked file) compacts the log like a streamed one and survives reopen', async () => {
    const s = await open();
    for (let i = 1; i <= 300; i += 30) await s.persist({ entries: entries(i, i + 29) });
    const src = path.join(dir, 'state-machine-file');
    const history = Buffer.alloc(200_000, 7);
    fs.writeFileSync(src, history);
    const head = Buffer.from('head');
    await s.saveSnapshot({ index: 250, term: 1, config: decodeConfig(Buffer.from('{"voters":["a"]}')) }, [
      { bytes: head },
      { file: src, length: 150_000, crc32c: crc32c(history.subarray(0, 150_000)) >>> 0 },
    ]);
    const expected = Buffer.concat([head, history.subarray(0, 150_000)]);
    const files = segmentFiles(dir).length;
    await s.compact(200);
    expect(segmentFiles(dir).length).toBeLessThan(files);
    const first = s.snapshotChunk(0, 10);
    expect(Buffer.from(first.data)).toEqual(expected.subarray(0, 10));
    expect(first.done).toBe(false);
    expect((await collect(s.readSnapshot())).equals(expected)).toBe(true);
    await s.close();
    fs.rmSync(src);
    const r = await open();
    expect(r.snapshotMeta().index).toBe(250);
    expect(r.lastIndex()).toBe(300);
    expect((await collect(r.readSnapshot())).equals(expected)).toBe(true);
    await r.close();
  });

  test('term and vote are durable across reopen; commit-only changes are written on close', async () => {
    const s = await open();
    await s.persist({ hardState: { term: 3, vote: 'n2', commit: 0 }, entries: [] });
    expect(s.durableHardState()).toEqual({ term: 3, vote: 'n2', commit: 0 });
    await s.persist({ entries: entries(1, 5, 3) });
    await s.persist({ hardState: { term: 3, vote: 'n2', commit: 4 }, entries: [] });
    expect(s.durableHardState().commit).toBe(0); // advisory: not worth an fsync of its own
    await s.close();
    const r = await open();
    expect(r.initialState().hardState).toEqual({ term: 3, vote: 'n2', commit: 4 });
    await r.close();
  });

  test('hard state and entries in one call become durable together', async () => {
    const s = await open();
    const p = s.persist({ hardState: { term: 2, vote: 'n1', commit: 0 }, entries: entries(1, 3, 2) });
    expect(s.durableHardState().term).toBe(0);
    await p;
    expect(s.durableHardState()).toEqual({ term: 2, vote: 'n1', commit: 0 });
    expect(s.lastIndex()).toBe(3);
    await s.close();
  });

  test('the latest Config entry is the initial configuration, recomputed after truncation and reopen', async () => {
    const s = await open();
    await s.persist({ entries: [configEntry(1, 1, ['a']), ...entries(2, 100, 1)] });
    await s.persist({ entries: [configEntry(101, 2, ['a', 'b']), ...entries(102, 110, 2)] });
    expect(s.initialState().config.voters).toEqual(['a', 'b']);
    await s.persist({ entries: entries(101, 105, 3) }); // drops the second config
    expect(s.initialState().config.voters).toEqual(['a']);
    await s.close();
    const r = await open();
    expect(r.initialState().config.voters).toEqual(['a']);
    expect(r.entries(1, 2, 100)[0].type).toBe(EntryType.Config);
    await r.close();
  });

  test('persist after close is rejected', async () => {
    const s = await open();
    await s.close();
    await expect(s.persist({ entries: [entry(1)] })).rejects.toThrow(/closed/);
  });

  test('the first segment is preallocated and sealed segments get a sidecar index', async () => {
    const s = await open();
    for (let i = 1; i <= 200; i += 20) await s.persist({ entries: entries(i, i + 19) });
    await s.close();
    const logDir = path.join(dir, 'log');
    const names = fs.readdirSync(logDir);
    const segs = names.filter((n) => n.endsWith('.seg')).sort();
    expect(segs.length).toBeGreaterThanOrEqual(3);
    // The first is zero-filled at open; later ones are the spare prepared in the background (or, if that
    // was not ready in time, a file that grows as it is written).
    expect(fs.statSync(path.join(logDir, segs[0])).size).toBe(4096);
    for (const seg of segs.slice(0, -1)) expect(names).toContain(seg.replace('.seg', '.idx'));
  });
});
