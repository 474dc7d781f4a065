import * as fs from 'node:fs';
import * as path from 'node:path';
import { Logger } from '../logger';
import { BlockCache } from '../storage/stream-runs/block-cache';
import { KvBlock, KvRunReader } from '../storage/stream-runs/kv-run-file';
import { RunInfo } from '../storage/stream-runs/run-file';
import { EventEnvelope } from '../types';
import { encodeCheckpoints } from './checkpoint-codec';
import { ProjectionDefinition, ProjectionInfo, ProjectionStatus, ProjectionView } from './define';
import { MemoryPartitions, PartitionStates, PartitionStore, PartitionStoreOptions } from './partition-store';

export interface ProjectionEngineOptions {
  logger?: Logger;
  /** Events read per replay step while rebuilding. */
  replayChunkEvents?: number;
  /** A replay turn yields the event loop after this long (apply is never blocked for longer). */
  replaySliceMs?: number;
  /** Interval of progress log lines while rebuilding. */
  progressLogMs?: number;
}

/** Partition states on disk (see PartitionStore): where, and the memory they may use. */
export interface ProjectionStorageOptions extends Partial<PartitionStoreOptions> {
  dir: string;
  /** Bytes of decoded run blocks kept in memory, shared by every partitioned projection. */
  cacheBytes: number;
}

/** Default for ProjectionStorageOptions.cacheBytes. */
export const DEFAULT_PROJECTION_CACHE_BYTES = 32 * 1024 * 1024;

/** Most partitions one GET of a projection returns; the rest come page by page. */
export const PROJECTION_PAGE_MAX = 10_000;

/** Where rebuilds read events from (the state machine's event files). */
export interface ProjectionSource {
  lastPosition(): number;
  /** Visits positions from..to ascending until visit returns false. */
  scan(from: number, to: number, visit: (e: EventEnvelope) => boolean): number;
}

/** A projection's durable checkpoint inside a snapshot cut. */
export interface ProjectionCheckpoint {
  name: string;
  version: number;
  position: number;
  status: ProjectionStatus;
  error?: string;
  state?: unknown;
  partitions?: [string, unknown][];
  /** Partition states as run files in the cut (stored on disk; `partitions` is then absent). */
  runs?: RunInfo[];
  /** Number of partitions held by `runs`. */
  partitionsInRuns?: number;
}

interface Runtime {
  def: ProjectionDefinition<any>;
  status: ProjectionStatus;
  position: number;
  state: unknown;
  partitions: PartitionStates | null;
  error?: string;
  rebuild: { startedAtMs: number; startPosition: number; lastLogMs: number } | null;
}

const DEFAULTS = { replayChunkEvents: 8192, replaySliceMs: 25, progressLogMs: 2000 };

/**
 * Keeps projections in memory. Running projections are fed by the state machine on every apply;
 * rebuilding ones (after reset, a new definition, or a changed version) catch up by replaying the event
 * files in the background, in slices of at most `replaySliceMs`, and switch to running in the same tick
 * they reach the store's last position (so no event is missed or folded twice).
 */
export class ProjectionEngine {
  private readonly runtimes = new Map<string, Runtime>();
  private readonly opts: typeof DEFAULTS;
  private readonly logger?: Logger;
  private source: ProjectionSource | null = null;
  private pumpTimer: NodeJS.Immediate | null = null;
  /** Set while replay waits for partition stores to write their frozen tables (backpressure). */
  private pumpWait: Promise<void> | null = null;
  private idleWaiters: (() => void)[] = [];
  private storage: (ProjectionStorageOptions & { cache: BlockCache<KvBlock> }) | null = null;
  private storeSeq = 0;

  constructor(definitions: ProjectionDefinition<any>[], opts: ProjectionEngineOptions = {}) {
    this.logger = opts.logger;
    this.opts = {
      replayChunkEvents: opts.replayChunkEvents ?? DEFAULTS.replayChunkEvents,
      replaySliceMs: opts.replaySliceMs ?? DEFAULTS.replaySliceMs,
      progressLogMs: opts.progressLogMs ?? DEFAULTS.progressLogMs,
    };
    for (const def of definitions) {
      if (this.runtimes.has(def.name))
        throw new Error(`ProjectionEngine: projection '${def.name}' registered twice`);
      this.runtimes.set(def.name, this.fresh(def));
    }
  }

  names(): string[] {
    return [...this.runtimes.keys()];
  }

  has(name: string): boolean {
    return this.runtimes.has(name);
  }

  list(): ProjectionInfo[] {
    const last = this.source?.lastPosition() ?? -1;
    return [...this.runtimes.values()].map((rt) => this.info(rt, last));
  }

  /**
   * A projection's state. A partitioned one gives at most `page.limit` partitions (default and most:
   * PROJECTION_PAGE_MAX) with keys after `page.after`, in key order, and `next` (the key to pass as `after`)
   * when more follow.
   */
  get(name: string, page: { after?: string; limit?: number } = {}): ProjectionView | undefined {
    const rt = this.runtimes.get(name);
    if (!rt) return undefined;
    if (!rt.partitions) return { name, position: rt.position, state: rt.state };
    const limit = Math.min(PROJECTION_PAGE_MAX, Math.max(1, page.limit ?? PROJECTION_PAGE_MAX));
    const rows = rt.partitions.page(page.after ?? null, limit + 1);
    const more = rows.length > limit;
    if (more) rows.length = limit;
    const view: ProjectionView = {
      name,
      position: rt.position,
      state: Object.fromEntries(rows),
    };
    if (more) view.next = rows[rows.length - 1][0];
    return view;
  }

  /** One partition's state; undefined if the projection is unknown, not partitioned, or has no such partition. */
  getPartition(name: string, key: string): unknown | undefined {
    return this.runtimes.get(name)?.partitions?.get(key);
  }

  /**
   * Keeps partition states on disk under `storage.dir` (emptied: the states are rebuilt from a cut) instead
   * of in the heap. Call before load(); null returns to the heap.
   */
  useStorage(storage: ProjectionStorageOptions | null): void {
    if (storage === null) {
      this.storage = null;
      return;
    }
    fs.rmSync(storage.dir, { recursive: true, force: true });
    fs.mkdirSync(storage.dir, { recursive: true });
    this.storage = { ...storage, cache: new BlockCache<KvBlock>(storage.cacheBytes) };
  }

  /** Resolves once no partition store is writing or merging runs (tests, benchmarks). */
  async storesIdle(): Promise<void> {
    for (const rt of this.runtimes.values())
      if (rt.partitions instanceof PartitionStore) await rt.partitions.whenIdle();
  }

  /** What the partition stores hold and use (null when states are in the heap). */
  storageStats(): {
    cacheBytes: number;
    cacheBytesMax: number;
    cacheHits: number;
    cacheMisses: number;
    runs: number;
    runBytes: number;
    tableKeys: number;
    residentBytes: number;
  } | null {
    if (this.storage === null) return null;
    const out = {
      cacheBytes: this.storage.cache.size.bytes,
      cacheBytesMax: this.storage.cacheBytes,
      cacheHits: this.storage.cache.hits,
      cacheMisses: this.storage.cache.misses,
      runs: 0,
      runBytes: 0,
      tableKeys: 0,
      residentBytes: 0,
    };
    for (const rt of this.runtimes.values()) {
      if (!(rt.partitions instanceof PartitionStore)) continue;
      const s = rt.partitions.stats();
      out.runs += s.runs;
      out.runBytes += s.runBytes;
      out.tableKeys += s.tableKeys;
      out.residentBytes += s.residentBytes;
    }
    return out;
  }

  /** Starts a rebuild from position 0 in the background; throws if the projection is unknown. */
  reset(name: string): void {
    const rt = this.runtimes.get(name);
    if (!rt) throw new Error(`projection '${name}' is not registered (known: ${this.names().join(', ')})`);
    void this.release(rt);
    this.runtimes.set(name, this.fresh(rt.def));
    this.logger?.log(`projection ${name} reset: rebuilding from position 0`);
    this.afterChange();
  }

  /** Resolves once no projection is rebuilding (faulted ones do not count). */
  whenIdle(): Promise<void> {
    if (!this.anyRebuilding()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // ---- used by the state machine ----

  /** Binds the event source and starts rebuilding what lags. */
  attach(source: ProjectionSource): void {
    this.source = source;
    this.afterChange();
  }

  /** Stops background replay (closing the store). */
  detach(): void {
    this.source = null;
    if (this.pumpTimer) clearImmediate(this.pumpTimer);
    this.pumpTimer = null;
    this.pumpWait = null;
  }

  /** Detaches and closes the partition stores (their directories go: they are derived from cuts). */
  async close(): Promise<void> {
    this.detach();
    await Promise.all([...this.runtimes.values()].map((rt) => this.release(rt)));
  }

  /** Whether any projection is fed on apply (lets the store skip building events). */
  hasRunning(): boolean {
    for (const rt of this.runtimes.values()) if (rt.status === 'running') return true;
    return false;
  }

  /** Folds a newly applied event into every running projection. */
  feed(e: EventEnvelope): void {
    for (const rt of this.runtimes.values()) {
      if (rt.status !== 'running') continue;
      if (rt.position !== e.position - 1) {
        this.logger?.warn(
          `projection ${rt.def.name} at position ${rt.position} was fed ${e.position}; catching up by replay`,
        );
        rt.status = 'rebuilding';
        this.afterChange();
        continue;
      }
      this.fold(rt, e);
    }
  }

  /**
   * Every projection's checkpoint, encoded for a cut (see checkpoint-codec.ts). Call synchronously at the cut
   * point: states in the heap are encoded before this returns its promise, partition stores freeze their
   * tables then; their runs are hard-linked into `pinDir` once written. The promise also gives the run files
   * (in `pinDir`) the cut must link.
   */
  checkpoint(pinDir: string): Promise<{ encoded: Buffer[]; runs: RunInfo[] }> {
    const inHeap: ProjectionCheckpoint[] = [];
    const onDisk: Promise<ProjectionCheckpoint>[] = [];
    for (const rt of this.runtimes.values()) {
      const head: ProjectionCheckpoint = {
        name: rt.def.name,
        version: rt.def.version ?? 0,
        position: rt.position,
        status: rt.status,
        ...(rt.error !== undefined ? { error: rt.error } : {}),
      };
      if (rt.partitions instanceof PartitionStore) {
        onDisk.push(
          rt.partitions
            .checkpoint(rt.position, pinDir)
            .then(({ runs, count }) => ({ ...head, runs, partitionsInRuns: count })),
        );
      } else if (rt.partitions instanceof MemoryPartitions) {
        inHeap.push({ ...head, partitions: [...rt.partitions.states] });
      } else {
        inHeap.push({ ...head, state: rt.state });
      }
    }
    // Encoded now: later events change heap states in place.
    const encoded = encodeCheckpoints(inHeap);
    return Promise.all(onDisk).then((stored) => ({
      encoded: [...encoded, ...encodeCheckpoints(stored)],
      runs: stored.flatMap((c) => c.runs ?? []),
    }));
  }

  /**
   * Replaces every projection's state from checkpoints (a cut, whose directory `cutDir` holds the runs of
   * partitions stored on disk); unknown or outdated ones are rebuilt.
   */
  load(checkpoints: ProjectionCheckpoint[], lastPosition: number, cutDir?: string): void {
    const byName = new Map(checkpoints.map((c) => [c.name, c]));
    for (const [name, old] of this.runtimes) {
      void this.release(old);
      const c = byName.get(name);
      const usable = c && c.version === (old.def.version ?? 0) && c.position <= lastPosition;
      const rt = this.fresh(old.def, usable ? c : undefined, cutDir);
      if (usable) {
        rt.position = c.position;
        if (!rt.partitions) rt.state = c.state;
        rt.status = c.status === 'faulted' ? 'faulted' : 'rebuilding';
        rt.error = c.error;
      } else if (c) {
        this.logger?.log(
          `projection ${name}: checkpoint of version ${c.version} at position ${c.position} discarded; rebuilding`,
        );
      }
      if (rt.status === 'rebuilding' && rt.position === lastPosition) {
        rt.status = 'running';
        rt.rebuild = null;
      }
      this.runtimes.set(name, rt);
    }
    this.afterChange();
  }

  // ---- internals ----

  private fresh(def: ProjectionDefinition<any>, from?: ProjectionCheckpoint, cutDir?: string): Runtime {
    return {
      def,
      status: 'rebuilding',
      position: -1,
      state: def.partitionBy ? undefined : def.initial(),
      partitions: def.partitionBy ? this.partitionStates(def.name, from, cutDir) : null,
      rebuild: null,
    };
  }

  /** Partition states for a projection: empty, or a checkpoint's (from its runs or its inline partitions). */
  private partitionStates(name: string, from?: ProjectionCheckpoint, cutDir?: string): PartitionStates {
    const storage = this.storage;
    const runs = from?.runs;
    if (runs !== undefined && cutDir === undefined)
      throw new Error(`projection ${name}: its checkpoint's runs need the cut's directory`);
    if (storage === null) {
      const mem = new MemoryPartitions();
      for (const [k, v] of from?.partitions ?? []) mem.states.set(k, v);
      if (runs !== undefined) {
        // Oldest run first, so a newer run's value of a key wins.
        const cache = new BlockCache<KvBlock>(1 << 20);
        for (const r of runs) {
          const reader = KvRunReader.open(path.join(cutDir!, r.name), r, cache);
          try {
            for (const [k, text] of reader.entries()) mem.states.set(k, JSON.parse(text));
          } finally {
            reader.close();
          }
        }
      }
      return mem;
    }
    const dir = path.join(storage.dir, `${name}.${String(++this.storeSeq).padStart(6, '0')}`);
    const store = PartitionStore.install(
      dir,
      `proj-${name}-`,
      storage.cache,
      storage,
      runs !== undefined ? { dir: cutDir!, runs, count: from?.partitionsInRuns ?? 0 } : null,
    );
    // Inline partitions (a cut taken with states in the heap) go in as new partitions.
    const position = from?.position ?? -1;
    for (const [k, v] of from?.partitions ?? []) store.put(k, v, true, position);
    return store;
  }

  /** Closes a replaced runtime's partition store in the background (its directory goes with it). */
  private release(rt: Runtime): Promise<void> {
    if (!(rt.partitions instanceof PartitionStore)) return Promise.resolve();
    const store = rt.partitions;
    return store.close().catch((e: Error) => {
      this.logger?.warn(`projection ${rt.def.name}: closing ${store.directory} failed: ${e.message}`);
    });
  }

  private fold(rt: Runtime, e: EventEnvelope): void {
    const def = rt.def;
    try {
      if (!def.canHandle || def.canHandle(e)) {
        if (rt.partitions) {
          const key = def.partitionBy!(e);
          if (key !== null) {
            let cur = rt.partitions.take(key);
            const known = cur !== undefined;
            if (!known) cur = def.initial();
            rt.partitions.put(key, def.handle(cur, e), !known, e.position);
          }
        } else {
          rt.state = def.handle(rt.state, e);
        }
      }
      rt.position = e.position;
    } catch (err) {
      rt.status = 'faulted';
      rt.error = `handler threw at position ${e.position} (${e.streamId}@${e.revision} ${e.type}): ${(err as Error)?.message ?? String(err)}`;
      rt.rebuild = null;
      this.logger?.error(`projection ${def.name} faulted: ${rt.error}; fix the handler and reset it`);
    }
  }

  private info(rt: Runtime, last: number): ProjectionInfo {
    const lag = Math.max(0, last - rt.position);
    let eventsPerSecond = 0;
    let etaSeconds: number | null = 0;
    if (rt.status === 'rebuilding') {
      const elapsedS = rt.rebuild ? (Date.now() - rt.rebuild.startedAtMs) / 1000 : 0;
      const done = rt.rebuild ? rt.position - rt.rebuild.startPosition : 0;
      eventsPerSecond = elapsedS > 0 ? Math.round(done / elapsedS) : 0;
      etaSeconds = eventsPerSecond > 0 ? Math.round((lag / eventsPerSecond) * 10) / 10 : null;
    } else if (rt.status === 'faulted') {
      etaSeconds = null;
    }
    return {
      name: rt.def.name,
      status: rt.status,
      position: rt.position,
      lag,
      eventsPerSecond,
      etaSeconds,
      ...(rt.error ? { error: rt.error } : {}),
    };
  }

  private anyRebuilding(): boolean {
    for (const rt of this.runtimes.values()) if (rt.status === 'rebuilding') return true;
    return false;
  }

  private afterChange(): void {
    if (!this.source) return;
    if (this.anyRebuilding()) {
      if (!this.pumpTimer && !this.pumpWait) this.pumpTimer = setImmediate(() => this.pump());
    } else {
      this.notifyIdle();
    }
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** One replay turn: folds chunks of history into lagging projections for at most replaySliceMs. */
  private pump(): void {
    this.pumpTimer = null;
    const source = this.source;
    if (!source) return;
    const now = Date.now();
    const lagging = [...this.runtimes.values()].filter((rt) => rt.status === 'rebuilding');
    for (const rt of lagging) rt.rebuild ??= { startedAtMs: now, startPosition: rt.position, lastLogMs: now };
    const deadline = now + this.opts.replaySliceMs;
    const last = source.lastPosition();
    while (true) {
      const active = lagging.filter((rt) => rt.status === 'rebuilding' && rt.position < last);
      if (active.length === 0) break;
      const from = Math.min(...active.map((rt) => rt.position)) + 1;
      const to = Math.min(last, from + this.opts.replayChunkEvents - 1);
      source.scan(from, to, (e) => {
        for (const rt of active)
          if (rt.status === 'rebuilding' && rt.position === e.position - 1) this.fold(rt, e);
        return true;
      });
      if (Date.now() >= deadline) break;
      if (this.storeBehind(lagging) !== null) break;
    }
    for (const rt of lagging) this.afterTurn(rt, last);
    // Replay folds far faster than tables are written: without waiting, frozen tables pile up (memory, and
    // every lookup of a new key asks each of them).
    const behind = this.storeBehind(lagging);
    if (behind !== null && this.anyRebuilding()) {
      const wait = behind.written().then(() => {
        if (this.pumpWait !== wait) return;
        this.pumpWait = null;
        this.afterChange();
      });
      this.pumpWait = wait;
      return;
    }
    this.afterChange();
  }

  /** A rebuilding projection's partition store with more than one table waiting to be written. */
  private storeBehind(lagging: Runtime[]): PartitionStore | null {
    for (const rt of lagging)
      if (rt.status === 'rebuilding' && rt.partitions instanceof PartitionStore && rt.partitions.backlog > 1)
        return rt.partitions;
    return null;
  }

  private afterTurn(rt: Runtime, last: number): void {
    if (rt.status !== 'rebuilding' || !rt.rebuild) return;
    const now = Date.now();
    const elapsedS = Math.max(0.001, (now - rt.rebuild.startedAtMs) / 1000);
    const done = rt.position - rt.rebuild.startPosition;
    if (rt.position >= last) {
      rt.status = 'running';
      rt.rebuild = null;
      this.logger?.log(
        `projection ${rt.def.name} rebuilt: ${done} events in ${elapsedS.toFixed(1)} s (${Math.round(done / elapsedS)} events/s), now running at position ${rt.position}`,
      );
    } else if (now - rt.rebuild.lastLogMs >= this.opts.progressLogMs) {
      rt.rebuild.lastLogMs = now;
      const info = this.info(rt, last);
      this.logger?.log(
        `projection ${rt.def.name} rebuilding: position ${rt.position} of ${last}, lag ${info.lag}, ${info.eventsPerSecond} events/s, eta ${info.etaSeconds ?? '?'} s`,
      );
    }
  }
}
