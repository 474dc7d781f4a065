import { Logger } from '../logger';
import { EventEnvelope } from '../types';
import { ProjectionDefinition, ProjectionInfo, ProjectionStatus, ProjectionView } from './define';

export interface ProjectionEngineOptions {
  logger?: Logger;
  /** Events read per replay step while rebuilding. */
  replayChunkEvents?: number;
  /** A replay turn yields the event loop after this long (apply is never blocked for longer). */
  replaySliceMs?: number;
  /** Interval of progress log lines while rebuilding. */
  progressLogMs?: number;
}

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
}

interface Runtime {
  def: ProjectionDefinition<any>;
  status: ProjectionStatus;
  position: number;
  state: unknown;
  partitions: Map<string, unknown> | null;
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
  private idleWaiters: (() => void)[] = [];

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

  get(name: string): ProjectionView | undefined {
    const rt = this.runtimes.get(name);
    if (!rt) return undefined;
    const state = rt.partitions ? Object.fromEntries(rt.partitions) : rt.state;
    return { name, position: rt.position, state };
  }

  /** One partition's state; undefined if the projection is unknown, not partitioned, or has no such partition. */
  getPartition(name: string, key: string): unknown | undefined {
    return this.runtimes.get(name)?.partitions?.get(key);
  }

  /** Starts a rebuild from position 0 in the background; throws if the projection is unknown. */
  reset(name: string): void {
    const rt = this.runtimes.get(name);
    if (!rt) throw new Error(`projection '${name}' is not registered (known: ${this.names().join(', ')})`);
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

  /** Checkpoints of every projection (states by reference: serialize before anything else runs). */
  checkpoints(): ProjectionCheckpoint[] {
    return [...this.runtimes.values()].map((rt) => ({
      name: rt.def.name,
      version: rt.def.version ?? 0,
      position: rt.position,
      status: rt.status,
      ...(rt.error !== undefined ? { error: rt.error } : {}),
      ...(rt.partitions ? { partitions: [...rt.partitions] } : { state: rt.state }),
    }));
  }

  /** Replaces every projection's state from checkpoints (a cut); unknown or outdated ones are rebuilt. */
  load(checkpoints: ProjectionCheckpoint[], lastPosition: number): void {
    const byName = new Map(checkpoints.map((c) => [c.name, c]));
    for (const [name, old] of this.runtimes) {
      const rt = this.fresh(old.def);
      const c = byName.get(name);
      if (c && c.version === (old.def.version ?? 0) && c.position <= lastPosition) {
        rt.position = c.position;
        if (rt.partitions) rt.partitions = new Map(c.partitions ?? []);
        else rt.state = c.state;
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

  private fresh(def: ProjectionDefinition<any>): Runtime {
    return {
      def,
      status: 'rebuilding',
      position: -1,
      state: def.partitionBy ? undefined : def.initial(),
      partitions: def.partitionBy ? new Map() : null,
      rebuild: null,
    };
  }

  private fold(rt: Runtime, e: EventEnvelope): void {
    const def = rt.def;
    try {
      if (!def.canHandle || def.canHandle(e)) {
        if (rt.partitions) {
          const key = def.partitionBy!(e);
          if (key !== null) {
            // One lookup in the common case; the map is written only when the state is new or replaced.
            let cur = rt.partitions.get(key);
            const known = cur !== undefined || rt.partitions.has(key);
            if (!known) cur = def.initial();
            const next = def.handle(cur, e);
            if (!known || next !== cur) rt.partitions.set(key, next);
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
      if (!this.pumpTimer) this.pumpTimer = setImmediate(() => this.pump());
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
    }
    for (const rt of lagging) this.afterTurn(rt, last);
    this.afterChange();
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
