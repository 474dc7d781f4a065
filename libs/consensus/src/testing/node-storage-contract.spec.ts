import * as fs from 'fs';
import { DurableStorage } from '../storage/durable-storage';
import { FileOps } from '../storage/file-ops';
import { MemoryNodeStorage } from './memory-node-storage';
import { FsyncGate, describeNodeStorageContract } from './node-storage-contract';
import { CapturingLogger, removeDir, tempDir } from './storage-fixtures';

jest.setTimeout(60_000);

/** Node's fs, with the asynchronous fsyncs (the ones a persist waits for) going through `gate`. */
function gatedFs(gate: FsyncGate): FileOps {
  return {
    ...fs,
    fdatasync: ((fd: number, cb: fs.NoParamCallback) =>
      gate.pass(() => fs.fdatasync(fd, cb))) as typeof fs.fdatasync,
    fsync: ((fd: number, cb: fs.NoParamCallback) => gate.pass(() => fs.fsync(fd, cb))) as typeof fs.fsync,
  };
}

// DurableStorage: a fresh directory per storage. A crash is the process dying: the directory is copied as it
// is at that moment (what was written survives, fsynced or not: a process crash, not a power loss) and the
// copy is opened, while the original goes on. Small segments make compaction observable (it drops whole
// segment files); no preallocation, so no background writes race the copy.
const durable = (() => {
  const dirs: string[] = [];
  const opened: DurableStorage[] = [];
  const openDir = async (dir: string, gate: FsyncGate) => {
    const s = await DurableStorage.open(dir, {
      segmentBytes: 4096,
      cacheEntries: 16,
      preallocate: false,
      logger: new CapturingLogger(),
      fileOps: gatedFs(gate),
    });
    opened.push(s);
    return s;
  };
  return {
    open: (gate: FsyncGate) => {
      const dir = tempDir('contract-');
      dirs.push(dir);
      return openDir(dir, gate);
    },
    crash: (s: DurableStorage, gate: FsyncGate) => {
      const dir = tempDir('contract-crashed-');
      dirs.push(dir);
      fs.cpSync(s.dir, dir, { recursive: true });
      return openDir(dir, gate);
    },
    syncs: (s: DurableStorage) => s.stats().syncs,
    cleanup: async () => {
      await Promise.all(opened.splice(0).map((s) => s.close().catch(() => {})));
      for (const d of dirs.splice(0)) removeDir(d);
    },
  };
})();

// MemoryNodeStorage: its `sync` hook is the fsync; a crash is crashCopy() (only what was fsynced survives).
const memory = {
  open: async (gate: FsyncGate) => new MemoryNodeStorage({ sync: () => gate.wait() }),
  crash: async (s: MemoryNodeStorage, gate: FsyncGate) => s.crashCopy({ sync: () => gate.wait() }),
  syncs: (s: MemoryNodeStorage) => s.fsyncs,
  cleanup: async () => {},
};

describeNodeStorageContract('DurableStorage', durable);
describeNodeStorageContract('MemoryNodeStorage', memory);
