import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BlockCache } from './block-cache';
import { mergeRuns } from './merge-thread';
import { mergeSliceMs, Merges, Slicer, writerSliceMs } from './yield';
import { BATCH_ENTRIES, Batches, RUN_SUFFIX, RunEntry, RunInfo, RunReader, writeRun } from './run-file';

/**
 * The stream index on disk: stream id → the positions of its events by revision, in bounded memory.
 *
 * New entries go to an in-memory table; at `memtableEntriesMax` it is frozen and written in the background
 * as an immutable sorted run (run-file.ts), then dropped. Lookups ask the table, the frozen tables, then
 * the runs newest first; each run answers "not here" from its Bloom filter for almost every absent stream,
 * so the common question of an append to a new stream costs no disk read. Blocks read from runs are kept in
 * one LRU cache of `blockCacheBytes`. The newest runs are merged in the background (`runsPerMerge`); only
adjacent runs are merged, so the newest run that holds a stream always holds its last revision.
 *
 * Crash safety: the index is derived from the event files. `index.json` names the runs and the last
 * position they cover (`indexedThrough`), written only after the runs it names are durable; the tables in
 * memory are lost in a crash and the owner re-appends the events after `indexedThrough` on open.
 */

export interface DiskStreamIndexOptions {
  /** Entries held in memory before they are written as a run. */
  memtableEntriesMax: number;
  /** Bytes of decoded run blocks kept in memory. */
  blockCacheBytes: number;
  /**
   * Adjacent runs are merged into one when this many of similar size (within 4x) are side by side: a
   * size-tiered scheme, so an entry is rewritten about log4(entries / memtableEntriesMax) times.
   */
  runsPerMerge: number;
  /**
   * fsync runs and the manifest (an index reopened from its own directory after a crash needs them). An
   * index that is derived state, rebuilt from snapshot cuts that fsync the runs they link (the event
   * store's), skips them: at 2M streams those fsyncs of big merged runs held the threads that the Raft log's
   * and the event files' writes wait for.
   */
  durable: boolean;
  /** Merge on the process's merge thread (merge-thread.ts) rather than in slices on the event loop. */
  mergeThread: boolean;
}

export const DEFAULT_DISK_STREAM_INDEX_OPTIONS: DiskStreamIndexOptions = {
  memtableEntriesMax: 65_536,
  blockCacheBytes: 32 * 1024 * 1024,
  runsPerMerge: 4,
  durable: true,
  mergeThread: true,
};

const MANIFEST = 'index.json';
const FORMAT = 'stream-index/1';

interface Manifest {
  format: typeof FORMAT;
  runs: RunInfo[];
  /** The last event position the runs cover (-1: none). */
  indexedThrough: number;
  streams: number;
  nextRun: number;
}

/** Entries of one stream in a table: revisions firstRev.. at these positions. */
interface TableStream {
  firstRev: number;
  positions: number[];
}

class Table {
  readonly streams = new Map<string, TableStream>();
  entries = 0;
  maxPosition = -1;
  /** Streams created while this table was the live one. */
  newStreams = 0;
}

export class DiskStreamIndex {
  private live = new Table();
  /** Tables being written as runs, oldest first. */
  private frozen: Table[] = [];
  /** Runs, oldest first. */
  private runs: RunReader[];
  private readonly cache: BlockCache;
  private manifest: Manifest;
  /** The number of the next run file (the manifest stores it as `nextRun`). */
  private runNumber = 0;
  private writing: Promise<void> = Promise.resolve();
  private readonly merges: Merges<RunReader>;
  private failure: Error | null = null;
  private lastPosition: number;
  private streamCount: number;

  private constructor(
    private readonly dir: string,
    private readonly opts: DiskStreamIndexOptions,
    manifest: Manifest,
    runs: RunReader[],
    cache: BlockCache,
  ) {
    this.merges = new Merges<RunReader>(
      () => this.runs,
      this.opts.runsPerMerge,
      this.opts.memtableEntriesMax,
      (window) => this.merge(window),
      () => this.failure !== null,
    );
    this.manifest = manifest;
    this.runs = runs;
    this.cache = cache;
    this.lastPosition = manifest.indexedThrough;
    this.streamCount = manifest.streams;
  }

  /** Opens the index in `dir` (created if absent). Leftovers of an interrupted write or merge are removed. */
  static open(dir: string, opts: Partial<DiskStreamIndexOptions> = {}): DiskStreamIndex {
    const o = { ...DEFAULT_DISK_STREAM_INDEX_OPTIONS, ...opts };
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, MANIFEST);
    const manifest: Manifest = fs.existsSync(file)
      ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest)
      : { format: FORMAT, runs: [], indexedThrough: -1, streams: 0, nextRun: 1 };
    if (manifest.format !== FORMAT)
      throw new Error(`stream index: ${file} has format ${String(manifest.format)}, expected ${FORMAT}`);
    const named = new Set(manifest.runs.map((r) => r.name));
    for (const name of fs.readdirSync(dir)) {
      if (name === MANIFEST || named.has(name)) continue;
      // A run written but not yet in the manifest, a temporary file, or a run merged away: derived data.
      fs.rmSync(path.join(dir, name), { force: true });
    }
    const cache = new BlockCache(o.blockCacheBytes);
    const runs = manifest.runs.map((r) => RunReader.open(path.join(dir, r.name), r.name, cache, r.crc32c));
    return new DiskStreamIndex(dir, o, manifest, runs, cache);
  }

  get directory(): string {
    return this.dir;
  }

  /** The last event position appended (the caller re-appends the events after it after a crash). */
  get indexedThrough(): number {
    return this.lastPosition;
  }

  /** The position the durable runs cover: after a crash the index reopens at this point. */
  get durableThrough(): number {
    return this.manifest.indexedThrough;
  }

  size(): number {
    return this.streamCount;
  }

  /** The stream's last revision, -1 when it does not exist. */
  lastRevision(id: string): number {
    const t = this.inTables(id);
    if (t !== undefined) return t.firstRev + t.positions.length - 1;
    for (let r = this.runs.length - 1; r >= 0; r--) {
      const rev = this.runs[r].lastRevision(id);
      if (rev >= 0) return rev;
    }
    return -1;
  }

  /** Records the stream's next revision at `position` (positions only grow); returns that revision. */
  append(id: string, position: number): number {
    this.check();
    if (!(position > this.lastPosition))
      throw new Error(`stream index: position ${position} does not follow ${this.lastPosition}`);
    let s = this.live.streams.get(id);
    if (s === undefined) {
      const last = this.lastRevision(id);
      if (last < 0) {
        this.streamCount++;
        this.live.newStreams++;
      }
      s = { firstRev: last + 1, positions: [] };
      this.live.streams.set(id, s);
    }
    s.positions.push(position);
    this.live.entries++;
    this.live.maxPosition = position;
    this.lastPosition = position;
    if (this.live.entries >= this.opts.memtableEntriesMax) this.freeze();
    return s.firstRev + s.positions.length - 1;
  }

  /** Positions of revisions from..to (inclusive) that exist, in revision order. */
  positions(id: string, from: number, to: number): number[] {
    const found = new Map<number, number>();
    for (const r of this.runs) r.collect(id, from, to, found);
    for (const t of [...this.frozen, this.live]) {
      const s = t.streams.get(id);
      if (s === undefined) continue;
      const lo = Math.max(from, s.firstRev);
      const hi = Math.min(to, s.firstRev + s.positions.length - 1);
      for (let rev = lo; rev <= hi; rev++) found.set(rev, s.positions[rev - s.firstRev]);
    }
    return [...found.entries()].sort((a, b) => a[0] - b[0]).map(([, p]) => p);
  }

  /**
   * The index as of `lastPosition` (the last position appended: call it synchronously at the cut point),
   * as run files hard-linked into `pinDir` (so a merge deleting them meanwhile does no harm). Writes the
   * entries in memory as a run first.
   */
  async checkpoint(lastPosition: number, pinDir: string): Promise<RunInfo[]> {
    if (lastPosition !== this.lastPosition)
      throw new Error(
        `stream index: checkpoint at ${lastPosition}, but the index is at ${this.lastPosition}`,
      );
    await this.flush();
    // Synchronously from here: no merge can swap runs between reading the list and linking the files.
    const runs = this.runs.map((r) => r.info);
    const beyond = runs.find((r) => r.maxPosition > lastPosition);
    if (beyond !== undefined)
      throw new Error(`stream index: run ${beyond.name} holds positions past the checkpoint ${lastPosition}`);
    fs.mkdirSync(pinDir, { recursive: true });
    for (const r of runs) fs.linkSync(path.join(this.dir, r.name), path.join(pinDir, r.name));
    return runs;
  }

  /**
   * Makes `dir` an index holding exactly `runs` (files in `fromDir`, hard-linked) through `indexedThrough`,
   * replacing whatever was there, and opens it. How a cut's index becomes the live one.
   */
  static install(
    dir: string,
    fromDir: string,
    runs: RunInfo[],
    indexedThrough: number,
    streams: number,
    opts: Partial<DiskStreamIndexOptions> = {},
  ): DiskStreamIndex {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    for (const r of runs) fs.linkSync(path.join(fromDir, r.name), path.join(dir, r.name));
    const nextRun = 1 + runs.reduce((n, r) => Math.max(n, parseInt(r.name, 10) || 0), 0);
    const manifest: Manifest = { format: FORMAT, runs, indexedThrough, streams, nextRun };
    const file = path.join(dir, MANIFEST);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(manifest));
    fs.renameSync(`${file}.tmp`, file);
    return DiskStreamIndex.open(dir, opts);
  }

  /** Writes everything appended so far as runs and waits until the manifest names them (durable). */
  async flush(): Promise<void> {
    if (this.live.entries > 0) this.freeze();
    await this.writing;
    this.check();
  }

  /** Waits for background writes and merges, then closes the runs. Unwritten entries are dropped (derived data). */
  async close(): Promise<void> {
    await this.whenIdle();
    for (const r of this.runs) r.close();
    this.runs = [];
  }

  stats(): {
    runs: number;
    runBytes: number;
    tableEntries: number;
    cacheBytes: number;
    cacheHits: number;
    cacheMisses: number;
    residentBytes: number;
  } {
    let runBytes = 0;
    let resident = 0;
    for (const r of this.runs) {
      runBytes += r.info.bytes;
      resident += r.residentBytes();
    }
    const tableEntries = this.live.entries + this.frozen.reduce((n, t) => n + t.entries, 0);
    return {
      runs: this.runs.length,
      runBytes,
      tableEntries,
      cacheBytes: this.cache.size.bytes,
      cacheHits: this.cache.hits,
      cacheMisses: this.cache.misses,
      residentBytes: resident,
    };
  }

  // ---- internals -----------------------------------------------------------------------------------

  private inTables(id: string): TableStream | undefined {
    const s = this.live.streams.get(id);
    if (s !== undefined) return s;
    for (let k = this.frozen.length - 1; k >= 0; k--) {
      const f = this.frozen[k].streams.get(id);
      if (f !== undefined) return f;
    }
    return undefined;
  }

  private check(): void {
    if (this.failure !== null) throw this.failure;
  }

  /** The live table becomes frozen and is written as a run after those already queued. */
  private freeze(): void {
    const table = this.live;
    this.live = new Table();
    this.frozen.push(table);
    this.writing = this.writing.then(() => this.writeTable(table));
    this.writing.catch((e: Error) => {
      this.failure ??= new Error(`stream index: writing a run failed: ${e.message}`);
    });
  }

  private async writeTable(table: Table): Promise<void> {
    if (this.failure !== null) return;
    const name = this.nextRunName();
    const file = path.join(this.dir, name);
    const info = await writeRun(
      file,
      name,
      tableEntries(table, () => this.frozen.length),
      table.streams.size,
      this.opts.durable,
    );
    const reader = RunReader.open(file, name, this.cache, info.crc32c);
    await this.saveManifest({
      ...this.manifest,
      runs: [...this.manifest.runs, info],
      indexedThrough: table.maxPosition,
      streams: this.manifest.streams + table.newStreams,
    });
    this.runs.push(reader);
    this.frozen.shift();
    this.merges.start();
  }

  /** Waits until no run is being written or merged (tests, benchmarks, shutdown). */
  async whenIdle(): Promise<void> {
    for (;;) {
      await this.writing.catch(() => {});
      if (this.merges.active === 0) return;
      await this.merges.settled();
    }
  }

  private nextRunName(): string {
    // Not through this.manifest: a manifest being saved meanwhile (a swap) would put an older count back,
    // and two runs (say, of two merges at once) would get one name.
    const n = Math.max(this.manifest.nextRun, this.runNumber);
    this.runNumber = n + 1;
    return `${String(n).padStart(10, '0')}${RUN_SUFFIX}`;
  }

  /**
   * Merges every run into one in the background; lookups use the old runs until the manifest names the
   * merged one. The swap runs in the write queue, so manifest writes never overlap.
   */
  private async merge(inputs: RunReader[]): Promise<void> {
    try {
      const name = this.nextRunName();
      const file = path.join(this.dir, name);
      const info = await mergeRuns(
        {
          kind: 'index',
          inputs: inputs.map((r) => ({ file: path.join(this.dir, r.info.name), info: r.info })),
          out: { file, name },
          keysMax: inputs.reduce((n, r) => n + r.info.streams, 0),
          asOf: -1,
          sync: this.opts.durable,
        },
        this.opts.mergeThread,
        () => mergeSliceMs(this.runs.length),
      );
      const reader = RunReader.open(file, name, this.cache, info.crc32c);
      const swap = this.writing.then(async () => {
        // The inputs are adjacent; runs written meanwhile come after them (they are newer).
        const at = this.runs.indexOf(inputs[0]);
        const runs = [...this.runs.slice(0, at), reader, ...this.runs.slice(at + inputs.length)];
        await this.saveManifest({ ...this.manifest, runs: runs.map((r) => r.info) });
        this.runs = runs;
        for (const r of inputs) {
          r.close();
          await fsp.rm(path.join(this.dir, r.info.name), { force: true });
        }
      });
      this.writing = swap;
      await swap;
    } catch (e) {
      this.failure ??= new Error(`stream index: merging runs failed: ${(e as Error).message}`);
    }
  }

  private async saveManifest(given: Manifest): Promise<void> {
    const m = { ...given, nextRun: Math.max(given.nextRun, this.runNumber) };
    const file = path.join(this.dir, MANIFEST);
    const tmp = `${file}.tmp`;
    const fh = await fsp.open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(m));
      if (this.opts.durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
    if (!this.opts.durable) {
      this.manifest = m;
      return;
    }
    const d = await fsp.open(this.dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
    this.manifest = { ...m, nextRun: Math.max(m.nextRun, this.runNumber) };
  }
}

/** A table's entries in key order, giving the event loop turns. */
/** The table's entries in key order, in batches; the slice is checked per batch, not per stream (few busy streams hold most entries). */
function tableEntries(table: Table, waiting: () => number): Batches<RunEntry> {
  return new Batches(
    (async function* () {
      const slicer = new Slicer(() => writerSliceMs(waiting()));
      const ids = [...table.streams.keys()].sort();
      let batch: RunEntry[] = [];
      for (let n = 0; n < ids.length; n++) {
        const id = ids[n];
        const s = table.streams.get(id)!;
        for (let k = 0; k < s.positions.length; k++) {
          batch.push([id, s.firstRev + k, s.positions[k]]);
          if (batch.length < BATCH_ENTRIES) continue;
          yield batch;
          batch = [];
          if (slicer.due()) await Slicer.yieldNow();
        }
      }
      if (batch.length > 0) yield batch;
    })(),
  );
}
