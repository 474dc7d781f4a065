import * as fs from 'fs';
import { DurableStorage, DurableStorageOptions } from './durable-storage';
import { StorageFailedError } from './errors';
import { FileOps } from './file-ops';
import {
  CapturingLogger,
  chunksOf,
  entries,
  expectEntry,
  removeDir,
  tempDir,
} from '../testing/storage-fixtures';

jest.setTimeout(60_000);

function ioError(code: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: injected failure`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

/** Node's fs with a switch: once `armed`, the chosen call fails (sync calls throw, async ones call back with the error). */
class FaultyFs {
  armed: null | { op: 'writeSync' | 'fdatasync' | 'fsync' | 'write'; code: string; pathIncludes?: string } =
    null;
  private readonly paths = new Map<number, string>();
  readonly ops: FileOps;

  constructor() {
    const hit = (op: string, fd: number) => {
      const a = this.armed;
      return (
        a !== null &&
        a.op === op &&
        (a.pathIncludes === undefined || (this.paths.get(fd) ?? '').includes(a.pathIncludes))
      );
    };
    const openSync = ((p: fs.PathLike, flags?: fs.OpenMode, mode?: fs.Mode) => {
      const fd = fs.openSync(p, flags ?? 'r', mode);
      this.paths.set(fd, String(p));
      return fd;
    }) as typeof fs.openSync;
    const writeSync = ((fd: number, ...rest: unknown[]) => {
      if (hit('writeSync', fd)) throw ioError(this.armed!.code);
      return (fs.writeSync as (...a: unknown[]) => number)(fd, ...rest);
    }) as typeof fs.writeSync;
    const fdatasync = ((fd: number, cb: fs.NoParamCallback) => {
      if (hit('fdatasync', fd)) {
        const code = this.armed!.code;
        setImmediate(() => cb(ioError(code)));
        return;
      }
      fs.fdatasync(fd, cb);
    }) as typeof fs.fdatasync;
    const fsync = ((fd: number, cb: fs.NoParamCallback) => {
      if (hit('fsync', fd)) {
        const code = this.armed!.code;
        setImmediate(() => cb(ioError(code)));
        return;
      }
      fs.fsync(fd, cb);
    }) as typeof fs.fsync;
    const write = ((fd: number, ...rest: unknown[]) => {
      if (hit('write', fd)) {
        const cb = rest[rest.length - 1] as (e: Error) => void;
        const code = this.armed!.code;
        setImmediate(() => cb(ioError(code)));
        return;
      }
      (fs.write as (...a: unknown[]) => void)(fd, ...rest);
    }) as typeof fs.write;
    this.ops = { ...fs, openSync, writeSync, fdatasync, fsync, write };
  }
}

describe('write failures (ENOSPC, EIO)', () => {
  let dir: string;
  let logger: CapturingLogger;
  let faulty: FaultyFs;
  const small: DurableStorageOptions = { segmentBytes: 4096, cacheEntries: 16 };
  const open = () => DurableStorage.open(dir, { ...small, logger, fileOps: faulty.ops });

  beforeEach(() => {
    dir = tempDir('storage-failure-');
    logger = new CapturingLogger();
    faulty = new FaultyFs();
  });
  afterEach(() => removeDir(dir));

  async function expectDurableAfterReopen(last: number): Promise<void> {
    const r = await DurableStorage.open(dir, { ...small, logger: new CapturingLogger() });
    expect(r.lastIndex()).toBeGreaterThanOrEqual(last);
    r.entries(1, last + 1, 1 << 20).forEach((e, k) => expectEntry(e, k + 1));
    await r.close();
  }

  test('ENOSPC on a log write rejects that persist and every later one, and acknowledges nothing more', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 20) });
    faulty.armed = { op: 'writeSync', code: 'ENOSPC', pathIncludes: '.seg' };
    const failed = s.persist({ entries: entries(21, 25) });
    await expect(failed).rejects.toBeInstanceOf(StorageFailedError);
    await expect(failed).rejects.toThrow(/ENOSPC.*no more writes are accepted/);
    faulty.armed = null; // even with the disk back, the storage stays failed until restarted
    await expect(s.persist({ entries: entries(21, 22) })).rejects.toThrow(/ENOSPC/);
    await expect(
      s.persist({ hardState: { term: 2, vote: null, commit: 0 }, entries: [] }),
    ).rejects.toBeInstanceOf(StorageFailedError);
    expect(s.lastIndex()).toBe(20);
    expect(s.failure()?.message).toMatch(/while writing the log/);
    expect(logger.has(/storage failed \(ENOSPC\)/)).toBe(true);
    await s.close();
    await expectDurableAfterReopen(20);
  });

  test('EIO from fdatasync rejects every batch it covered and those queued behind it', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 5) });
    faulty.armed = { op: 'fdatasync', code: 'EIO' };
    const calls = [
      s.persist({ entries: entries(6, 8) }),
      s.persist({ entries: entries(9, 9) }),
      s.persist({ entries: entries(10, 12) }),
    ];
    const results = await Promise.allSettled(calls);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(StorageFailedError);
      expect(String((r as PromiseRejectedResult).reason)).toMatch(/EIO.*fdatasync/);
    }
    expect(s.lastIndex()).toBe(5);
    await expect(s.compact(1)).rejects.toBeInstanceOf(StorageFailedError);
    await s.close();
    await expectDurableAfterReopen(5);
  });

  test('a failed hard-state write is never acknowledged and fails the storage', async () => {
    const s = await open();
    await s.persist({ hardState: { term: 1, vote: 'a', commit: 0 }, entries: entries(1, 3) });
    faulty.armed = { op: 'fsync', code: 'EIO', pathIncludes: 'hardstate' };
    await expect(
      s.persist({ hardState: { term: 2, vote: 'b', commit: 0 }, entries: entries(4, 4) }),
    ).rejects.toThrow(/EIO.*hard state/);
    await expect(s.persist({ entries: entries(5, 5) })).rejects.toBeInstanceOf(StorageFailedError);
    expect(s.durableHardState()).toEqual({ term: 1, vote: 'a', commit: 0 });
    await s.close();
    const r = await DurableStorage.open(dir, { ...small, logger });
    expect(r.initialState().hardState.term).toBe(1);
    await r.close();
  });

  test('ENOSPC while creating the next segment fails the storage', async () => {
    const s = await DurableStorage.open(dir, { ...small, logger, fileOps: faulty.ops, preallocate: true });
    await s.persist({ entries: entries(1, 60) });
    await s.whenIdle();
    // The next batch does not fit: the roll seals the segment (sidecar write) and creates the next one.
    faulty.armed = { op: 'writeSync', code: 'ENOSPC', pathIncludes: '.idx' };
    await expect(s.persist({ entries: entries(61, 80) })).rejects.toThrow(/ENOSPC/);
    expect(s.lastIndex()).toBe(60);
    await s.close();
    await expectDurableAfterReopen(60);
  });

  test('a failed snapshot write fails the storage and publishes nothing', async () => {
    const s = await open();
    await s.persist({ entries: entries(1, 10) });
    faulty.armed = { op: 'write', code: 'ENOSPC', pathIncludes: 'tmp-' };
    const meta = { index: 5, term: 1, config: { voters: [], outgoing: [], learners: [], addresses: {} } };
    await expect(s.saveSnapshot(meta, chunksOf(Buffer.alloc(10_000, 1), 1000))).rejects.toThrow(
      /ENOSPC.*snapshot/,
    );
    expect(s.snapshotMeta().index).toBe(0);
    await expect(s.persist({ entries: entries(11, 11) })).rejects.toBeInstanceOf(StorageFailedError);
    await s.close();
    const r = await DurableStorage.open(dir, { ...small, logger });
    expect(r.snapshotMeta().index).toBe(0);
    expect(r.lastIndex()).toBe(10);
    await r.close();
  });
});
