import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Prng } from '@app/consensus/testing';
import { BlockCache } from './block-cache';
import { KvBlock, KvRunReader, writeKvRun } from './kv-run-file';
import { MergeJob, runMergeJob } from './merge-job';
import { MergeThread } from './merge-thread';
import { compareKey, RunEntry, RunInfo, RunReader, writeRun } from './run-file';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'merge-thread-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Three index runs, oldest first, over overlapping streams (a stream's revisions each in one run). */
async function indexRuns(prng: Prng): Promise<{ runs: { file: string; info: RunInfo }[]; all: RunEntry[] }> {
  const all: RunEntry[] = [];
  const next = new Map<string, number>();
  const runs: { file: string; info: RunInfo }[] = [];
  let position = 0;
  for (let r = 0; r < 3; r++) {
    const entries: RunEntry[] = [];
    for (let i = 0; i < 3000; i++) {
      const id = `order-${prng.int(0, 1999)}`;
      const rev = next.get(id) ?? 0;
      next.set(id, rev + 1);
      entries.push([id, rev, position++]);
    }
    entries.sort((a, b) => compareKey(a[0], a[1], b[0], b[1]));
    all.push(...entries);
    const name = `000000000${r}.run`;
    const file = path.join(dir, name);
    runs.push({ file, info: await writeRun(file, name, entries, 3000, false) });
  }
  all.sort((a, b) => compareKey(a[0], a[1], b[0], b[1]));
  return { runs, all };
}

/** Three key → value runs, oldest first, where later runs overwrite some keys. */
async function kvRuns(
  prng: Prng,
): Promise<{ runs: { file: string; info: RunInfo }[]; model: Map<string, string> }> {
  const model = new Map<string, string>();
  const runs: { file: string; info: RunInfo }[] = [];
  for (let r = 0; r < 3; r++) {
    const pairs = new Map<string, string>();
    for (let i = 0; i < 2000; i++) pairs.set(`k-${prng.int(0, 4999)}`, JSON.stringify({ r, i }));
    const sorted = [...pairs.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (const [k, v] of sorted) model.set(k, v);
    const name = `p-000000000${r}.run`;
    const file = path.join(dir, name);
    runs.push({ file, info: await writeKvRun(file, name, sorted, sorted.length, 100 * r, false) });
  }
  return { runs, model };
}

function job(kind: MergeJob['kind'], inputs: { file: string; info: RunInfo }[], name: string): MergeJob {
  return {
    kind,
    inputs,
    out: { file: path.join(dir, name), name },
    keysMax: inputs.reduce((n, r) => n + r.info.entries, 0),
    asOf: inputs[inputs.length - 1].info.maxPosition,
    sync: false,
  };
}

describe('merges on the merge thread', () => {
  it('write the same runs as merges on the event loop: every entry once, the newest value of a key', async () => {
    const thread = new MergeThread(50);
    try {
      const prng = new Prng(7);
      const { runs: idx, all } = await indexRuns(prng);
      const onThread = await thread.run(job('index', idx, '0000000010.run'));
      const onLoop = await runMergeJob(job('index', idx, '0000000011.run'), () => 2);
      expect(thread.starts).toBe(1);
      // Byte for byte the same file.
      expect(onThread.crc32c).toBe(onLoop.crc32c);
      expect({ ...onThread, name: '' }).toEqual({ ...onLoop, name: '' });
      const reader = RunReader.open(path.join(dir, onThread.name), onThread.name, new BlockCache(0));
      expect([...reader.entries()].map((e) => [...e])).toEqual(all);
      reader.close();

      const { runs: kv, model } = await kvRuns(prng);
      const kvOnThread = await thread.run(job('kv', kv, 'p-0000000010.run'));
      const kvOnLoop = await runMergeJob(job('kv', kv, 'p-0000000011.run'), () => 2);
      expect(kvOnThread.crc32c).toBe(kvOnLoop.crc32c);
      expect(kvOnThread.maxPosition).toBe(200);
      const kvReader = KvRunReader.open(
        path.join(dir, kvOnThread.name),
        kvOnThread,
        new BlockCache<KvBlock>(0),
      );
      expect(new Map(kvReader.entries())).toEqual(model);
      expect([...kvReader.entries()].map(([k]) => k)).toEqual([...model.keys()].sort());
      kvReader.close();
    } finally {
      await thread.stop();
    }
  }, 60_000);

  it('a failed merge rejects with its reason and leaves no output; the thread goes on, and ends when idle', async () => {
    const thread = new MergeThread(50);
    try {
      const { runs } = await indexRuns(new Prng(8));
      const missing = { file: path.join(dir, 'gone.run'), info: { ...runs[0].info, name: 'gone.run' } };
      await expect(thread.run(job('index', [runs[0], missing], '0000000020.run'))).rejects.toThrow(
        /ENOENT: no such file.*gone\.run/,
      );
      expect(fs.existsSync(path.join(dir, '0000000020.run'))).toBe(false);
      expect(fs.existsSync(path.join(dir, '0000000020.run.tmp'))).toBe(false);
      const ok = await thread.run(job('index', runs, '0000000021.run'));
      expect(ok.entries).toBe(9000);
      expect(thread.starts).toBe(1);
      expect(thread.running).toBe(true);
      // Idle for longer than its idle time: the thread ends; the next merge starts another.
      const deadline = Date.now() + 5000;
      while (thread.running && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(thread.running).toBe(false);
      await thread.run(job('index', runs.slice(1), '0000000022.run'));
      expect(thread.starts).toBe(2);
    } finally {
      await thread.stop();
    }
  }, 60_000);

  it('a thread that dies fails the merges under way, and the next merge starts a new one', async () => {
    const thread = new MergeThread(10_000);
    try {
      const { runs } = await indexRuns(new Prng(9));
      const under = thread.run(job('index', runs, '0000000030.run'));
      await thread.stop();
      await expect(under).rejects.toThrow(/merge thread/);
      const again = await thread.run(job('index', runs, '0000000031.run'));
      expect(again.entries).toBe(9000);
      expect(thread.starts).toBe(2);
    } finally {
      await thread.stop();
    }
  }, 60_000);
});
