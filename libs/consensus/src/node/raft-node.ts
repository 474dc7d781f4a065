import { MembershipChange, RaftCoreApi, RaftCoreFactory } from '../core/api';
import { DEFAULT_RAFT_OPTIONS, RaftOptions } from '../core/options';
import { RaftCore } from '../core/raft';
import { isResponse } from '../core/messages';
import { Ready, SoftState } from '../core/ready';
import {
  ConfigState,
  Entry,
  EntryType,
  MemberAddress,
  NodeId,
  SnapshotMeta,
  decodeConfig,
} from '../core/types';
import { AppliedEntry, NodeError, NodeStatus, RaftNodeApi, RaftNodeOptions, ReadConsistency } from './api';
import { AppliedConfigs, isEmptyConfig } from './applied-configs';
import { notLeaderError, toNodeError } from './errors';
import {
  applySliceMsMax,
  catchUpSlackEntries,
  catchUpTimeoutMsDefault,
  leaderGoneFirstMs,
  leaderGoneJitterMs,
  leaderGoneRetryMs,
  leaderGoneStepMs,
  configScanBytesMax,
  readiesInflightMax,
  stopTransferTimeoutMs,
  transferTimeoutElections,
  transferTimeoutMsMin,
} from './limits';
import { Clock, Scheduler } from './ports';
import { PendingProposals, ProposalOutcome } from './proposals';
import { systemClock, systemScheduler } from './system-time';
import { Waiters } from './waiters';

type Logger = NonNullable<RaftNodeOptions['logger']>;
type State = 'new' | 'running' | 'stopping' | 'stopped';

interface ReadBatch {
  lease: boolean;
  callers: { resolve: (index: number) => void; reject: (e: Error) => void }[];
}

const defaultLogger: Logger = { log: () => {}, warn: (m) => console.warn(m), error: (m) => console.error(m) };

const defaultCoreFactory: RaftCoreFactory = (options, log, initial) => new RaftCore(options, log, initial);

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * The IO shell around the pure Raft core: real timers, the Ready loop (send → persist with group commit →
 * install snapshot → send what waited for persistence → apply → advance), pipelined so the next Ready's
 * persist queues while the previous fsync is in flight, with advances in strict order.
 */
export class RaftNode implements RaftNodeApi {
  readonly id: NodeId;
  private readonly opts: RaftNodeOptions;
  private readonly raftOptions: RaftOptions;
  private readonly logger: Logger;
  private readonly coreFactory: RaftCoreFactory;
  private core!: RaftCoreApi;
  private state: State = 'new';
  private failure: string | null = null;
  private readonly clock: Clock;
  private readonly scheduler: Scheduler;
  private readonly readiesMax: number;
  private cancelTicks: (() => void) | null = null;

  private pumpScheduled = false;
  private readiesInflight = 0;
  /**
   * A Ready carrying a snapshot to install is in flight: no later Ready is taken until it completes, since
   * their entries and chunks build on the installed snapshot (storage must see the install first).
   */
  private installInFlight = false;
  /** The term of the latest hard state taken from the core (durable or on its way). */
  private termTaken = 0;
  /** Completion of the Readies taken so far, in order. */
  private chain: Promise<void> = Promise.resolve();
  /**
   * Sending what waited for persistence, in order. It does not wait for earlier Readies' applies (a vote
   * must not wait behind seconds of catch-up applying), except behind a snapshot install.
   */
  private sendChain: Promise<void> = Promise.resolve();

  private applied = 0;
  private appliedTerm = 0;
  private configs!: AppliedConfigs;
  private peersKey = '';
  private currentPeers: Record<NodeId, string> = {};
  private softState: SoftState = { leaderId: null, role: 'follower' };
  private initialCommit = 0;
  private caughtUpTarget: number | null = null;

  private readonly proposals: PendingProposals;
  private readonly waiters: Waiters;
  private readSeq = 0;
  private readBatches: ReadBatch[] = [];
  private readonly pendingReads = new Map<string, { batch: ReadBatch; deadlineMs: number }>();

  private snapshotLock: Promise<unknown> = Promise.resolve();
  private snapshotting: Promise<SnapshotMeta> | null = null;
  private sinceSnapshotEntries = 0;
  private sinceSnapshotBytes = 0;

  // Plain listener sets (no rxjs in the library's surface): called synchronously, in registration order.
  private readonly appliedListeners = new Set<(applied: AppliedEntry) => void>();
  private readonly softStateListeners = new Set<(state: SoftState) => void>();

  /**
   * `deps` replace the node's surroundings: the core (the simulator plants mistakes in it), and the clock
   * and scheduler (the simulator runs the node on virtual time).
   */
  constructor(
    opts: RaftNodeOptions,
    deps: { coreFactory?: RaftCoreFactory; clock?: Clock; scheduler?: Scheduler } = {},
  ) {
    if (!(opts.tickMs > 0))
      throw new Error(`raft node ${opts.id}: tickMs must be positive, got ${opts.tickMs}`);
    if (!(opts.proposalTimeoutMs > 0))
      throw new Error(`raft node ${opts.id}: proposalTimeoutMs must be positive`);
    if (!(opts.snapshotEveryEntries > 0) || !(opts.snapshotEveryBytes > 0) || opts.snapshotKeepEntries < 0) {
      throw new Error(
        `raft node ${opts.id}: snapshotEveryEntries and snapshotEveryBytes must be positive, snapshotKeepEntries ≥ 0`,
      );
    }
    this.id = opts.id;
    this.opts = opts;
    this.logger = opts.logger ?? defaultLogger;
    this.coreFactory = deps.coreFactory ?? defaultCoreFactory;
    this.clock = deps.clock ?? systemClock;
    this.scheduler = deps.scheduler ?? systemScheduler;
    this.waiters = new Waiters(this.clock);
    this.readiesMax = opts.readiesInFlightMax ?? readiesInflightMax;
    if (!(this.readiesMax >= 1)) throw new Error(`raft node ${opts.id}: readiesInFlightMax must be ≥ 1`);
    this.raftOptions = {
      ...DEFAULT_RAFT_OPTIONS,
      logger: (line) => this.logger.log(line),
      ...opts.raft,
      id: opts.id,
      random: opts.raft?.random ?? Math.random,
    };
    this.proposals = new PendingProposals(opts.id, opts.metrics?.proposalStages?.bind(opts.metrics) ?? null);
  }

  onApplied(listener: (applied: AppliedEntry) => void): () => void {
    this.appliedListeners.add(listener);
    return () => this.appliedListeners.delete(listener);
  }

  onSoftState(listener: (state: SoftState) => void): () => void {
    this.softStateListeners.add(listener);
    listener(this.softState);
    return () => this.softStateListeners.delete(listener);
  }

  private emitSoftState(): void {
    for (const l of this.softStateListeners) l(this.softState);
  }

  // ---- lifecycle -----------------------------------------------------------------------------------

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`raft node ${this.id}: start() called twice`);
    const { storage, stateMachine } = this.opts;
    const initial = storage.initialState();
    const joinMode = isEmptyConfig(initial.config) && !this.opts.bootstrap;
    const config =
      isEmptyConfig(initial.config) && this.opts.bootstrap ? this.opts.bootstrap : initial.config;

    const snap = storage.snapshotMeta();
    if (snap.index > 0 && stateMachine.appliedIndex() < snap.index) {
      const data = storage.readSnapshot();
      if (!data)
        throw new Error(
          `raft node ${this.id}: storage reports snapshot ${snap.index} but has no bytes for it`,
        );
      await stateMachine.restore(snap, data);
    }
    this.applied = Math.max(snap.index, stateMachine.appliedIndex());
    this.appliedTerm = storage.term(this.applied) ?? snap.term;
    this.configs = new AppliedConfigs(
      snap.index,
      snap.index > 0 ? snap.config : (this.opts.bootstrap ?? initial.config),
    );
    this.scanAppliedConfigs(snap.index + 1, this.applied);
    this.initialCommit = initial.hardState.commit;
    this.termTaken = initial.hardState.term;

    this.core = this.coreFactory(this.raftOptions, storage, {
      ...initial,
      // The state machine keeps what it applied: the core hands out committed entries from after it.
      applied: this.applied,
      config,
      bootstrapConfig: snap.index === 0 && this.opts.bootstrap ? this.opts.bootstrap : undefined,
    });
    this.softState = { leaderId: null, role: this.core.status().role };
    this.emitSoftState();
    this.refreshPeers();
    await this.opts.transport.start((m) => this.onMessage(m), { peerGone: (id) => this.onPeerGone(id) });
    this.state = 'running';
    this.cancelTicks = this.scheduler.every(this.opts.tickMs, () => this.onTick());
    this.logger.log(
      `node ${this.id} started at term ${initial.hardState.term}, applied ${this.applied}, last index ${storage.lastIndex()}` +
        (joinMode ? ' in join mode (waiting to be added by a leader)' : ''),
    );
    this.schedulePump();
  }

  async stop(opts: { transferLeadership?: boolean } = {}): Promise<void> {
    if (this.state !== 'running') return;
    if (
      opts.transferLeadership !== false &&
      this.isLeader() &&
      this.failure === null &&
      this.otherVoters().length > 0
    ) {
      try {
        const to = await this.transferLeadershipWithin(null, stopTransferTimeoutMs);
        this.logger.log(`node ${this.id} handed leadership to ${to} before stopping`);
      } catch (e) {
        this.logger.warn(
          `node ${this.id}: leadership transfer before stop failed (${(e as Error).message}); stopping anyway`,
        );
      }
    }
    if (this.state !== 'running') return;
    this.state = 'stopping';
    this.cancelTicks?.();
    this.cancelTicks = null;
    this.rejectEverything(new NodeError('stopped', `node ${this.id} is stopping`));
    await this.chain.catch(() => {});
    await this.snapshotLock.catch(() => {});
    await this.opts.transport.close();
    await this.opts.storage.close();
    this.state = 'stopped';
    this.appliedListeners.clear();
    this.softStateListeners.clear();
    this.logger.log(`node ${this.id} stopped`);
  }

  // ---- API -----------------------------------------------------------------------------------------

  propose(command: Uint8Array): Promise<{ index: number; result: unknown }> {
    const refused = this.refusal('propose');
    if (refused) return Promise.reject(refused);
    let at: { index: number; term: number };
    try {
      at = this.core.propose(command);
    } catch (e) {
      this.opts.metrics?.proposal('refused');
      return Promise.reject(toNodeError(e, this.id, 'propose'));
    }
    this.opts.metrics?.proposal('accepted');
    this.schedulePump();
    const now = this.clock.now();
    return this.proposals.add(at.index, at.term, now + this.opts.proposalTimeoutMs, now);
  }

  read(consistency: ReadConsistency): Promise<number> {
    const refused = this.refusal(`${consistency} read`);
    if (refused) return Promise.reject(refused);
    if (consistency === 'local') return Promise.resolve(this.applied);
    if (!this.isLeader())
      return Promise.reject(notLeaderError(this.id, this.softState.leaderId, `${consistency} read`));
    // Reads in the same macrotask share one ReadIndex round.
    const lease = consistency === 'lease' && this.raftOptions.leaseReads;
    let batch = this.readBatches.find((b) => b.lease === lease);
    if (!batch) {
      batch = { lease, callers: [] };
      this.readBatches.push(batch);
    }
    const b = batch;
    const p = new Promise<number>((resolve, reject) => b.callers.push({ resolve, reject }));
    this.schedulePump();
    return p;
  }

  async changeMembership(change: MembershipChange): Promise<void> {
    const what = `membership change ${change.type} ${change.id}`;
    const refused = this.refusal(what);
    if (refused) throw refused;
    let at: { index: number; term: number };
    try {
      at = this.core.changeMembership(change);
    } catch (e) {
      throw toNodeError(e, this.id, what);
    }
    this.logger.log(`node ${this.id} proposed ${what} at index ${at.index} term ${at.term}`);
    this.schedulePump();
    await this.proposals.add(at.index, at.term, this.clock.now() + this.opts.proposalTimeoutMs);
    // Joint consensus: the core appends C_new once C_old,new commits; done when no outgoing voters remain.
    await this.waiters.waitFor(
      () => this.configs.latest().outgoing.length === 0,
      this.opts.proposalTimeoutMs,
      `${what} to leave joint consensus`,
    );
  }

  /** Adds `id` as a learner, waits until it has nearly caught up (bounded), then promotes it to voter. */
  async addMember(
    id: NodeId,
    address: MemberAddress,
    opts: { catchUpTimeoutMs?: number } = {},
  ): Promise<void> {
    const refused = this.refusal(`adding member ${id}`);
    if (refused) throw refused;
    if (!this.isLeader()) throw notLeaderError(this.id, this.softState.leaderId, `adding member ${id}`);
    const config = this.core.status().config;
    if (config.voters.includes(id) && config.outgoing.length === 0) return;
    if (!config.learners.includes(id)) await this.changeMembership({ type: 'addLearner', id, address });
    await this.waiters.waitFor(
      () => {
        if (!this.isLeader())
          return notLeaderError(this.id, this.softState.leaderId, `catch-up of learner ${id}`);
        const s = this.core.status();
        const p = s.progress[id];
        return p !== undefined && p.match >= s.lastIndex - catchUpSlackEntries;
      },
      opts.catchUpTimeoutMs ?? catchUpTimeoutMsDefault,
      `learner ${id} to catch up`,
    );
    await this.changeMembership({ type: 'promote', id });
  }

  removeMember(id: NodeId): Promise<void> {
    return this.changeMembership({ type: 'remove', id });
  }

  transferLeadership(to?: NodeId): Promise<NodeId> {
    const timeoutMs = Math.max(
      transferTimeoutMsMin,
      transferTimeoutElections * this.raftOptions.electionTicks * 2 * this.opts.tickMs,
    );
    return this.transferLeadershipWithin(to ?? null, timeoutMs);
  }

  async snapshotNow(): Promise<SnapshotMeta> {
    const refused = this.refusal('snapshot');
    if (refused) throw refused;
    if (this.snapshotting) await this.snapshotting.catch(() => {});
    return this.startSnapshot();
  }

  status(): NodeStatus {
    if (this.state === 'new') throw new Error(`raft node ${this.id}: status() before start()`);
    const s = this.core.status();
    // A failed node cannot lead, whatever its core still believes.
    const failed = this.failure !== null ? { role: this.softState.role, leaderId: null, progress: {} } : {};
    return {
      ...s,
      ...failed,
      applied: this.applied,
      caughtUp: this.caughtUpTarget !== null && this.applied >= this.caughtUpTarget,
      storageFailed: this.failure,
    };
  }

  // ---- inputs --------------------------------------------------------------------------------------

  /** The transport found `peer`'s Raft port closed: fast failover if it was our leader (see limits.ts). */
  private onPeerGone(peer: NodeId): void {
    if (this.state !== 'running' || this.failure !== null) return;
    if (!this.core.leaderGone(peer)) return;
    this.logger.log(`node ${this.id}: leader ${peer} is gone (its Raft port refuses connections)`);
    this.schedulePump();
    const voters = this.core
      .status()
      .config.voters.filter((id) => id !== peer)
      .sort();
    const rank = voters.indexOf(this.id);
    if (rank < 0) return;
    const delayMs =
      leaderGoneFirstMs + rank * leaderGoneStepMs + this.raftOptions.random() * leaderGoneJitterMs;
    // A second round in case the first met voters that had not yet noticed (they ignore vote requests).
    for (const atMs of [delayMs, delayMs + leaderGoneRetryMs]) {
      const cancel = this.scheduler.every(atMs, () => {
        cancel();
        if (this.state !== 'running' || this.failure !== null) return;
        if (this.core.campaignIfLeaderless()) this.schedulePump();
      });
    }
  }

  private onMessage(m: Parameters<RaftCoreApi['step']>[0]): void {
    if (this.state !== 'running' || this.failure !== null) return;
    if (m.to !== this.id) {
      this.logger.warn(`node ${this.id}: dropped a ${m.type} from ${m.from} addressed to ${m.to}`);
      return;
    }
    try {
      this.core.step(m);
    } catch (e) {
      this.logger.warn(`node ${this.id}: ${m.type} from ${m.from} refused: ${(e as Error).message}`);
    }
    this.schedulePump();
  }

  private onTick(): void {
    if (this.state !== 'running') return;
    const now = this.clock.now();
    this.proposals.expire(now);
    this.expireReads(now);
    this.waiters.expire(now);
    if (this.failure !== null) return;
    this.core.tick();
    this.schedulePump();
    this.waiters.checkAll();
    this.sampleMetrics();
  }

  // ---- the Ready loop ------------------------------------------------------------------------------

  private schedulePump(): void {
    if (this.pumpScheduled || this.state !== 'running') return;
    this.pumpScheduled = true;
    this.scheduler.soon(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.state !== 'running' || this.failure !== null) return;
    this.startReads();
    const pipelineThroughInstall = this.opts.unsafe?.pipelineThroughInstall === true;
    // (installInFlight is read on every turn: the Ready just dispatched may be the one that installs.)
    while (
      this.readiesInflight < this.readiesMax &&
      (!this.installInFlight || pipelineThroughInstall) &&
      this.core.hasReady()
    ) {
      this.dispatch(this.core.ready());
    }
  }

  /** The at-once part of a Ready: send, start persisting, take note of soft state and reads. */
  private dispatch(ready: Ready): void {
    this.readiesInflight++;
    if (ready.snapshot) this.installInFlight = true;
    if (ready.hardState) this.termTaken = ready.hardState.term;
    if (ready.softState) this.softStateChanged(ready.softState);
    // A configuration entry may add a member: the transport learns its address before the first message
    // to it; a removed member's address goes only after this Ready's messages to it are sent.
    const configChanged = ready.entries.some((e) => e.type === EntryType.Config);
    if (configChanged) this.refreshPeers(true);
    if (ready.messages.length > 0) this.opts.transport.send(ready.messages);
    // A deliberate mistake for the simulator's self-test: acknowledgements leave before they are durable.
    const early = this.opts.unsafe?.sendBeforePersist === true && !ready.snapshot;
    if (early && ready.persistedMessages.length > 0) this.opts.transport.send(ready.persistedMessages);
    let persisted: Promise<void> = Promise.resolve();
    if (ready.hardState || ready.entries.length > 0 || ready.snapshotChunk) {
      const startedMs = this.clock.now();
      const lastEntry = ready.entries.length > 0 ? ready.entries[ready.entries.length - 1].index : 0;
      try {
        persisted = this.opts.storage
          .persist({ hardState: ready.hardState, entries: ready.entries, snapshotChunk: ready.snapshotChunk })
          .then(() => {
            const now = this.clock.now();
            this.opts.metrics?.persisted((now - startedMs) / 1000, ready.entries.length);
            if (lastEntry > 0) this.proposals.markPersisted(lastEntry, now);
          });
      } catch (e) {
        persisted = Promise.reject(e as Error);
      }
      persisted.catch(() => {}); // handled in order by complete()
    }
    const committed = ready.committedEntries;
    if (committed.length > 0)
      this.proposals.markCommitted(committed[committed.length - 1].index, this.clock.now());
    for (const rs of ready.readStates) this.onReadState(rs.ctx, rs.index);
    for (const fr of ready.failedReads) {
      const error = new NodeError(
        'unavailable',
        `node ${this.id}: read not confirmed (${fr.error.message}); retry`,
        fr.error.leaderId,
      );
      this.onFailedRead(fr.ctx, error);
    }
    if (configChanged) this.refreshPeers();
    const durable = this.sendChain.then(() => this.afterPersist(ready, persisted, early));
    this.chain = this.chain.then(() => this.complete(ready, durable));
    this.sendChain = ready.snapshot ? this.chain : durable.then(() => {});
  }

  /** In persist order: once the Ready is durable, send what waited for it (after a snapshot's install: complete()). */
  private async afterPersist(ready: Ready, persisted: Promise<void>, sentEarly: boolean): Promise<boolean> {
    if (this.state !== 'running' || this.failure !== null) {
      await persisted.catch(() => {});
      return false;
    }
    try {
      await persisted;
    } catch (e) {
      this.fail(`storage failed to persist: ${(e as Error).message}`);
      return false;
    }
    if (this.state !== 'running' || this.failure !== null) return false;
    if (!ready.snapshot && !sentEarly) this.sendPersisted(ready);
    return true;
  }

  /**
   * Sends what waited for the Ready's persist. A response of an older term than the node has since taken is
   * dropped: a later Ready (durable in the same group commit) may have replaced what it promises, e.g. a new
   * leader's entries truncated the log an AppendResponse acknowledges. Dropping a message is always safe.
   */
  private sendPersisted(ready: Ready): void {
    const msgs = ready.persistedMessages;
    if (msgs.length === 0) return;
    const term = this.termTaken;
    const current = msgs.every((m) => m.term >= term)
      ? msgs
      : msgs.filter((m) => m.term >= term || !isResponse(m));
    if (current.length > 0) this.opts.transport.send(current);
  }

  /** The in-order part of a Ready, once it is durable: install, apply, advance. */
  private async complete(ready: Ready, durable: Promise<boolean>): Promise<void> {
    if (!(await durable) || this.state !== 'running' || this.failure !== null) return;
    try {
      if (ready.snapshot) {
        await this.installSnapshot(ready.snapshot);
        if (this.state !== 'running') return;
        this.sendPersisted(ready);
      }
      await this.applyEntries(ready.committedEntries);
      if (this.state !== 'running') return;
      this.core.advance(ready);
    } catch (e) {
      this.fail(`${(e as Error).message}`);
      return;
    }
    this.readiesInflight--;
    if (ready.snapshot) this.installInFlight = false;
    this.waiters.checkAll();
    this.maybeSnapshot();
    this.schedulePump();
  }

  /** Applies in slices of at most applySliceMsMax, yielding to the event loop between them (ticks, HTTP, peers). */
  private async applyEntries(entries: Entry[]): Promise<void> {
    const sm = this.opts.stateMachine;
    let sliceStartMs = this.clock.now();
    for (const e of entries) {
      if (this.clock.now() - sliceStartMs > applySliceMsMax) {
        await new Promise<void>((resolve) => this.scheduler.soon(resolve));
        if (this.state !== 'running') return;
        sliceStartMs = this.clock.now();
      }
      if (e.index <= this.applied) continue; // already in the state machine (its own progress or a snapshot)
      if (e.index !== this.applied + 1) {
        throw new Error(
          `raft node ${this.id}: committed entry ${e.index} follows applied index ${this.applied}; entries must be applied without gaps`,
        );
      }
      let result = sm.apply(e);
      if (isPromiseLike(result)) result = await result;
      if (this.state !== 'running') return;
      this.applied = e.index;
      this.appliedTerm = e.term;
      this.sinceSnapshotEntries++;
      this.sinceSnapshotBytes += e.data.byteLength;
      if (e.type === EntryType.Config) this.configs.record(e.index, decodeConfig(e.data));
      this.proposals.settle(e.index, e.term, result, this.clock.now());
      for (const l of this.appliedListeners) l({ entry: e, result });
    }
  }

  private async installSnapshot(meta: SnapshotMeta): Promise<void> {
    await this.withSnapshotLock(async () => {
      await this.opts.storage.installSnapshot(meta);
      const data = this.opts.storage.readSnapshot();
      if (!data)
        throw new Error(`raft node ${this.id}: installed snapshot ${meta.index} has no bytes in storage`);
      await this.opts.stateMachine.restore(meta, data);
      this.applied = meta.index;
      this.appliedTerm = meta.term;
      this.configs.reset(meta.index, meta.config);
      this.sinceSnapshotEntries = 0;
      this.sinceSnapshotBytes = 0;
      this.proposals.abandonUpTo(meta.index);
      this.logger.log(`node ${this.id} installed snapshot at index ${meta.index} term ${meta.term}`);
    });
    this.refreshPeers();
  }

  private softStateChanged(ss: SoftState): void {
    const before = this.softState;
    this.softState = { ...ss };
    if (before.role !== ss.role || before.leaderId !== ss.leaderId) {
      this.logger.log(`node ${this.id} is ${ss.role}, leader ${ss.leaderId ?? 'unknown'}`);
    }
    this.refreshPeers();
    if (this.caughtUpTarget === null && ss.leaderId !== null) {
      this.caughtUpTarget = Math.max(this.initialCommit, this.core.status().commit);
    }
    this.emitSoftState();
  }

  // ---- reads ---------------------------------------------------------------------------------------

  private startReads(): void {
    const batches = this.readBatches;
    if (batches.length === 0) return;
    this.readBatches = [];
    for (const batch of batches) {
      const ctx = `${this.id}:${++this.readSeq}`;
      try {
        this.core.readIndex(ctx, batch.lease ? { lease: true } : undefined);
      } catch (e) {
        const err = toNodeError(e, this.id, 'linearizable read');
        for (const c of batch.callers) c.reject(err);
        continue;
      }
      this.pendingReads.set(ctx, { batch, deadlineMs: this.clock.now() + this.opts.proposalTimeoutMs });
    }
  }

  private onReadState(ctx: string, index: number): void {
    const pending = this.pendingReads.get(ctx);
    if (!pending) return;
    this.pendingReads.delete(ctx);
    const callers = pending.batch.callers;
    this.waiters
      .waitFor(() => this.applied >= index, this.opts.proposalTimeoutMs, `apply of read index ${index}`)
      .then(
        () => callers.forEach((c) => c.resolve(index)),
        (e: Error) => callers.forEach((c) => c.reject(e)),
      );
  }

  private onFailedRead(ctx: string, error: NodeError): void {
    const pending = this.pendingReads.get(ctx);
    if (!pending) return;
    this.pendingReads.delete(ctx);
    for (const c of pending.batch.callers) c.reject(error);
  }

  private expireReads(nowMs: number): void {
    for (const [ctx, p] of this.pendingReads) {
      if (p.deadlineMs > nowMs) continue;
      this.onFailedRead(
        ctx,
        new NodeError('timeout', `node ${this.id}: read not confirmed by a majority in time; retry`),
      );
    }
  }

  // ---- leadership ----------------------------------------------------------------------------------

  private async transferLeadershipWithin(to: NodeId | null, timeoutMs: number): Promise<NodeId> {
    const refused = this.refusal('leadership transfer');
    if (refused) throw refused;
    if (!this.isLeader()) throw notLeaderError(this.id, this.softState.leaderId, 'leadership transfer');
    if (to === this.id) return this.id;
    try {
      this.core.transferLeadership(to);
    } catch (e) {
      throw toNodeError(e, this.id, 'leadership transfer');
    }
    this.schedulePump();
    await this.waiters.waitFor(
      () => this.softState.leaderId !== null && this.softState.leaderId !== this.id,
      timeoutMs,
      `leadership transfer to ${to ?? 'the most caught-up voter'}`,
    );
    return this.softState.leaderId!;
  }

  private isLeader(): boolean {
    return this.softState.role === 'leader';
  }

  private otherVoters(): NodeId[] {
    const c = this.core.status().config;
    return [...new Set([...c.voters, ...c.outgoing])].filter((v) => v !== this.id);
  }

  // ---- snapshots -----------------------------------------------------------------------------------

  private maybeSnapshot(): void {
    if (this.snapshotting || this.state !== 'running') return;
    if (
      this.sinceSnapshotEntries < this.opts.snapshotEveryEntries &&
      this.sinceSnapshotBytes < this.opts.snapshotEveryBytes
    )
      return;
    this.startSnapshot().catch((e: Error) =>
      this.logger.warn(`node ${this.id}: snapshot failed: ${e.message}; will retry later`),
    );
  }

  private startSnapshot(): Promise<SnapshotMeta> {
    if (this.snapshotting) return this.snapshotting;
    const p = this.withSnapshotLock(() => this.takeSnapshot());
    this.snapshotting = p;
    const clear = () => {
      if (this.snapshotting === p) this.snapshotting = null;
    };
    p.then(clear, clear);
    return p;
  }

  /** Takes a state-machine snapshot, stores it, tells the core, compacts the log behind it. Runs beside the Ready loop. */
  private async takeSnapshot(): Promise<SnapshotMeta> {
    const { storage, stateMachine } = this.opts;
    const startedMs = this.clock.now();
    // Entries applied from here on count toward the next snapshot (also when this one is deferred or fails).
    this.sinceSnapshotEntries = 0;
    this.sinceSnapshotBytes = 0;
    const snapshotting = stateMachine.snapshot();
    // What the state machine did before handing back its promise held the event loop (and every append).
    const captureSyncMs = this.clock.now() - startedMs;
    const snap = await snapshotting;
    const capturedMs = this.clock.now();
    const index = snap.index;
    // Parts let the storage hard-link the state machine's immutable files instead of copying them.
    const content = 'parts' in snap ? snap.parts : snap.data;
    if (index > this.applied) {
      throw new Error(
        `raft node ${this.id}: state machine snapshot at ${index} is past the applied index ${this.applied}`,
      );
    }
    const current = storage.snapshotMeta();
    if (index <= current.index) return current;
    const term = index === this.applied ? this.appliedTerm : storage.term(index);
    if (term === undefined)
      throw new Error(`raft node ${this.id}: no term known for snapshot index ${index}`);
    const config = this.configs.at(index);
    if (isEmptyConfig(config)) {
      // A joining node may not know the configuration before its first configuration entry.
      this.logger.log(
        `node ${this.id}: snapshot at ${index} deferred: the configuration at that index is not known here`,
      );
      return current;
    }
    const meta: SnapshotMeta = { index, term, config };
    await storage.saveSnapshot(meta, content);
    const savedMs = this.clock.now();
    if (this.state !== 'running') return meta;
    this.core.snapshotTaken(meta);
    await storage.compact(Math.max(0, index - this.opts.snapshotKeepEntries));
    this.configs.pruneBefore(index);
    // The core logs "took a snapshot at index N term T" (snapshotTaken); the duration goes to the metrics.
    const doneMs = this.clock.now();
    this.opts.metrics?.snapshotTaken((doneMs - startedMs) / 1000, index);
    this.opts.metrics?.snapshotStages?.({
      captureSyncMs,
      captureMs: capturedMs - startedMs,
      writeMs: savedMs - capturedMs,
      compactMs: doneMs - savedMs,
    });
    return meta;
  }

  /** Never two snapshots at once: local snapshots and installs of received ones take turns. */
  private withSnapshotLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.snapshotLock.then(fn, fn);
    this.snapshotLock = run.catch(() => {});
    return run;
  }

  // ---- helpers -------------------------------------------------------------------------------------

  private refusal(what: string): NodeError | null {
    if (this.state === 'new')
      return new NodeError('unavailable', `node ${this.id} is not started yet (${what})`);
    if (this.state !== 'running') return new NodeError('stopped', `node ${this.id} is stopped (${what})`);
    if (this.failure !== null) {
      return new NodeError(
        'storage_failed',
        `node ${this.id} refuses ${what}: ${this.failure}; restart the node once the cause is fixed (a disk error, or a state machine that failed to apply)`,
      );
    }
    return null;
  }

  /** Fail-stop: a node whose disk failed makes no more promises (no votes, acknowledgements or writes). */
  private fail(reason: string): void {
    if (this.failure !== null) return;
    this.failure = reason;
    this.logger.error(
      `node ${this.id} FAILED: ${reason}. It no longer votes, acknowledges or accepts writes; the others elect a new leader. Restart it once the cause is fixed.`,
    );
    this.rejectEverything(new NodeError('storage_failed', `node ${this.id}: ${reason}`));
    this.softState = {
      leaderId: null,
      role: this.softState.role === 'leader' ? 'follower' : this.softState.role,
    };
    this.emitSoftState();
  }

  private rejectEverything(error: NodeError): void {
    // A proposal in the log may already be on a majority and commit under the next leader: its outcome is
    // unknown (retry with the same ids), never a definite refusal.
    this.proposals.rejectAll(
      new NodeError('timeout', `${error.message}; the outcome of this proposal is unknown, retry`),
    );
    this.waiters.rejectAll(error);
    for (const [ctx] of this.pendingReads) this.onFailedRead(ctx, error);
    for (const batch of this.readBatches) for (const c of batch.callers) c.reject(error);
    this.readBatches = [];
  }

  /** `keepCurrent`: only add addresses (a removed member still gets the messages already on their way to it). */
  private refreshPeers(keepCurrent = false): void {
    const config: ConfigState = this.core.status().config;
    const peers: Record<NodeId, string> = keepCurrent ? { ...this.currentPeers } : {};
    if (isEmptyConfig(config)) Object.assign(peers, this.opts.joinPeers);
    for (const [id, address] of Object.entries(config.addresses))
      if (id !== this.id) peers[id] = address.raftAddress;
    const key = JSON.stringify(peers);
    if (key === this.peersKey) return;
    this.peersKey = key;
    this.currentPeers = peers;
    this.opts.transport.setPeers(peers);
  }

  private scanAppliedConfigs(from: number, to: number): void {
    const storage = this.opts.storage;
    let lo = Math.max(from, storage.firstIndex());
    const hi = Math.min(to, storage.lastIndex()) + 1;
    while (lo < hi) {
      const batch = storage.entries(lo, hi, configScanBytesMax);
      for (const e of batch)
        if (e.type === EntryType.Config) this.configs.record(e.index, decodeConfig(e.data));
      lo += batch.length;
    }
  }

  private sampleMetrics(): void {
    const metrics = this.opts.metrics;
    if (!metrics) return;
    const s = this.core.status();
    metrics.state({
      term: s.term,
      role: s.role,
      commit: s.commit,
      applied: this.applied,
      lastIndex: s.lastIndex,
    });
    if (s.role !== 'leader') return;
    const lag: Record<NodeId, number> = {};
    for (const [peer, p] of Object.entries(s.progress))
      if (peer !== this.id) lag[peer] = Math.max(0, s.lastIndex - p.match);
    metrics.peerLag(lag);
  }
}

export type { ProposalOutcome };
