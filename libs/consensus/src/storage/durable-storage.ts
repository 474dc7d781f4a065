import { SnapshotChunk } from '../core/ready';
import { ConfigState, Entry, HardState, InitialState, SnapshotMeta, decodeConfig } from '../core/types';
import { NodeStorage, SnapshotContent } from '../node/ports';
import { StorageCorruptionError, StorageFailedError } from './errors';
import { FileOps, fsyncDir, nodeFileOps } from './file-ops';
import { HardStateFile } from './hard-state-file';
import {
  assert,
  cacheBytesDefault,
  cacheEntriesDefault,
  eagerFlushBytesDefault,
  segmentBytesDefault,
  segmentBytesMax,
  segmentBytesMin,
  snapshotsKeepDefault,
  syncsInFlightMaxDefault,
  writeAheadBytesMin,
} from './limits';
import { SegmentLog } from './segment-log';
import { SnapshotStore } from './snapshot-store';

export type RepairOption = 'discard-and-rejoin';

export interface StorageLogger {
  log(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface DurableStorageOptions {
  segmentBytes?: number;
  cacheEntries?: number;
  /** Payload bytes the entry cache may hold (default 16 MiB). */
  cacheBytes?: number;
  snapshotsKeep?: number;
  logger?: StorageLogger;
  /** On corruption found at open: move the log and snapshots aside and start empty (rejoin from the leader). */
  repair?: RepairOption;
  /** Zero-fill new segment files (default true). */
  preallocate?: boolean;
  /** With an fsync slot free, write a batch as soon as this many bytes are staged (default 16 KiB). */
  eagerFlushBytes?: number;
  /** fdatasync calls allowed to overlap (default 3); each covers every batch written before it started. */
  syncsInFlightMax?: number;
  /** The file-system calls; tests inject failures here. */
  fileOps?: FileOps;
}

type PersistWork = { hardState?: HardState; entries: Entry[]; snapshotChunk?: SnapshotChunk };

/** One group commit: every persist call staged between two cuts shares it (and its promise). */
interface Batch {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
  /** The reader's last index once this batch is durable (lowered when a later call truncates). */
  endIndex: number;
  hasLog: boolean;
  hardState: HardState | null;
  chunks: SnapshotChunk[] | null;
  logSynced: boolean;
  /** Hard-state and snapshot-chunk syncs still running. */
  extraPending: number;
}

export interface StorageStats {
  /** Group commits cut (each is one write). */
  batches: number;
  /** fdatasync calls on the log. */
  syncs: number;
  persistCalls: number;
}

function isIoError(e: unknown): boolean {
  return typeof (e as NodeJS.ErrnoException)?.code === 'string';
}

/** `--repair=discard-and-rejoin` on the command line or `REPAIR=discard-and-rejoin` in the environment. */
export function parseRepairOption(
  argv: readonly string[],
  env: Record<string, string | undefined>,
): RepairOption | undefined {
  const arg = argv.find((a) => a.startsWith('--repair='));
  const value = arg !== undefined ? arg.slice('--repair='.length) : env.REPAIR;
  if (value === undefined || value === '') return undefined;
  if (value !== 'discard-and-rejoin')
    throw new Error(`unknown repair option "${value}"; the only one is discard-and-rejoin`);
  return value;
}

/**
 * The node's durable storage: segment-file log, hard-state file and snapshot store under one directory.
 *
 * Group commit: `persist` stages entries into the log's buffer at once; a batch is cut (one write) when the
 * tick ends, or as soon as it is large, if no fsync is in flight; while an fsync runs the next batch is
 * staged, and written ahead once large. Each fsync covers every batch written before it started. Promises
 * resolve in call order, only once their bytes (and hard state, and snapshot chunks) are durable. A write
 * or fsync error fails the storage: every pending and later call is rejected with StorageFailedError.
 */
export class DurableStorage implements NodeStorage {
  private readerLast: number;
  private pending: Batch | null = null;
  private readonly queue: Batch[] = [];
  /** Written batches no fsync has been started for, in order. */
  private writtenUnsynced: Batch[] = [];
  /** Batches whose covering fsync is running, in order; `upTo` of a sync is the last batch it covers. */
  private syncing: Batch[] = [];
  private syncsInFlight = 0;
  private readonly syncsInFlightMax: number;
  private driveScheduled = false;
  private readonly driveTask = () => this.drive();
  private failed: StorageFailedError | null = null;
  private closed = false;
  private exclusive = 0;
  private deferred: { work: PersistWork; resolve: () => void; reject: (e: Error) => void }[] = [];
  private idleWaiters: (() => void)[] = [];
  private syncWaiters: (() => void)[] = [];
  private snapshotChain: Promise<void> = Promise.resolve();
  private exclusiveChain: Promise<void> = Promise.resolve();
  /** Latest hard state seen (its commit may not be durable: commit is advisory). */
  private hardStateLatest: HardState;
  /** Term and vote of the last hard state scheduled for a durable write. */
  private hardStateScheduled: HardState;
  private readonly eagerFlushBytes: number;
  private readonly counters: StorageStats = { batches: 0, syncs: 0, persistCalls: 0 };

  private constructor(
    readonly dir: string,
    private readonly log: SegmentLog,
    private readonly snaps: SnapshotStore,
    private readonly hs: HardStateFile,
    private readonly logger: StorageLogger,
    opts: DurableStorageOptions,
  ) {
    this.readerLast = Math.max(log.lastWrittenIndex(), snaps.latestMeta().index);
    this.hardStateLatest = hs.current();
    this.hardStateScheduled = hs.current();
    this.eagerFlushBytes = opts.eagerFlushBytes ?? eagerFlushBytesDefault;
    this.syncsInFlightMax = opts.syncsInFlightMax ?? syncsInFlightMaxDefault;
    assert(this.syncsInFlightMax >= 1, `syncsInFlightMax ${this.syncsInFlightMax} ≥ 1`);
  }

  static async open(dir: string, opts: DurableStorageOptions = {}): Promise<DurableStorage> {
    const logger = opts.logger ?? console;
    try {
      return DurableStorage.openNow(dir, opts, logger);
    } catch (e) {
      if (!(e instanceof StorageCorruptionError) || opts.repair !== 'discard-and-rejoin') throw e;
      const aside = DurableStorage.moveAside(dir, opts.fileOps ?? nodeFileOps);
      logger.error(`storage: ${e.message}`);
      logger.error(
        `storage: repair discard-and-rejoin: moved the log and snapshots to ${aside}; starting empty, the node rejoins from the leader's snapshot`,
      );
      return DurableStorage.openNow(dir, opts, logger);
    }
  }

  private static openNow(dir: string, opts: DurableStorageOptions, logger: StorageLogger): DurableStorage {
    const ops = opts.fileOps ?? nodeFileOps;
    const segmentBytes = opts.segmentBytes ?? segmentBytesDefault;
    assert(
      segmentBytes >= segmentBytesMin && segmentBytes <= segmentBytesMax,
      `segmentBytes ${segmentBytes} in [${segmentBytesMin}, ${segmentBytesMax}]`,
    );
    ops.mkdirSync(dir, { recursive: true });
    const line = (l: string) => logger.warn(l);
    const hs = HardStateFile.open(dir, ops);
    const snaps = SnapshotStore.open(
      `${dir}/snapshots`,
      ops,
      opts.snapshotsKeep ?? snapshotsKeepDefault,
      line,
    );
    const snap = snaps.latestMeta();
    const log = SegmentLog.open(
      `${dir}/log`,
      {
        segmentBytes,
        cacheEntries: opts.cacheEntries ?? cacheEntriesDefault,
        cacheBytes: opts.cacheBytes ?? cacheBytesDefault,
        preallocate: opts.preallocate ?? true,
        ops,
        log: line,
      },
      snap.index,
    );
    try {
      DurableStorage.reconcile(log, snap, line);
      log.ensureSegment();
    } catch (e) {
      snaps.close();
      void log.close();
      throw e;
    }
    return new DurableStorage(dir, log, snaps, hs, logger, opts);
  }

  /** Makes the log agree with the latest snapshot (finishing an interrupted install). */
  private static reconcile(log: SegmentLog, snap: SnapshotMeta, line: (l: string) => void): void {
    const first = log.firstWritten();
    const last = log.lastWrittenIndex();
    if (first === null) {
      if (last !== snap.index) log.dropAll(snap.index + 1);
      return;
    }
    if (last < snap.index) {
      line(`storage: the log ends at ${last}, before the snapshot at ${snap.index}: dropped it`);
      log.dropAll(snap.index + 1);
    } else if (first > snap.index + 1) {
      throw new StorageCorruptionError(
        log.firstSegmentPath(),
        0,
        `the log starts at index ${first} but the snapshot ends at ${snap.index}: segments are missing`,
      );
    } else if (snap.index >= first && log.termAt(snap.index) !== snap.term) {
      line(
        `storage: the log's entry ${snap.index} has term ${log.termAt(snap.index)}, the snapshot's is ${snap.term}: dropped the log`,
      );
      log.dropAll(snap.index + 1);
    }
  }

  private static moveAside(dir: string, ops: FileOps): string {
    const aside = `${dir}/discarded-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    ops.mkdirSync(aside, { recursive: true });
    for (const name of ['log', 'snapshots']) {
      if (ops.existsSync(`${dir}/${name}`)) ops.renameSync(`${dir}/${name}`, `${aside}/${name}`);
    }
    fsyncDir(ops, dir);
    return aside;
  }

  // ---- RaftLogReader -------------------------------------------------------------------------------

  firstIndex(): number {
    const f = this.log.firstWritten();
    return f === null ? this.readerLast + 1 : Math.min(f, this.readerLast + 1);
  }

  lastIndex(): number {
    return this.readerLast;
  }

  term(index: number): number | undefined {
    const snap = this.snaps.latestMeta();
    if (index === snap.index) return snap.term;
    if (index > this.readerLast || index < 1) return index === 0 ? 0 : undefined;
    return this.log.termAt(index);
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const first = this.firstIndex();
    if (lo < first || hi > this.readerLast + 1 || lo > hi) {
      throw new Error(`storage: entries [${lo}, ${hi}) outside the log [${first}, ${this.readerLast}]`);
    }
    return this.log.read(lo, hi, maxBytes);
  }

  snapshotMeta(): SnapshotMeta {
    return this.snaps.latestMeta();
  }

  snapshotChunk(offset: number, maxBytes: number): { data: Uint8Array; done: boolean } {
    return this.snaps.chunk(offset, maxBytes);
  }

  // ---- NodeStorage ---------------------------------------------------------------------------------

  initialState(): InitialState {
    const hs = this.hardStateLatest;
    return {
      hardState: { term: hs.term, vote: hs.vote, commit: Math.min(hs.commit, this.lastIndex()) },
      config: this.latestConfig(),
      partialSnapshot: this.snaps.partialInfo(),
    };
  }

  persist(work: PersistWork): Promise<void> {
    this.counters.persistCalls++;
    if (this.closed) return Promise.reject(new Error(`storage ${this.dir} is closed`));
    if (this.failed !== null) return Promise.reject(this.failed);
    if (this.exclusive > 0) return this.defer(work);
    const chunk = work.snapshotChunk;
    if (chunk !== undefined) {
      const why = this.snaps.checkChunk(chunk);
      if (why !== null) return Promise.reject(new Error(`storage: ${why}`));
    }
    // Nothing changes before the work is known to fit: a refused call leaves no trace.
    const entries = work.entries;
    let truncatedFrom = 0;
    if (entries.length > 0) {
      const t = entries[0].index;
      if (t <= this.log.tailIndex()) truncatedFrom = t;
      try {
        this.log.stage(entries, this.snaps.latestMeta().index + 1);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    if (truncatedFrom > 0) this.clampForTruncation(truncatedFrom);
    const b = this.pending ?? this.newBatch();
    if (entries.length > 0) b.hasLog = true;
    if (work.hardState !== undefined) this.stageHardState(b, work.hardState);
    if (chunk !== undefined) {
      this.snaps.acceptChunk(chunk);
      (b.chunks ??= []).push(chunk);
    }
    b.endIndex = this.log.tailIndex();
    if (this.syncsInFlight < this.syncsInFlightMax && this.log.stagedByteCount() >= this.eagerFlushBytes) {
      this.drive();
    } else if (!this.driveScheduled) {
      this.driveScheduled = true;
      queueMicrotask(this.driveTask);
    }
    return b.promise;
  }

  installSnapshot(meta: SnapshotMeta): Promise<void> {
    return this.exclusively('installing a snapshot', async () => {
      this.snaps.publishPartial(meta);
      const kept = this.log.resetToSnapshot(meta.index, meta.term);
      this.readerLast = this.log.tailIndex();
      const hs = this.hardStateLatest;
      if (hs.commit < meta.index) this.hardStateLatest = { ...hs, commit: meta.index };
      this.logger.log(
        `storage: installed snapshot ${meta.index}/${meta.term}; log ${kept === 'kept-suffix' ? 'kept after it' : 'dropped'}`,
      );
    });
  }

  /** A stream is written into the snapshot store; parts' files are hard-linked there (SnapshotStore.save). */
  saveSnapshot(meta: SnapshotMeta, content: SnapshotContent): Promise<void> {
    const run = this.snapshotChain.then(async () => {
      this.checkUsable();
      if (meta.index <= this.snaps.latestMeta().index) return;
      if (meta.index > this.readerLast) {
        throw new Error(
          `storage: snapshot at ${meta.index} is past the log's last durable index ${this.readerLast}`,
        );
      }
      try {
        await this.snaps.save(meta, content);
      } catch (e) {
        if (isIoError(e)) this.fail(e as Error, `saving snapshot ${meta.index}/${meta.term}`);
        throw this.failed ?? e;
      }
    });
    this.snapshotChain = run.catch(() => {});
    return run;
  }

  readSnapshot(): AsyncIterable<Uint8Array> | null {
    return this.snaps.read();
  }

  async compact(index: number): Promise<void> {
    this.checkUsable();
    const upTo = Math.min(index, this.snaps.latestMeta().index);
    try {
      this.log.compact(upTo);
    } catch (e) {
      if (isIoError(e)) this.fail(e as Error, `compacting the log up to ${upTo}`);
      throw this.failed ?? e;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.failed === null) await this.whenIdle();
    await this.exclusiveChain;
    await this.snapshotChain;
    if (this.failed === null) await this.whenIdle();
    // A sync whose batches a later sync already covered may still be running on the segment's descriptor.
    if (this.syncsInFlight > 0) await new Promise<void>((resolve) => this.syncWaiters.push(resolve));
    this.closed = true;
    const hs = this.hardStateLatest;
    const durable = this.hs.current();
    if (
      this.failed === null &&
      (hs.term !== durable.term || hs.vote !== durable.vote || hs.commit !== durable.commit)
    ) {
      await this.hs
        .write(hs)
        .catch((e: Error) =>
          this.logger.warn(`storage: could not write the hard state on close: ${e.message}`),
        );
    }
    await this.log.close();
    this.snaps.close();
  }

  // ---- extras for the node, tests and benchmarks ----------------------------------------------------

  /** Resolves once every persist called so far has completed (or failed). */
  whenIdle(): Promise<void> {
    if (this.pending === null && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The failure that stopped writes, or null. */
  failure(): StorageFailedError | null {
    return this.failed;
  }

  stats(): StorageStats {
    return { ...this.counters };
  }

  durableHardState(): HardState {
    return this.hs.current();
  }

  // ---- group commit --------------------------------------------------------------------------------

  private newBatch(): Batch {
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const b: Batch = {
      promise,
      resolve,
      reject,
      endIndex: this.log.tailIndex(),
      hasLog: false,
      hardState: null,
      chunks: null,
      logSynced: false,
      extraPending: 0,
    };
    this.pending = b;
    return b;
  }

  private stageHardState(b: Batch, hs: HardState): void {
    const copy = { term: hs.term, vote: hs.vote, commit: hs.commit };
    this.hardStateLatest = copy;
    const s = this.hardStateScheduled;
    if (copy.term !== s.term || copy.vote !== s.vote) {
      b.hardState = copy;
      this.hardStateScheduled = copy;
    } else if (b.hardState !== null) {
      b.hardState = copy;
    }
  }

  /** A stage from index t drops t.. from the reader's view now and from every batch not yet durable. */
  private clampForTruncation(t: number): void {
    const last = t - 1;
    if (this.readerLast > last) this.readerLast = last;
    for (const b of this.queue) if (b.endIndex > last) b.endIndex = last;
    if (this.pending !== null && this.pending.endIndex > last) this.pending.endIndex = last;
  }

  /** Cuts the pending batch when allowed and keeps fsyncs running while there is written data. */
  private drive(): void {
    this.driveScheduled = false;
    if (this.failed !== null) return;
    const b = this.pending;
    if (b !== null && this.mayCut(b)) this.cut(b);
    if (this.syncsInFlight < this.syncsInFlightMax && this.writtenUnsynced.length > 0 && this.failed === null)
      this.startSync();
    this.ackHead();
  }

  private mayCut(b: Batch): boolean {
    if (!b.hasLog) return true;
    // Truncations and segment rolls change the file being synced: only once everything written is durable
    // (then a roll needs no fsync of its own; a truncation fsyncs what it zeroed).
    if (this.log.writeNeedsQuiescence()) return this.syncsInFlight === 0 && this.writtenUnsynced.length === 0;
    return this.syncsInFlight < this.syncsInFlightMax || this.log.stagedByteCount() >= writeAheadBytesMin;
  }

  private cut(b: Batch): void {
    this.pending = null;
    this.queue.push(b);
    this.counters.batches++;
    try {
      if (b.hasLog) {
        if (this.log.writeStaged()) this.markSynced(this.writtenUnsynced.splice(0));
        this.writtenUnsynced.push(b);
      } else {
        b.logSynced = true;
      }
      if (b.chunks !== null) {
        for (const c of b.chunks) this.snaps.writeChunk(c);
        this.addExtra(b, this.snaps.syncPartial(), 'syncing a snapshot chunk');
      }
      if (b.hardState !== null) this.addExtra(b, this.hs.write(b.hardState), 'writing the hard state');
    } catch (e) {
      this.fail(e as Error, 'writing the log');
    }
  }

  private addExtra(b: Batch, p: Promise<void>, where: string): void {
    b.extraPending++;
    p.then(
      () => {
        b.extraPending--;
        this.ackHead();
      },
      (e: Error) => this.fail(e, where),
    );
  }

  /** One fdatasync for every batch written so far; when it completes, they (and all before) are durable. */
  private startSync(): void {
    const upTo = this.writtenUnsynced[this.writtenUnsynced.length - 1];
    for (const b of this.writtenUnsynced) this.syncing.push(b);
    this.writtenUnsynced = [];
    this.syncsInFlight++;
    this.counters.syncs++;
    this.log.sync((err) => {
      this.syncsInFlight--;
      if (this.syncsInFlight === 0) for (const w of this.syncWaiters.splice(0)) w();
      if (this.failed !== null || this.closed) return;
      if (err) {
        this.fail(err, 'syncing the log (fdatasync)');
        return;
      }
      const k = this.syncing.indexOf(upTo);
      if (k >= 0) this.markSynced(this.syncing.splice(0, k + 1));
      this.drive();
    });
  }

  private markSynced(batches: Batch[]): void {
    for (const b of batches) b.logSynced = true;
  }

  /** Resolves durable batches from the head, in order. */
  private ackHead(): void {
    const q = this.queue;
    while (q.length > 0) {
      const b = q[0];
      if (!b.logSynced || b.extraPending > 0) break;
      q.shift();
      this.readerLast = b.endIndex;
      b.resolve();
    }
    if (q.length === 0 && this.pending === null && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private fail(cause: Error, where: string): void {
    if (this.failed !== null) return;
    this.failed = cause instanceof StorageFailedError ? cause : new StorageFailedError(cause, where);
    this.logger.error(`storage: ${this.failed.message}`);
    const victims = this.queue.splice(0);
    if (this.pending !== null) victims.push(this.pending);
    this.pending = null;
    this.writtenUnsynced = [];
    this.syncing = [];
    for (const b of victims) b.reject(this.failed);
    for (const d of this.deferred.splice(0)) d.reject(this.failed);
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private checkUsable(): void {
    if (this.closed) throw new Error(`storage ${this.dir} is closed`);
    if (this.failed !== null) throw this.failed;
  }

  // ---- exclusive operations ------------------------------------------------------------------------

  private defer(work: PersistWork): Promise<void> {
    return new Promise((resolve, reject) => this.deferred.push({ work, resolve, reject }));
  }

  /** Runs `op` after every earlier persist is durable, holding later persists until it is done. */
  private exclusively(what: string, op: () => Promise<void>): Promise<void> {
    this.exclusive++;
    const run = this.exclusiveChain.then(async () => {
      try {
        this.checkUsable();
        await this.whenIdle();
        this.checkUsable();
        await op();
      } catch (e) {
        if (isIoError(e)) this.fail(e as Error, what);
        throw this.failed ?? e;
      } finally {
        this.exclusive--;
        if (this.exclusive === 0) this.releaseDeferred();
      }
    });
    this.exclusiveChain = run.catch(() => {});
    return run;
  }

  private releaseDeferred(): void {
    for (const d of this.deferred.splice(0)) this.persist(d.work).then(d.resolve, d.reject);
  }

  private latestConfig(): ConfigState {
    const snap = this.snaps.latestMeta();
    const ci = this.log.lastConfigIndex(snap.index, this.readerLast);
    if (ci === 0) return snap.config;
    const [entry] = this.log.read(ci, ci + 1, Number.MAX_SAFE_INTEGER);
    return decodeConfig(entry.data);
  }
}
