import { BlockCache } from './block-cache';
import { KvBlock, KvRunReader, KvWriteEntry, writeKvRun } from './kv-run-file';
import { compareKey, RunEntry, RunInfo, RunReader, writeRun } from './run-file';
import { CHECK_EVERY, Slicer } from './yield';

/**
 * One merge of adjacent runs into a new run, described by files only, so that it can run on another
 * thread (merge-thread.ts): nothing in it refers to a store's state. `inputs` are oldest first; of a key in
 * several, the newest input's entry wins. The output goes to `out.file` through a temporary name.
 */
export interface MergeJob {
  /** `index`: stream index runs (run-file.ts); `kv`: key → value runs (kv-run-file.ts). */
  kind: 'index' | 'kv';
  inputs: { file: string; info: RunInfo }[];
  out: { file: string; name: string };
  /** Sizes the output's Bloom filter: the distinct keys it may hold at most. */
  keysMax: number;
  /** kv runs: the event position the values are as of (the newest input's). */
  asOf: number;
  /** fsync the output before it is renamed into place. */
  sync: boolean;
}

/**
 * Runs a merge. `sliceMs` given: on the caller's event loop, giving way every slice (the fallback when no
 * merge thread is available); absent: without ever yielding but for file writes (on the merge thread).
 */
export async function runMergeJob(job: MergeJob, sliceMs?: () => number): Promise<RunInfo> {
  // Inputs are read block after block without a cache (readBlockReusing); an empty one is needed to open them.
  if (job.kind === 'index') {
    const runs = job.inputs.map((r) => RunReader.open(r.file, r.info.name, new BlockCache(0), r.info.crc32c));
    try {
      const merged = mergeNewestWins<RunEntry>(
        runs.map((r) => r.entries()),
        (a, b) => compareKey(a[0], a[1], b[0], b[1]),
      );
      return await writeRun(job.out.file, job.out.name, sliced(merged, sliceMs), job.keysMax, job.sync);
    } finally {
      for (const r of runs) r.close();
    }
  }
  const runs = job.inputs.map((r) => KvRunReader.open(r.file, r.info, new BlockCache<KvBlock>(0)));
  try {
    const merged = mergeNewestWins<[string, Buffer]>(
      runs.map((r) => r.rawEntries()),
      (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0),
    );
    return await writeKvRun(
      job.out.file,
      job.out.name,
      sliced<KvWriteEntry>(merged, sliceMs),
      job.keysMax,
      job.asOf,
      job.sync,
    );
  } finally {
    for (const r of runs) r.close();
  }
}

/**
 * A k-way merge of sorted sources, oldest first: items in `compare` order; of items that compare equal (one
 * key in several runs), the newest source's is yielded and the others are dropped. Few sources: a linear
 * pick beats a heap.
 */
export function* mergeNewestWins<T>(sources: Iterator<T>[], compare: (a: T, b: T) => number): Generator<T> {
  const heads = sources.map((it) => it.next());
  for (;;) {
    let best = -1;
    for (let k = 0; k < heads.length; k++) {
      const h = heads[k];
      if (h.done) continue;
      // Ties go to the later (newer) source.
      if (best < 0 || compare(h.value, heads[best].value as T) <= 0) best = k;
    }
    if (best < 0) return;
    const item = heads[best].value as T;
    for (let k = 0; k < heads.length; k++) {
      const h = heads[k];
      if (k === best || h.done || compare(h.value, item) !== 0) continue;
      heads[k] = sources[k].next();
    }
    // Advanced only after the item is taken: a source may reuse one buffer for its blocks, and the item's
    // bytes are in it until the source reads its next block.
    yield item;
    heads[best] = sources[best].next();
  }
}

/** The items as they are (no sliceMs), or as an async iteration giving the event loop a turn every slice. */
function sliced<T>(items: Iterable<T>, sliceMs?: () => number): Iterable<T> | AsyncIterable<T> {
  if (sliceMs === undefined) return items;
  return (async function* () {
    const slicer = new Slicer(sliceMs);
    let n = 0;
    for (const item of items) {
      yield item;
      if (++n % CHECK_EVERY === 0 && slicer.due()) await Slicer.yieldNow();
    }
  })();
}
