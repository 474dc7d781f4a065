import * as fs from 'node:fs';
import * as path from 'node:path';
import { Entry, EntryType, SnapshotMeta, SnapshotPart, StateMachine } from '@app/consensus';
import { DecodedCommand, decodeCommandRaw, isBatch, splitBatch, streamIdProblem } from './command';
import { expectationHolds } from './expected-revision';
import { DEFAULT_LIMITS, EventStoreLimits, STORAGE_DEFAULTS } from './limits';
import { Logger } from './logger';
import { builtInProjections } from './projections/builtins';
import { decodeCheckpoints } from './projections/checkpoint-codec';
import { DEFAULT_PROJECTION_CACHE_BYTES, ProjectionEngine } from './projections/engine';
import { PartitionStoreOptions } from './projections/partition-store';
import { Reader } from './reader';
import {
  archiveParts,
  crc32cOfFile,
  CutFileInfo,
  CutManifest,
  cutDirName,
  extractArchive,
  installCutFiles,
  listCuts,
  readManifest,
  readSections,
  removeTemporaryCuts,
  sectionBytes,
  streamParts,
  writeCut,
} from './storage/cut';
import {
  EventFileInfo,
  EventFiles,
  EventFilesOptions,
  OFFSETS_EVERY,
  sparseCount,
  sparseFromDense,
} from './storage/event-files';
import { IdWindow } from './storage/id-window';
import { StoredEvent } from './storage/record';
import { StreamIndex, StreamLookup } from './storage/stream-index';
import {
  DEFAULT_DISK_STREAM_INDEX_OPTIONS,
  DiskStreamIndex,
  DiskStreamIndexOptions,
} from './storage/stream-runs/disk-stream-index';
import { RunReader } from './storage/stream-runs/run-file';
import { BlockCache } from './storage/stream-runs/block-cache';
import { EventSubscription, subscribe } from './subscription';
import {
  AllPage,
  AppendedBatch,
  AppendResult,
  AppendSuccess,
  EventEnvelope,
  IdempotencyConflict,
  ReadAllOptions,
  ReadStreamOptions,
  StreamPage,
  SubscribeOptions,
  SubscriptionTarget,
} from './types';
import { readUuid } from './uuid';

export { EventSubscription } from './subscription';

export interface EventStoreOptions {
  /** Projections fed on apply (default: a new engine with the built-ins). */
  projections?: ProjectionEngine;
  limits?: Partial<EventStoreLimits>;
  logger?: Logger;
  /** Event files are rolled at this size (≤ 1 GiB). */
  fileBytesMax?: number;
  /**
   * Idempotency window: retries are recognized for the ids of the most recent this-many events (by
   * position). Default 1,048,576. Must be the same on every node (it decides apply results).
   */
  idempotencyWindowEvents?: number;
  recentCacheEvents?: number;
  recentCacheBytesMax?: number;
  readBytesMax?: number;
  cutsKept?: number;
  /**
   * Where the stream index lives: in the heap (`memory`, the default: every stream costs heap) or on disk
   * (`disk`: sorted run files with a bounded cache; memory does not grow with the number of streams).
   */
  streamIndex?: { kind: 'memory' } | ({ kind: 'disk' } & Partial<DiskStreamIndexOptions>);
  /**
   * Where partitioned projections keep their partition states: in the heap (`memory`, the default) or on
   * disk (`disk`: key → JSON run files under `<dir>/projections` with a shared block cache of `cacheBytes`).
   */
  projectionState?:
    { kind: 'memory' } | ({ kind: 'disk'; cacheBytes?: number } & Partial<PartitionStoreOptions>);
}

export type StreamIndexStats =
  | { kind: 'memory'; streams: number }
  | ({ kind: 'disk'; streams: number; cacheBudgetBytes: number } & ReturnType<DiskStreamIndex['stats']>);

export interface EventStoreStats {
  appliedIndex: number;
  lastPosition: number;
  streams: number;
  eventFiles: number;
  eventBytes: number;
  idempotencyWindowEvents: number;
}

const FILE_BYTES_LIMIT = 1024 * 1024 * 1024;

/**
 * The replicated event store (the Raft state machine). apply() is deterministic: expectation check,
 * idempotency by event id, gapless revisions and positions, leader timestamps. Events live in the store's
 * own append-only files (`<dir>/events`), never in the Raft log; snapshots are cuts (`<dir>/cuts`).
 * Restart = latest cut, event data past it dropped, then the node re-applies its log after appliedIndex().
 * Event files are not fsynced on apply (the Raft log is the source of truth); cuts are fsynced.
 */
export class EventStoreStateMachine implements StateMachine {
  readonly projections: ProjectionEngine;
  readonly limits: EventStoreLimits;
  private readonly appendedListeners = new Set<(batch: AppendedBatch) => void>();
  private readonly eventsDir: string;
  private readonly cutsDir: string;
  private readonly fileOpts: EventFilesOptions;
  private readonly reader: Reader;
  private readonly logger?: Logger;
  private readonly cutsKept: number;
  private files!: EventFiles;
  private streams: StreamIndex | DiskStreamIndex = new StreamIndex();
  private readonly streamIndexOpts: EventStoreOptions['streamIndex'] & object;
  private readonly streamIndexDir: string;
  private streamIndexSeq = 0;
  private readonly window: IdWindow;
  private applied = 0;
  /** Milliseconds per step of the last cut load (for the "opened" log line). */
  private loadTimes: Record<string, number> | null = null;
  private closed = false;
  private waiters = new Set<() => void>();
  private exclusiveTail: Promise<unknown> = Promise.resolve();
  private readonly cutReaders = new Map<string, number>();
  /**
   * CRC-32C of each event file's first `bytes` bytes, as last computed or loaded from a cut (valid because
   * files only grow until a restore or restart replaces them, which resets this). Lets a cut record its
   * files' CRCs by reading only the bytes appended since the previous cut.
   */
  private fileCrcs = new Map<string, { bytes: number; crc32c: number }>();

  private constructor(dir: string, opts: EventStoreOptions) {
    this.eventsDir = path.join(dir, 'events');
    this.cutsDir = path.join(dir, 'cuts');
    this.streamIndexDir = path.join(dir, 'stream-index');
    this.streamIndexOpts = opts.streamIndex ?? { kind: 'memory' };
    this.logger = opts.logger;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.projections =
      opts.projections ?? new ProjectionEngine(builtInProjections(), { logger: opts.logger });
    const ps = opts.projectionState ?? { kind: 'memory' };
    this.projections.useStorage(
      ps.kind === 'disk'
        ? {
            ...ps,
            dir: path.join(dir, 'projections'),
            cacheBytes: ps.cacheBytes ?? DEFAULT_PROJECTION_CACHE_BYTES,
          }
        : null,
    );
    this.cutsKept = opts.cutsKept ?? STORAGE_DEFAULTS.cutsKept;
    this.fileOpts = {
      fileBytesMax: opts.fileBytesMax ?? STORAGE_DEFAULTS.fileBytesMax,
      writeBufferBytesMax: STORAGE_DEFAULTS.writeBufferBytesMax,
      recentCacheEvents: opts.recentCacheEvents ?? STORAGE_DEFAULTS.recentCacheEvents,
      recentCacheBytesMax: opts.recentCacheBytesMax ?? STORAGE_DEFAULTS.recentCacheBytesMax,
    };
    if (this.fileOpts.fileBytesMax < 1 || this.fileOpts.fileBytesMax > FILE_BYTES_LIMIT) {
      throw new Error(
        `event store: fileBytesMax ${this.fileOpts.fileBytesMax} must be in 1..${FILE_BYTES_LIMIT}`,
      );
    }
    if (this.cutsKept < 1) throw new Error(`event store: cutsKept ${this.cutsKept} must be >= 1`);
    this.window = new IdWindow(opts.idempotencyWindowEvents ?? STORAGE_DEFAULTS.idempotencyWindowEvents);
    this.reader = new Reader(
      () => this.files,
      (): StreamLookup => this.streams,
      {
        limits: this.limits,
        readBytesMax: opts.readBytesMax ?? STORAGE_DEFAULTS.readBytesMax,
        filteredScanEventsMax: STORAGE_DEFAULTS.filteredScanEventsMax,
      },
    );
  }

  /** Opens (or creates) the store in `dir`: loads the latest cut, drops event data past it. */
  static async open(dir: string, opts: EventStoreOptions = {}): Promise<EventStoreStateMachine> {
    const sm = new EventStoreStateMachine(dir, opts);
    fs.mkdirSync(sm.eventsDir, { recursive: true });
    fs.mkdirSync(sm.cutsDir, { recursive: true });
    removeTemporaryCuts(sm.cutsDir);
    // The on-disk index is derived state: it is rebuilt from the cut that is loaded next.
    fs.rmSync(sm.streamIndexDir, { recursive: true, force: true });
    const cuts = listCuts(sm.cutsDir).reverse();
    let loaded = false;
    for (const index of cuts) {
      try {
        // An older cut than the latest must not truncate event files in place (see installCutFiles).
        sm.loadCut(path.join(sm.cutsDir, cutDirName(index)), index !== cuts[0]);
        loaded = true;
        break;
      } catch (e) {
        sm.logger?.error(
          `event store: cut ${index} in ${sm.cutsDir} is unusable (${(e as Error).message}); trying an older one`,
        );
      }
    }
    if (!loaded) sm.loadEmpty();
    const took = sm.loadTimes
      ? ` (ms: ${Object.entries(sm.loadTimes)
          .map(([k, v]) => `${k} ${v.toFixed(0)}`)
          .join(', ')})`
      : '';
    sm.logger?.log(
      `event store opened at ${dir}: applied index ${sm.applied}, last position ${sm.files.lastPosition()}, ${sm.streams.size()} streams${took}`,
    );
    sm.projections.attach(sm.projectionSource());
    return sm;
  }

  // ---- StateMachine ----

  /** An append command's result, or one result per command for a batch command (see encodeBatch). */
  apply(entry: Entry): AppendResult | AppendResult[] | undefined {
    this.checkOpen();
    if (entry.index <= this.applied) return undefined;
    if (entry.index !== this.applied + 1) {
      throw new Error(
        `event store: entry ${entry.index} applied after ${this.applied}; entries must be applied in order without gaps (restore a snapshot first)`,
      );
    }
    const result = entry.type === EntryType.Normal ? this.applyEntryData(entry.data) : undefined;
    this.applied = entry.index;
    return result;
  }

  appliedIndex(): number {
    return this.applied;
  }

  /**
   * Takes a cut at appliedIndex (fsynced, no history copied) and describes its archive as parts: the node's
   * storage hard-links the cut's files instead of copying them (`data` streams the same bytes, for callers
   * that want a stream). The files' CRCs are computed only for bytes appended since the previous cut.
   *
   * The parts reference files in the cut directory, which stays until a newer cut is pruned past it or a
   * restore replaces it; the Raft node stores the parts before it takes another snapshot or restores. The
   * open event file is shared (one inode) by the events directory, the cut and the stored snapshot and keeps
   * growing: only its first `bytes` are referenced, and a restart truncates it to the latest cut's length,
   * never below what a cut or snapshot references (see installCutFiles).
   */
  snapshot(): Promise<{ index: number; parts: SnapshotPart[]; data: AsyncIterable<Uint8Array> }> {
    return this.exclusive(async () => {
      this.checkOpen();
      const index = this.applied;
      this.files.flush();
      const described = this.files.describe();
      const lastPosition = this.files.lastPosition();
      // Started here, synchronously at the cut point: the index as of lastPosition, its runs pinned by links.
      const pinDir = path.join(this.cutsDir, `tmp-runs-${cutDirName(index)}-${process.pid}-${Date.now()}`);
      const disk = this.streams instanceof DiskStreamIndex ? this.streams : null;
      const runs = disk?.checkpoint(lastPosition, pinDir);
      runs?.catch(() => {});
      const streamsAtCut = this.streams.size();
      // Also at the cut point: projection states in the heap encoded, partition stores frozen.
      const projections = this.projections.checkpoint(pinDir);
      projections.catch(() => {});
      let cutDir: string;
      let sections: (Buffer | Buffer[])[];
      let files: CutFileInfo[];
      try {
        sections = await this.encodeState(lastPosition);
        const checkpoint = await projections;
        sections.push(checkpoint.encoded);
        files = await this.withCrcs(described);
        const streamIndex =
          disk && runs ? { index: { runs: await runs, streams: streamsAtCut }, dir: pinDir } : undefined;
        cutDir = await writeCut(
          this.cutsDir,
          this.eventsDir,
          index,
          lastPosition,
          files,
          sections,
          streamIndex,
          checkpoint.runs.length > 0 ? { runs: checkpoint.runs, dir: pinDir } : undefined,
        );
      } finally {
        fs.rmSync(pinDir, { recursive: true, force: true });
      }
      this.pruneCuts();
      const parts = await archiveParts(cutDir);
      this.logger?.log(
        `event store: cut at index ${index} (position ${lastPosition}, ${files.length} event files; state ${(sections.reduce((n, x) => n + sectionBytes(x), 0) / 1048576).toFixed(1)} MiB)`,
      );
      return { index, parts, data: this.streamCut(cutDir, parts) };
    });
  }

  /** Discards all state and rebuilds it from a snapshot archive (old state untouched if the archive is bad). */
  restore(meta: SnapshotMeta, data: AsyncIterable<Uint8Array>): Promise<void> {
    return this.exclusive(async () => {
      this.checkOpen();
      const tmp = path.join(this.cutsDir, `tmp-restore-${cutDirName(meta.index)}-${Date.now()}`);
      try {
        const manifest = await extractArchive(data, tmp);
        if (manifest.index !== meta.index)
          throw new Error(`snapshot archive is a cut at index ${manifest.index}, expected ${meta.index}`);
      } catch (e) {
        fs.rmSync(tmp, { recursive: true, force: true });
        throw e;
      }
      // From here on everything is synchronous: no apply or read sees a half-swapped state.
      this.projections.detach();
      this.files.close();
      // Not awaited: the old index finishes its background writes in its own directory, then goes.
      void this.closeStreamIndex();
      const final = path.join(this.cutsDir, cutDirName(meta.index));
      fs.rmSync(final, { recursive: true, force: true });
      fs.renameSync(tmp, final);
      fsyncDir(this.cutsDir);
      for (const index of listCuts(this.cutsDir)) {
        const dir = path.join(this.cutsDir, cutDirName(index));
        if (index !== meta.index && !this.cutReaders.get(dir))
          fs.rmSync(dir, { recursive: true, force: true });
      }
      this.loadCut(final);
      this.projections.attach(this.projectionSource());
      this.logger?.log(
        `event store restored from snapshot at index ${meta.index}: last position ${this.files.lastPosition()}`,
      );
      this.wakeAll();
    });
  }

  // ---- reads ----

  lastPosition(): number {
    return this.files.lastPosition();
  }

  /** Last revision of a stream, -1 when it does not exist. */
  streamRevision(streamId: string): number {
    return this.streams.lastRevision(streamId);
  }

  /** null when the stream does not exist. Throws EventStoreError('invalid_request') on bad options. */
  readStream(streamId: string, opts: ReadStreamOptions = {}): StreamPage | null {
    this.checkOpen();
    return this.reader.readStream(streamId, opts);
  }

  readAll(opts: ReadAllOptions = {}): AllPage {
    this.checkOpen();
    return this.reader.readAll(opts);
  }

  /** History then live from `opts.from` (default: only new events); bounded memory for slow consumers. */
  subscribe(target: SubscriptionTarget, opts: SubscribeOptions = {}): EventSubscription {
    this.checkOpen();
    return subscribe(
      {
        readStream: (id, o) => (this.closed ? null : this.reader.readStream(id, o)),
        readAll: (o) => (this.closed ? { events: [], lastPosition: -1, next: null } : this.reader.readAll(o)),
        streamRevision: (id) => this.streamRevision(id),
        lastPosition: () => this.lastPosition(),
        onceChanged: (wake) => {
          this.waiters.add(wake);
          return () => this.waiters.delete(wake);
        },
        isClosed: () => this.closed,
      },
      target,
      opts,
    );
  }

  stats(): EventStoreStats {
    const files = this.files.describe();
    return {
      appliedIndex: this.applied,
      lastPosition: this.files.lastPosition(),
      streams: this.streams.size(),
      eventFiles: files.length,
      eventBytes: files.reduce((a, f) => a + f.bytes, 0),
      idempotencyWindowEvents: this.window.capacity,
    };
  }

  /** The stream index: where it lives, its streams, and for one on disk its runs and block cache. */
  streamIndexStats(): StreamIndexStats {
    const s = this.streams;
    if (!(s instanceof DiskStreamIndex)) return { kind: 'memory', streams: s.size() };
    const o = this.streamIndexOpts as Partial<DiskStreamIndexOptions>;
    return {
      kind: 'disk',
      streams: s.size(),
      ...s.stats(),
      cacheBudgetBytes: o.blockCacheBytes ?? DEFAULT_DISK_STREAM_INDEX_OPTIONS.blockCacheBytes,
    };
  }

  /**
   * Calls `listener` with every applied append (not idempotent retries), synchronously and in order, for live
   * notification; returns the unsubscribe function.
   */
  onAppended(listener: (batch: AppendedBatch) => void): () => void {
    this.appendedListeners.add(listener);
    return () => this.appendedListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.exclusive(async () => undefined);
    this.closed = true;
    this.projections.detach();
    this.files.close();
    await this.closeStreamIndex();
    await this.projections.close();
    this.appendedListeners.clear();
    this.wakeAll();
  }

  // ---- apply ----

  private applyEntryData(bytes: Uint8Array): AppendResult | AppendResult[] {
    if (!isBatch(bytes)) return this.applyCommand(bytes);
    let commands: Buffer[];
    try {
      commands = splitBatch(bytes);
    } catch (e) {
      this.logger?.error(`event store: undecodable batch applied as a no-op: ${(e as Error).message}`);
      return { ok: false, error: 'invalid_command', message: (e as Error).message };
    }
    // In order, each exactly as if it were its own entry (a later command sees the earlier ones' writes).
    const results: AppendResult[] = new Array(commands.length);
    for (let i = 0; i < commands.length; i++) results[i] = this.applyCommand(commands[i]);
    return results;
  }

  private applyCommand(bytes: Uint8Array): AppendResult {
    let cmd: DecodedCommand;
    try {
      cmd = decodeCommandRaw(bytes);
      const problem = streamIdProblem(cmd.streamId, this.limits.streamIdCharsMax);
      if (problem) throw new Error(`streamId: ${problem}`);
      if (cmd.events.length === 0) throw new Error('no events');
    } catch (e) {
      this.logger?.error(`event store: undecodable command applied as a no-op: ${(e as Error).message}`);
      return { ok: false, error: 'invalid_command', message: (e as Error).message };
    }
    const retry = this.checkRetry(cmd);
    if (retry) return retry;
    const actual = this.streams.lastRevision(cmd.streamId);
    if (!expectationHolds(cmd.expectedRevision, actual)) {
      return {
        ok: false,
        error: 'wrong_expected_revision',
        streamId: cmd.streamId,
        expectedRevision: cmd.expectedRevision,
        actualRevision: actual,
      };
    }
    return this.write(cmd, actual);
  }

  /**
   * Idempotency: if every id is in the window and the stored events are this very request (same stream,
   * consecutive positions in order, same types, data and metadata), the original result is returned and
   * nothing is written; any other use of a known id is a conflict. null: all ids are new.
   */
  private checkRetry(cmd: DecodedCommand): AppendSuccess | IdempotencyConflict | null {
    const n = cmd.events.length;
    let firstKnown = -1;
    let found: number[] | null = null;
    for (let i = 0; i < n; i++) {
      const p = this.window.find(cmd.bytes, cmd.events[i].idAt);
      if (p >= 0 && firstKnown < 0) {
        firstKnown = i;
        found = [];
        for (let k = 0; k < i; k++) found.push(-1);
      }
      found?.push(p);
    }
    if (found === null) return null;
    const conflict = (i: number, why: string): IdempotencyConflict => {
      const id = readUuid(cmd.bytes, cmd.events[i].idAt);
      return {
        ok: false,
        error: 'idempotency_conflict',
        streamId: cmd.streamId,
        eventId: id,
        message: `event id ${id} (events[${i}]) ${why}; a retry must resend the identical request, new events need new ids`,
      };
    };
    for (let i = 0; i < n; i++) {
      if (found[i] < 0)
        return conflict(
          firstKnown,
          `was already committed at position ${found[firstKnown]} but events[${i}] is new`,
        );
      if (found[i] !== found[0] + i)
        return conflict(
          i,
          `was committed at position ${found[i]}, not together with the other events of this request`,
        );
      const stored = this.files.read(found[i]);
      const e = cmd.events[i];
      if (stored.streamId !== cmd.streamId)
        return conflict(i, `was already committed to stream ${stored.streamId}`);
      if (
        stored.type !== e.type ||
        !stored.rawData().equals(cmd.bytes.subarray(e.dataAt, e.dataAt + e.dataLen)) ||
        !stored.rawMetadata().equals(cmd.bytes.subarray(e.metaAt, e.metaAt + e.metaLen))
      ) {
        return conflict(
          i,
          `was already committed at position ${found[i]} with a different type, data or metadata`,
        );
      }
    }
    const first = this.files.read(found[0]);
    return {
      ok: true,
      streamId: cmd.streamId,
      firstRevision: first.revision,
      lastRevision: first.revision + n - 1,
      firstPosition: found[0],
      lastPosition: found[0] + n - 1,
      duplicate: true,
    };
  }

  /** `lastRevision`: the stream's, as the expectation check just looked it up (-1: new stream). */
  private write(cmd: DecodedCommand, lastRevision: number): AppendSuccess {
    const firstPosition = this.files.lastPosition() + 1;
    const firstRevision = lastRevision + 1;
    const feed = this.projections.hasRunning();
    const known = { position: 0, revision: 0, timestamp: cmd.timestamp, streamId: cmd.streamId, type: '' };
    const b = cmd.bytes;
    for (let i = 0; i < cmd.events.length; i++) {
      const e = cmd.events[i];
      const position = firstPosition + i;
      const revision = this.streams.append(cmd.streamId, position);
      const recordAt = this.files.appendParts(
        position,
        revision,
        b,
        e.idAt,
        cmd.headAt,
        cmd.headLen,
        e.tailAt,
        e.tailEnd,
      );
      this.window.add(position, b, e.idAt);
      // Projections see the record just written (no re-read, no re-decode of its strings). StoredEvent
      // copies `known`'s fields, so one object serves the whole command.
      if (feed) {
        known.position = position;
        known.revision = revision;
        known.type = e.type;
        this.projections.feed(new StoredEvent(this.files.lastRecordBuffer, recordAt, known));
      }
    }
    const lastPosition = firstPosition + cmd.events.length - 1;
    const batch: AppendedBatch = {
      streamId: cmd.streamId,
      firstRevision,
      lastRevision: firstRevision + cmd.events.length - 1,
      firstPosition,
      lastPosition,
    };
    this.wakeAll();
    for (const l of this.appendedListeners) l(batch);
    return { ok: true, ...batch };
  }

  // ---- state load / save ----

  private loadEmpty(): void {
    for (const n of fs.readdirSync(this.eventsDir)) fs.rmSync(path.join(this.eventsDir, n), { force: true });
    this.files = new EventFiles(this.eventsDir, this.fileOpts);
    this.fileCrcs = new Map();
    this.streams = this.newStreamIndex(null, -1);
    this.window.reset(0);
    this.applied = 0;
    this.projections.load([], -1);
  }

  /**
   * Makes the live state exactly the cut's (event files truncated to it, indexes and projections loaded).
   * `older`: a cut older than the latest, whose shorter files must not be truncated in place.
   */
  private loadCut(cutDir: string, older = false): void {
    // Where the time of an open goes (the log line says): milliseconds per step.
    const times: Record<string, number> = {};
    let t = performance.now();
    const step = (name: string): void => {
      const now = performance.now();
      times[name] = now - t;
      t = now;
    };
    const manifest = readManifest(cutDir);
    const [offsetBytes, streamBytes, windowBytes, projectionBytes] = readSections(cutDir, manifest);
    step('cut');
    const count = manifest.lastPosition + 1;
    const every = manifest.offsetsEvery ?? 1;
    if (every !== 1 && every !== OFFSETS_EVERY)
      throw new Error(`cut ${cutDir}: one offset per ${every} positions is not a layout this version reads`);
    const expected = every === 1 ? count : sparseCount(count);
    if (offsetBytes.length !== expected * 4)
      throw new Error(
        `cut ${cutDir}: ${offsetBytes.length / 4} offsets for ${count} positions, expected ${expected}`,
      );
    installCutFiles(cutDir, this.eventsDir, manifest, { copyToShorten: older });
    const stored = new Uint32Array(expected);
    new Uint8Array(stored.buffer).set(offsetBytes);
    let offsets: Uint32Array;
    if (every === 1) offsets = sparseFromDense(stored);
    else {
      offsets = new Uint32Array(Math.max(1024, Math.ceil(expected * 1.25)));
      offsets.set(stored);
    }
    const files = new EventFiles(this.eventsDir, this.fileOpts, manifest.files, offsets);
    if (files.lastPosition() !== manifest.lastPosition) {
      files.close();
      throw new Error(
        `cut ${cutDir}: event files end at position ${files.lastPosition()}, manifest says ${manifest.lastPosition}`,
      );
    }
    this.files = files;
    this.fileCrcs = new Map();
    for (const f of manifest.files)
      if (f.crc32c !== undefined) this.fileCrcs.set(f.name, { bytes: f.bytes, crc32c: f.crc32c });
    step('files');
    this.streams = this.newStreamIndex({ cutDir, manifest, streamBytes }, manifest.lastPosition);
    step('index');
    this.window.load(windowBytes);
    step('ids');
    this.applied = manifest.index;
    const checkpoints = decodeCheckpoints(projectionBytes);
    this.projections.load(checkpoints, manifest.lastPosition, cutDir);
    step('projections');
    this.loadTimes = times;
  }

  /**
   * state.bin sections at `lastPosition`: offsets, stream index, idempotency window, projection checkpoints
   * (JSON). Only what later appends change in place is copied before the first await (the window's ring,
   * the projection states); the offsets are a view of their prefix (append-only; a grown array is a new
   * one) and the stream index is encoded in chunks between which appends go on (StreamIndex.encodeAt), so
   * a cut no longer stops the node for tens of milliseconds per million events.
   */
  private async encodeState(lastPosition: number): Promise<(Buffer | Buffer[])[]> {
    const offsets = this.files.sparseOffsets();
    if (offsets.length !== sparseCount(lastPosition + 1))
      throw new Error(`cut: ${offsets.length} sparse offsets for last position ${lastPosition}`);
    const window = this.window.encode();
    // An index on disk goes into the cut as its run files (see snapshot()), not into state.bin.
    const streams = this.streams instanceof StreamIndex ? await this.streams.encodeAt(lastPosition) : [];
    // The fourth section, the projection checkpoints, is added by snapshot().
    return [Buffer.from(offsets.buffer, offsets.byteOffset, offsets.byteLength), streams, window];
  }

  /** The cut's archive as a stream (the cut is kept from pruning while it is read). */
  private async *streamCut(cutDir: string, parts: SnapshotPart[]): AsyncGenerator<Uint8Array> {
    this.cutReaders.set(cutDir, (this.cutReaders.get(cutDir) ?? 0) + 1);
    try {
      yield* streamParts(parts);
    } finally {
      const n = (this.cutReaders.get(cutDir) ?? 1) - 1;
      if (n > 0) this.cutReaders.set(cutDir, n);
      else this.cutReaders.delete(cutDir);
    }
  }

  /**
   * The files with the CRC-32C of their first `bytes`: cached for files unchanged since the last cut,
   * extended over the appended bytes only for a grown file, computed in full only for a file never seen.
   * Reads the events directory asynchronously (appends past `bytes` may happen meanwhile; they are not read).
   */
  private async withCrcs(files: EventFileInfo[]): Promise<CutFileInfo[]> {
    const out: CutFileInfo[] = [];
    for (const f of files) {
      const known = this.fileCrcs.get(f.name);
      let crc: number;
      if (known !== undefined && known.bytes === f.bytes) crc = known.crc32c;
      else {
        const from = known !== undefined && known.bytes < f.bytes ? known : { bytes: 0, crc32c: 0 };
        crc = await crc32cOfFile(path.join(this.eventsDir, f.name), from.bytes, f.bytes, from.crc32c);
        this.fileCrcs.set(f.name, { bytes: f.bytes, crc32c: crc });
      }
      out.push({ ...f, crc32c: crc });
    }
    return out;
  }

  /** Keeps the newest `cutsKept` cuts and any being streamed. */
  private pruneCuts(): void {
    const cuts = listCuts(this.cutsDir);
    for (const index of cuts.slice(0, Math.max(0, cuts.length - this.cutsKept))) {
      const dir = path.join(this.cutsDir, cutDirName(index));
      if (!this.cutReaders.get(dir)) fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  private projectionSource() {
    return {
      lastPosition: () => this.files.lastPosition(),
      scan: (from: number, to: number, visit: (e: EventEnvelope) => boolean) =>
        this.files.scan(from, to, visit),
    };
  }

  /**
   * The stream index of the configured kind, from a cut (its runs, or state.bin's encoded index; either
   * kind converts from the other) or empty. An index on disk gets a fresh directory each time, so a
   * replaced index still finishing a background write never touches the new one.
   */
  private newStreamIndex(
    from: { cutDir: string; manifest: CutManifest; streamBytes: Buffer } | null,
    lastPosition: number,
  ): StreamIndex | DiskStreamIndex {
    const o = this.streamIndexOpts;
    const runs = from?.manifest.streamIndex;
    if (o.kind === 'memory') {
      if (from === null) return new StreamIndex();
      if (runs === undefined) return StreamIndex.decode(from.streamBytes);
      const index = new StreamIndex();
      // Oldest run first: a stream's revisions ascend across runs, and within a run in key order.
      const cache = new BlockCache(1 << 20);
      for (const r of runs.runs) {
        const reader = RunReader.open(path.join(from.cutDir, r.name), r.name, cache, r.crc32c);
        try {
          for (const [id, , position] of reader.entries()) index.append(id, position);
        } finally {
          reader.close();
        }
      }
      return index;
    }
    const dir = path.join(this.streamIndexDir, String(++this.streamIndexSeq).padStart(6, '0'));
    // Derived state: open() removes the directory and rebuilds it from a cut, which fsyncs the runs it links.
    const opts = { ...o, kind: undefined, durable: false };
    if (from !== null && runs !== undefined)
      return DiskStreamIndex.install(dir, from.cutDir, runs.runs, lastPosition, runs.streams, opts);
    const index = DiskStreamIndex.install(dir, dir, [], -1, 0, opts);
    if (from !== null) {
      // An index kept in state.bin (a cut taken with the index in memory): appended again in position order.
      const decoded = StreamIndex.decode(from.streamBytes);
      const byPosition: string[] = new Array(lastPosition + 1);
      for (const [id, s] of decoded.entries())
        for (let r = 0; r < s.count; r++) byPosition[s.positions[r]] = id;
      for (let p = 0; p <= lastPosition; p++) if (byPosition[p] !== undefined) index.append(byPosition[p], p);
    }
    return index;
  }

  private closeStreamIndex(): Promise<void> {
    const old = this.streams;
    if (!(old instanceof DiskStreamIndex)) return Promise.resolve();
    return old
      .close()
      .catch(() => {})
      .then(() => fs.rmSync(old.directory, { recursive: true, force: true }));
  }

  // ---- helpers ----

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.exclusiveTail.then(fn, fn);
    this.exclusiveTail = run.catch(() => undefined);
    return run;
  }

  private wakeAll(): void {
    if (this.waiters.size === 0) return;
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const w of waiters) w();
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('event store: closed');
  }
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
