import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BlockCache } from '../storage/stream-runs/block-cache';
import { KvBlock, KvEntry, KvRunReader, writeKvRun } from '../storage/stream-runs/kv-run-file';
import { mergeRuns } from '../storage/stream-runs/merge-thread';
import { BATCH_ENTRIES, Batches, RUN_SUFFIX, RunInfo } from '../storage/stream-runs/run-file';
import { mergeSliceMs, Merges, Slicer, writerSliceMs } from '../storage/stream-runs/yield';

/** Where a partitioned projection keeps its partition states. */
export interface PartitionStates {
  /** A partition's state for reading (do not change it), undefined when there is none. */
  get(key: string): unknown;
  /**
   * A partition's state to fold an event into: the caller may change it in place, and then calls put()
   * with the result. undefined when there is none.
   */
  take(key: string): unknown;
  /** Stores a partition's new state after the projection folded the event at `position`. */
  put(key: string, state: unknown, isNew: boolean, position: number): void;
  /** Number of partitions. */
  size(): number;
  /** Up to `limit` partitions with keys after `after` (null: from the first), in key order. */
  page(after: string | null, limit: number): [string, unknown][];
}

/** Every partition in the heap: the store when no directory is configured (tests, small deployments). */
export class MemoryPartitions implements PartitionStates {
  readonly states = new Map<string, unknown>();

  get(key: string): unknown {
    return this.states.get(key);
  }

  take(key: string): unknown {
    return this.states.get(key);
  }

  put(key: string, state: unknown, isNew: boolean): void {
    if (isNew || this.states.get(key) !== state) this.states.set(key, state);
  }

  size(): number {
    return this.states.size;
  }

  page(after: string | null, limit: number): [string, unknown][] {
    const keys = [...this.states.keys()].filter((k) => after === null || k > after).sort();
    return keys.slice(0, limit).map((k) => [k, this.states.get(k)]);
  }
}

export interface PartitionStoreOptions {
  /** Partitions held as live objects before they are written out as a run. */
  memtableKeysMax: number;
  /** Adjacent runs of similar size merged at once (size-tiered, as the stream index does). */
  runsPerMerge: number;
  /** Merge on the process's merge thread (merge-thread.ts) rather than in slices on the event loop. */
  mergeThread: boolean;
}

export const DEFAULT_PARTITION_STORE_OPTIONS: PartitionStoreOptions = {
  memtableKeysMax: 16_384,
  runsPerMerge: 4,
  mergeThread: true,
};

/** A table frozen for writing: its states are never changed again (take() copies them out). */
interface Frozen {
  states: Map<string, unknown>;
  position: number;
}

/**
 * Partition states on disk with a bounded memory footprint, for projections with one partition per
 * stream (millions of them). Recently folded partitions are live objects in a table; at
 * `memtableKeysMax` the table is frozen and written in the background as an immutable key → JSON run
 * (kv-run-file.ts); lookups go table, frozen tables, then runs newest first, each run answering "not
 * here" from its Bloom filter for almost every key it lacks, its blocks read through a cache shared by
 * every store. Adjacent runs of similar size are merged in the background; the newest value of a key wins.
 *
 * The store is derived state without a manifest of its own: a snapshot cut hard-links its runs
 * (checkpoint()), a restart or snapshot install builds a store from those links (install()), and the
 * projection catches up from the cut's position by replay. Runs are therefore written without fsync;
 * the cut fsyncs the files it links.
 */
export class PartitionStore implements PartitionStates {
  private live = new Map<string, unknown>();
  private frozen: Frozen[] = [];
  private runs: KvRunReader[];
  private writing: Promise<void> = Promise.resolve();
  private readonly merges: Merges<KvRunReader>;
  private failure: Error | null = null;
  private count: number;
  private nextRun: number;
  private closed = false;

  private constructor(
    readonly directory: string,
    /** File name prefix of this store's runs (unique among the stores whose runs share a cut). */
    private readonly prefix: string,
    private readonly cache: BlockCache<KvBlock>,
    private readonly opts: PartitionStoreOptions,
    runs: RunInfo[],
    count: number,
  ) {
    this.merges = new Merges<KvRunReader>(
      () => this.runs,
      this.opts.runsPerMerge,
      this.opts.memtableKeysMax,
      (window) => this.merge(window),
      () => this.failure !== null || this.closed,
    );
    this.runs = runs.map((r) => KvRunReader.open(path.join(directory, r.name), r, cache));
    this.count = count;
    this.nextRun = 1 + runs.reduce((n, r) => Math.max(n, runNumber(r.name)), 0);
  }

  /**
   * A store in `dir` (emptied first) holding exactly `runs` (files in `fromDir`, hard-linked: a cut's) and
   * `count` partitions; with no runs, an empty store.
   */
  static install(
    dir: string,
    prefix: string,
    cache: BlockCache<KvBlock>,
    opts: Partial<PartitionStoreOptions> = {},
    from: { dir: string; runs: RunInfo[]; count: number } | null = null,
  ): PartitionStore {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    for (const r of from?.runs ?? []) fs.linkSync(path.join(from!.dir, r.name), path.join(dir, r.name));
    return new PartitionStore(
      dir,
      prefix,
      cache,
      { ...DEFAULT_PARTITION_STORE_OPTIONS, ...opts },
      from?.runs ?? [],
      from?.count ?? 0,
    );
  }

  size(): number {
    return this.count;
  }

  get(key: string): unknown {
    return this.find(key, false);
  }

  take(key: string): unknown {
    this.check();
    return this.find(key, true);
  }

  put(key: string, state: unknown, isNew: boolean, position: number): void {
    // JSON has no undefined: such a state is kept as null (what a checkpoint would turn it into).
    this.live.set(key, state === undefined ? null : state);
    if (isNew) this.count++;
    if (this.live.size >= this.opts.memtableKeysMax) this.freeze(position);
  }

  page(after: string | null, limit: number): [string, unknown][] {
    if (limit <= 0) return [];
    // Sources newest first: the tables (merged into one sorted list), then the runs.
    const mem = new Map<string, unknown>();
    for (const f of this.frozen)
      for (const [k, v] of f.states) if (after === null || k > after) mem.set(k, v);
    for (const [k, v] of this.live) if (after === null || k > after) mem.set(k, v);
    const memKeys = [...mem.keys()].sort();
    let m = 0;
    const its = this.runs
      .slice()
      .reverse()
      .map((r) => r.from(after));
    const heads = its.map((it) => it.next());
    const out: [string, unknown][] = [];
    while (out.length < limit) {
      let least: string | null = m < memKeys.length ? memKeys[m] : null;
      for (const h of heads) if (!h.done && (least === null || h.value[0] < least)) least = h.value[0];
      if (least === null) break;
      let value: unknown;
      let found = false;
      if (m < memKeys.length && memKeys[m] === least) {
        value = mem.get(least);
        found = true;
        m++;
      }
      for (let k = 0; k < heads.length; k++) {
        const h = heads[k];
        if (h.done || h.value[0] !== least) continue;
        if (!found) {
          value = JSON.parse(h.value[1]);
          found = true;
        }
        heads[k] = its[k].next();
      }
      out.push([least, value]);
    }
    return out;
  }

  /**
   * The store as it is now (call synchronously at the cut point, `position` being the projection's), as run
   * files hard-linked into `pinDir` so merges deleting them meanwhile do no harm.
   */
  async checkpoint(position: number, pinDir: string): Promise<{ runs: RunInfo[]; count: number }> {
    const count = this.count;
    if (this.live.size > 0) this.freeze(position);
    await this.writing;
    this.check();
    // Synchronously from here: no merge swaps runs between reading the list and linking the files.
    const runs = this.runs.map((r) => r.info);
    fs.mkdirSync(pinDir, { recursive: true });
    for (const r of runs) fs.linkSync(path.join(this.directory, r.name), path.join(pinDir, r.name));
    return { runs, count };
  }

  /** Waits for background writes and merges, closes the runs and removes the directory. */
  async close(): Promise<void> {
    this.closed = true;
    await this.whenIdle();
    for (const r of this.runs) r.close();
    this.runs = [];
    this.live.clear();
    this.frozen = [];
    await fsp.rm(this.directory, { recursive: true, force: true });
  }

  /** Tables frozen but not yet written as runs. */
  get backlog(): number {
    return this.frozen.length;
  }

  /** Resolves once every frozen table is written (merges may go on). */
  written(): Promise<void> {
    return this.writing.catch(() => {});
  }

  /** Waits until no run is being written or merged. */
  async whenIdle(): Promise<void> {
    for (;;) {
      await this.writing.catch(() => {});
      if (this.merges.active === 0) return;
      await this.merges.settled();
    }
  }

  stats(): { runs: number; runBytes: number; tableKeys: number; residentBytes: number } {
    let runBytes = 0;
    let resident = 0;
    for (const r of this.runs) {
      runBytes += r.info.bytes;
      resident += r.residentBytes();
    }
    const tableKeys = this.live.size + this.frozen.reduce((n, f) => n + f.states.size, 0);
    return { runs: this.runs.length, runBytes, tableKeys, residentBytes: resident };
  }

  // ---- internals ----

  /** The key's newest state: the table, the frozen tables (copied when `own`: they are being written), the runs. */
  private find(key: string, own: boolean): unknown {
    const v = this.live.get(key);
    if (v !== undefined) return v;
    for (let k = this.frozen.length - 1; k >= 0; k--) {
      const f = this.frozen[k].states.get(key);
      if (f === undefined) continue;
      return own && typeof f === 'object' && f !== null ? JSON.parse(JSON.stringify(f)) : f;
    }
    const text = this.inRuns(key);
    return text === undefined ? undefined : JSON.parse(text);
  }

  private inRuns(key: string): string | undefined {
    for (let r = this.runs.length - 1; r >= 0; r--) {
      const text = this.runs[r].get(key);
      if (text !== undefined) return text;
    }
    return undefined;
  }

  private check(): void {
    if (this.failure !== null) throw this.failure;
  }

  private freeze(position: number): void {
    const table: Frozen = { states: this.live, position };
    this.live = new Map();
    this.frozen.push(table);
    this.writing = this.writing.then(() => this.writeTable(table));
    this.writing.catch((e: Error) => {
      this.failure ??= new Error(`partition store ${this.directory}: writing a run failed: ${e.message}`);
    });
  }

  private async writeTable(table: Frozen): Promise<void> {
    // Written even when the store is closing: a checkpoint taken before the close waits for this table.
    if (this.failure !== null) return;
    const name = this.nextRunName();
    const file = path.join(this.directory, name);
    const info = await writeKvRun(
      file,
      name,
      encodeTable(table.states, () => this.frozen.length),
      table.states.size,
      table.position,
      false,
    );
    this.runs.push(KvRunReader.open(file, info, this.cache));
    this.frozen.shift();
    this.merges.start();
  }

  private nextRunName(): string {
    return `${this.prefix}${String(this.nextRun++).padStart(10, '0')}${RUN_SUFFIX}`;
  }

  /** Merges adjacent runs into one in the background; lookups use the inputs until the swap. */
  private async merge(inputs: KvRunReader[]): Promise<void> {
    try {
      const name = this.nextRunName();
      const file = path.join(this.directory, name);
      const info = await mergeRuns(
        {
          kind: 'kv',
          inputs: inputs.map((r) => ({ file: path.join(this.directory, r.info.name), info: r.info })),
          out: { file, name },
          keysMax: inputs.reduce((n, r) => n + r.info.entries, 0),
          asOf: inputs[inputs.length - 1].info.maxPosition,
          sync: false,
        },
        this.opts.mergeThread,
        () => mergeSliceMs(this.runs.length),
      );
      const reader = KvRunReader.open(file, info, this.cache);
      const swap = this.writing.then(async () => {
        const at = this.runs.indexOf(inputs[0]);
        this.runs = [...this.runs.slice(0, at), reader, ...this.runs.slice(at + inputs.length)];
        for (const r of inputs) {
          r.close();
          await fsp.rm(path.join(this.directory, r.info.name), { force: true });
        }
      });
      this.writing = swap;
      await swap;
    } catch (e) {
      this.failure ??= new Error(
        `partition store ${this.directory}: merging runs failed: ${(e as Error).message}`,
      );
    }
  }
}

function runNumber(name: string): number {
  const m = /(\d+)\.run$/.exec(name);
  return m ? parseInt(m[1], 10) : 0;
}

/** A frozen table's pairs in key order, encoded as JSON a slice at a time (the event loop gets turns). */
function encodeTable(states: Map<string, unknown>, backlog: () => number): Batches<KvEntry> {
  return new Batches(
    (async function* () {
      // Folds that outpace the writer pile frozen tables up (memory, and every lookup of a new key asks each):
      // the further behind, the longer the writer's turns, up to holding the event loop until it caught up.
      const slicer = new Slicer(() => writerSliceMs(backlog()));
      const keys = [...states.keys()].sort();
      let batch: KvEntry[] = [];
      for (let k = 0; k < keys.length; k++) {
        batch.push([keys[k], JSON.stringify(states.get(keys[k]) ?? null)]);
        if (batch.length < BATCH_ENTRIES) continue;
        yield batch;
        batch = [];
        if (slicer.due()) await Slicer.yieldNow();
      }
      if (batch.length > 0) yield batch;
    })(),
  );
}
