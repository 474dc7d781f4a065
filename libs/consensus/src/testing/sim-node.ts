import { MembershipChange, RaftCoreApi, RaftStatus } from '../core/api';
import { Message } from '../core/messages';
import { RaftOptions } from '../core/options';
import { RaftError, Ready } from '../core/ready';
import {
  ConfigState,
  Entry,
  HardState,
  InitialState,
  NodeId,
  RaftLogReader,
  SnapshotMeta,
} from '../core/types';
import { RaftNode } from '../node/raft-node';
import {
  Clock,
  NodeStorage,
  PeerTransport,
  Scheduler,
  StateMachine,
  StateMachineSnapshot,
  TransportEvents,
} from '../node/ports';
import { ClusterChecker, Violation } from './checkers';
import { CounterStateMachine, entryKey } from './counter-state-machine';
import { MemoryNodeStorage } from './memory-node-storage';
import { Prng } from './prng';
import { ShadowLog } from './shadow-log';
import { TraceRing } from './trace';

export type CoreFactory = (options: RaftOptions, log: RaftLogReader, initial: InitialState) => RaftCoreApi;

/** How this node's shell and disk behave; drawn per seed. */
export interface ShellProfile {
  /** RaftNode's readiesInFlightMax: Readies taken before the oldest is advanced (1 = no pipelining). */
  readiesInFlightMax: number;
  fsyncMsMin: number;
  fsyncMsMax: number;
  slowFsyncRate: number;
  slowFsyncMsMax: number;
  /** RaftNode's snapshotEveryEntries: a local snapshot once this many entries are applied past the last one. */
  snapshotEveryEntries: number;
  /** RaftNode's snapshotKeepEntries: log entries kept behind a snapshot. */
  snapshotKeepEntries: number;
  /** Probability that a snapshotChunk read says 'pending' (bytes being prepared). */
  pendingSnapshotRate: number;
  /** A planted storage mistake: the durable vote is lost on restart. */
  forgetVoteOnRestart: boolean;
  /** A planted shell mistake (RaftNode's unsafe switch): acknowledgements leave before their persist completes. */
  sendBeforePersist: boolean;
  /** A planted shell mistake (RaftNode's unsafe switch): Readies are taken while a snapshot install is in flight. */
  pipelineThroughInstall: boolean;
  /** Check every acknowledgement against what is durable when it is sent. */
  checkPersistBeforeAck: boolean;
}

/** The cluster around a node: time, network, checkers and the simulated clients. */
export interface NodeHost {
  now(): number;
  readonly trace: TraceRing;
  readonly checker: ClusterChecker;
  send(messages: readonly Message[]): void;
  /** Runs `fn` at virtual time `atMs`, unless `node` crashed (its incarnation changed) meanwhile. */
  schedule(node: SimNode, incarnation: number, atMs: number, fn: () => void): void;
  /** The delay until a node's next tick (its clock drift and jitter). */
  tickDelayMs(node: SimNode): number;
  /** A broken invariant seen inside the node (where throwing would be swallowed); the run ends after the event. */
  violation(v: Violation): void;
  /** The node ran code in this event: check its status once the event's microtasks are done. */
  touched(node: SimNode): void;
  onApplied(node: SimNode, entry: Entry): void;
  /** A new vote became durable (a chance to crash right after it). */
  onVoteDurable(node: SimNode): void;
  /** A node became the first leader of its term. */
  onNewLeader(node: SimNode): void;
  /** A leader's commit index advanced. */
  onLeaderCommit(node: SimNode): void;
  /** An fsync started; it completes in `durableInMs`. */
  onPersistStarted(node: SimNode, durableInMs: number): void;
}

/** What the real node is given for each life: settings that do not change between lives. */
export interface SimNodeSettings {
  bootstrapConfig: ConfigState;
  makeCore: CoreFactory;
  raft: Omit<RaftOptions, 'id' | 'random' | 'logger'>;
  tickMs: number;
  proposalTimeoutMs: number;
  shell: ShellProfile;
}

/** Practically never: snapshots are taken by entry count in the simulator. */
const SNAPSHOT_EVERY_BYTES = Number.MAX_SAFE_INTEGER;

/**
 * One simulated node: the production RaftNode (the Ready pipeline, group commit, snapshots, reads, membership)
 * with the real core, on virtual time, an in-memory disk whose fsyncs complete on virtual time, and a
 * network the simulator controls. A probe around the core watches every Ready, and the state machine and
 * transport watch what is applied and sent, feeding the cluster checkers.
 *
 * A crash abandons the RaftNode object: its timers and fsyncs (scheduled for its incarnation) never run,
 * so its pending promises never settle; the next life starts from a copy of what was durable.
 */
export class SimNode {
  up = false;
  /** Bumped on every crash, so events scheduled for an earlier life are ignored. */
  incarnation = 0;
  /** Set once a committed configuration removed this node (it is then stopped at the liveness phase). */
  removed = false;
  stopped = false;
  raft: RaftNode | null = null;
  /** The core of this life, behind the probe (for status checks and the leader's view). */
  core: RaftCoreApi | null = null;
  readonly shadow = new ShadowLog();
  lastStatus: RaftStatus | null = null;
  stats = { readies: 0, snapshotsTaken: 0, snapshotsInstalled: 0, restarts: 0 };
  /** The membership change the core accepted last ({index, term}), read right after changeMembership(). */
  lastChange: { index: number; term: number } | null = null;
  transfersAccepted = 0;

  private storage: MemoryNodeStorage | null = null;
  private machine: SimStateMachine;
  private handler: ((m: Message) => void) | null = null;
  private transportEvents: TransportEvents = {};
  private durableHard: HardState = { term: 0, vote: null, commit: 0 };
  private commitSeen = 0;
  private hardCommitSeen = 0;
  private termSeen = 0;
  private checkedLeaderTerm = -1;
  /** The last committed index the core handed out in this life (entries must follow it without gaps). */
  private handedOut = 0;
  /** Per term, the range of seq numbers this life sent in AppendRequests and SnapshotRequests. */
  private seqsSent = new Map<number, { min: number; max: number }>();

  constructor(
    readonly id: NodeId,
    private readonly settings: SimNodeSettings,
    private readonly prng: Prng,
    private readonly host: NodeHost,
  ) {
    this.machine = new SimStateMachine(this, settings.bootstrapConfig, host, false);
  }

  /** The state machine of this life. */
  get sm(): CounterStateMachine {
    return this.machine.sm;
  }

  /** Starts (or restarts) from durable storage only. */
  start(): void {
    if (this.up) throw new Error(`SimNode.start: ${this.id} is already up`);
    const inc = this.incarnation;
    const sync = () => this.fsync(inc);
    this.storage = this.storage ? this.storage.crashCopy({ sync }) : new MemoryNodeStorage({ sync });
    const storage = this.storage;
    if (this.settings.shell.forgetVoteOnRestart && inc > 0) storage.forgetVote();
    this.durableHard = storage.durableHardState();
    storage.durableListeners.push((work) => {
      if (inc === this.incarnation && work.hardState) this.onHardStateDurable(work.hardState);
    });
    const snap = storage.snapshotMeta();
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.shadow.load(
      snap.index,
      snap.term,
      last >= first ? storage.entries(first, last + 1, Number.MAX_SAFE_INTEGER) : [],
    );
    this.commitSeen = 0;
    this.hardCommitSeen = 0;
    this.termSeen = 0;
    this.checkedLeaderTerm = -1;
    this.seqsSent = new Map();
    this.lastStatus = null;
    this.core = null;
    this.machine = new SimStateMachine(this, this.settings.bootstrapConfig, this.host, true);
    const { shell, bootstrapConfig } = this.settings;
    const bootstrap = bootstrapConfig.voters.length > 0 ? bootstrapConfig : undefined;
    this.host.trace.note(
      this.host.now(),
      `${this.id} ${inc === 0 ? 'starts' : 'restarts'}: term=${this.durableHard.term} vote=${this.durableHard.vote ?? '-'} commit=${this.durableHard.commit} log=${first}..${last} snapshot=${snap.index}/${snap.term}`,
    );
    this.raft = new RaftNode(
      {
        id: this.id,
        storage: this.withPendingSnapshots(storage),
        transport: this.transportFor(inc),
        stateMachine: this.machine,
        raft: { ...this.settings.raft, random: this.prng.derive(`core#${inc}`).asFunction() },
        tickMs: this.settings.tickMs,
        bootstrap,
        snapshotEveryEntries: shell.snapshotEveryEntries,
        snapshotEveryBytes: SNAPSHOT_EVERY_BYTES,
        snapshotKeepEntries: shell.snapshotKeepEntries,
        proposalTimeoutMs: this.settings.proposalTimeoutMs,
        readiesInFlightMax: shell.readiesInFlightMax,
        unsafe: {
          sendBeforePersist: shell.sendBeforePersist,
          pipelineThroughInstall: shell.pipelineThroughInstall,
        },
        logger: {
          log: (line) => this.host.trace.note(this.host.now(), line),
          warn: (line) => this.host.trace.note(this.host.now(), `WARN ${line}`),
          // The simulated disk never fails: a node that fails has met a broken contract.
          error: (line) => this.host.violation(new Violation('NodeFailed', `${this.id}: ${line}`)),
        },
      },
      {
        coreFactory: (options, log, initial) => this.probe(options, log, initial, inc),
        clock: this.clockFor(),
        scheduler: this.schedulerFor(inc),
      },
    );
    this.up = true;
    const machine = this.machine;
    machine.starting = true;
    this.raft.start().then(
      () => {
        machine.starting = false;
      },
      (e: Error) => {
        if (inc === this.incarnation)
          this.host.violation(new Violation('CoreContract', `${this.id}: start failed: ${describeError(e)}`));
      },
    );
  }

  /** Loses everything not yet durable. */
  crash(): void {
    if (!this.up) return;
    this.host.trace.note(this.host.now(), `${this.id} CRASHES (what was not fsynced is lost)`);
    this.up = false;
    this.raft = null;
    this.core = null;
    this.handler = null;
    this.incarnation++;
    this.stats.restarts++;
    this.lastStatus = null;
  }

  /** The transport's hint that `peer`'s process is gone (a refused connection), true or not. */
  peerGone(peer: NodeId): void {
    if (!this.up || this.handler === null) return;
    this.host.trace.note(this.host.now(), `${this.id} hears that ${peer}'s port refuses connections`);
    this.transportEvents.peerGone?.(peer);
  }

  /** A message arrives from the network. */
  deliver(m: Message): void {
    if (!this.up || this.handler === null) return;
    this.checkEchoedSeq(m);
    this.handler(m);
  }

  durableHardState(): HardState {
    return this.durableHard;
  }

  /** Per-node checks after every event: election safety, commit and term never going back. */
  checkStatus(): void {
    if (!this.up || this.core === null) return;
    const s = this.callCore('status', (c) => c.status());
    this.lastStatus = s;
    if (s.term < this.termSeen)
      throw new Violation(
        'CoreContract',
        `${this.id}: term went back from ${this.termSeen} to ${s.term} without a restart`,
      );
    this.termSeen = s.term;
    if (s.commit < this.commitSeen)
      throw new Violation(
        'CommitMonotonic',
        `${this.id}: commit index went back from ${this.commitSeen} to ${s.commit} without a restart`,
      );
    if (s.role === 'leader' && s.commit > this.commitSeen) {
      this.recordLeaderCommit(this.commitSeen, s.commit, s.term);
      this.host.onLeaderCommit(this);
    }
    this.commitSeen = s.commit;
    if (s.role !== 'leader') return;
    if (this.host.checker.leaderOf(s.term) === undefined) this.host.onNewLeader(this);
    this.host.checker.observeLeader(s.term, this.id);
    if (this.checkedLeaderTerm !== s.term && this.shadow.lastIndex() === s.lastIndex) {
      this.checkedLeaderTerm = s.term;
      this.host.checker.checkLeaderCompleteness(
        this.id,
        s.term,
        this.shadow.baseIndex,
        this.shadow.lastIndex(),
        (i) => this.shadow.term(i),
      );
    }
  }

  /**
   * This node's term now. A node learns of a commit only from a leader of its term or from its own commit
   * decision, so this is never below the term the entry was committed in.
   */
  currentTerm(): number {
    return this.core === null ? Number.MAX_SAFE_INTEGER : this.core.status().term;
  }

  // ---- the real node's surroundings ----------------------------------------------------------------

  private clockFor(): Clock {
    const host = this.host;
    return { now: () => host.now() };
  }

  private schedulerFor(inc: number): Scheduler {
    const host = this.host;
    return {
      soon: (fn) => host.schedule(this, inc, host.now(), fn),
      every: (_ms, fn) => {
        let cancelled = false;
        const next = (delay: number) =>
          host.schedule(this, inc, host.now() + delay, () => {
            if (cancelled) return;
            fn();
            next(host.tickDelayMs(this));
          });
        // The first tick comes at a random point of the first period: nodes do not tick in step.
        next(this.prng.range(0, this.settings.tickMs));
        return () => {
          cancelled = true;
        };
      },
    };
  }

  private transportFor(inc: number): PeerTransport {
    return {
      start: async (onMessage, events) => {
        if (inc !== this.incarnation) return;
        this.handler = onMessage;
        this.transportEvents = events ?? {};
      },
      send: (messages) => {
        if (inc === this.incarnation && this.up) this.sendChecked(messages);
      },
      setPeers: () => {},
      close: async () => {},
    };
  }

  /** An fsync of this life's disk: done after a drawn delay, or never if the node crashes first. */
  private fsync(inc: number): Promise<void> {
    const delay = this.fsyncDelayMs();
    return new Promise((resolve) => {
      if (inc !== this.incarnation) return;
      this.host.onPersistStarted(this, delay);
      this.host.schedule(this, inc, this.host.now() + delay, resolve);
    });
  }

  private fsyncDelayMs(): number {
    const s = this.settings.shell;
    if (this.prng.chance(s.slowFsyncRate)) return this.prng.range(s.fsyncMsMax, s.slowFsyncMsMax);
    return this.prng.range(s.fsyncMsMin, s.fsyncMsMax);
  }

  private onHardStateDurable(hs: HardState): void {
    const votedNow =
      hs.vote !== null && (hs.vote !== this.durableHard.vote || hs.term !== this.durableHard.term);
    this.durableHard = { ...hs };
    if (votedNow) this.host.onVoteDurable(this);
  }

  /** The storage the node sees: the in-memory disk, whose snapshot bytes are sometimes not ready yet. */
  private withPendingSnapshots(storage: MemoryNodeStorage): NodeStorage {
    const rate = this.settings.shell.pendingSnapshotRate;
    if (rate === 0) return storage;
    const prng = this.prng;
    return {
      firstIndex: () => storage.firstIndex(),
      lastIndex: () => storage.lastIndex(),
      term: (i) => storage.term(i),
      entries: (lo, hi, maxBytes) => storage.entries(lo, hi, maxBytes),
      snapshotMeta: () => storage.snapshotMeta(),
      snapshotChunk: (offset, maxBytes) =>
        prng.chance(rate) ? 'pending' : storage.snapshotChunk(offset, maxBytes),
      initialState: () => storage.initialState(),
      persist: (work) => storage.persist(work),
      installSnapshot: (meta) => storage.installSnapshot(meta),
      saveSnapshot: (meta, content) => storage.saveSnapshot(meta, content),
      readSnapshot: () => storage.readSnapshot(),
      compact: (index) => storage.compact(index),
      close: () => storage.close(),
    };
  }

  // ---- the probe around the core -------------------------------------------------------------------

  /** The core the RaftNode drives, wrapped so that every Ready and call is checked as it happens. */
  private probe(options: RaftOptions, log: RaftLogReader, initial: InitialState, inc: number): RaftCoreApi {
    const core = this.settings.makeCore(options, log, initial);
    if (inc === this.incarnation) this.core = core;
    this.handedOut = initial.applied ?? 0;
    const call = <T>(what: string, fn: () => T): T => {
      if (inc === this.incarnation) this.host.touched(this);
      try {
        return fn();
      } catch (err) {
        if (err instanceof RaftError || err instanceof Violation) throw err;
        const v = new Violation('CoreContract', `${this.id}: core.${what}() threw ${describeError(err)}`);
        this.host.violation(v);
        throw v;
      }
    };
    return {
      tick: () => call('tick', () => core.tick()),
      step: (m) => call('step', () => core.step(m)),
      propose: (data) => call('propose', () => core.propose(data)),
      readIndex: (ctx, opts) => call('readIndex', () => core.readIndex(ctx, opts)),
      changeMembership: (change: MembershipChange) =>
        call('changeMembership', () => {
          const at = core.changeMembership(change);
          this.lastChange = at;
          return at;
        }),
      transferLeadership: (to) =>
        call('transferLeadership', () => {
          core.transferLeadership(to);
          this.transfersAccepted++;
        }),
      campaign: () => call('campaign', () => core.campaign()),
      leaderGone: (id) => call('leaderGone', () => core.leaderGone(id)),
      campaignIfLeaderless: () => call('campaignIfLeaderless', () => core.campaignIfLeaderless()),
      hasReady: () => call('hasReady', () => core.hasReady()),
      ready: () =>
        call('ready', () => {
          const ready = core.ready();
          if (inc === this.incarnation) this.observeReady(ready);
          return ready;
        }),
      advance: (ready) => call('advance', () => core.advance(ready)),
      snapshotTaken: (meta: SnapshotMeta) =>
        call('snapshotTaken', () => {
          core.snapshotTaken(meta);
          if (inc !== this.incarnation) return;
          this.shadow.compactTo(meta.index);
          this.stats.snapshotsTaken++;
        }),
      status: () => call('status', () => core.status()),
    };
  }

  /** What a Ready says is checked against everything the cluster has said before. */
  private observeReady(ready: Ready): void {
    this.stats.readies++;
    const now = this.host.now();
    if (ready.snapshot) {
      this.shadow.resetToSnapshot(ready.snapshot.index, ready.snapshot.term);
      this.handedOut = ready.snapshot.index;
    }
    try {
      this.shadow.append(ready.entries);
    } catch (err) {
      throw this.fail('CoreContract', `Ready entries do not fit the log: ${describeError(err)}`);
    }
    this.host.checker.observeEntries(this.id, ready.entries, (i) => this.shadow.term(i));
    for (const e of ready.committedEntries) {
      if (e.index !== this.handedOut + 1) {
        throw this.fail(
          'CoreContract',
          `committed entry ${e.index}/${e.term} handed out after ${this.handedOut} (must follow without gaps or repeats)`,
        );
      }
      this.handedOut = e.index;
      this.host.checker.observeCommitted(this.id, e, this.currentTerm());
    }
    if (ready.softState)
      this.host.trace.note(
        now,
        `${this.id} is ${ready.softState.role} (leader ${ready.softState.leaderId ?? '-'})`,
      );
    if (ready.hardState) {
      if (ready.hardState.commit < this.hardCommitSeen) {
        throw this.fail(
          'CommitMonotonic',
          `Ready hardState lowers commit from ${this.hardCommitSeen} to ${ready.hardState.commit} without a restart`,
        );
      }
      this.hardCommitSeen = ready.hardState.commit;
    }
  }

  // ---- what leaves the node ------------------------------------------------------------------------

  /** Sends messages after checking each acknowledgement only promises what is durable now. */
  private sendChecked(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    for (const m of messages) {
      if (this.settings.shell.checkPersistBeforeAck) this.checkDurable(m);
      if (m.type === 'AppendRequest' || m.type === 'SnapshotRequest') this.noteSeqSent(m.term, m.seq);
    }
    this.host.send(messages);
  }

  private noteSeqSent(term: number, seq: number): void {
    const r = this.seqsSent.get(term);
    if (r === undefined) this.seqsSent.set(term, { min: seq, max: seq });
    else {
      if (seq < r.min) r.min = seq;
      if (seq > r.max) r.max = seq;
    }
  }

  /**
   * A leader counts a response's seq as an acknowledgement of its own heartbeat rounds (ReadIndex, leases).
   * So a response at the leader's term must echo a seq that this leader (this life) sent in that term.
   */
  private checkEchoedSeq(m: Message): void {
    if ((m.type !== 'AppendResponse' && m.type !== 'SnapshotResponse') || m.seq === 0) return;
    const s = this.lastStatus;
    if (s === null || s.role !== 'leader' || s.term !== m.term) return;
    const r = this.seqsSent.get(m.term);
    if (r === undefined || m.seq < r.min || m.seq > r.max) {
      throw new Violation(
        'StaleAck',
        `${this.id}, leader of term ${m.term}, receives a ${m.type} from ${m.from} echoing seq ${m.seq}, but sent seqs ${r ? `${r.min}..${r.max}` : 'none'} in this term: it would count as a heartbeat acknowledgement`,
      );
    }
  }

  private checkDurable(m: Message): void {
    const storage = this.storage!;
    if (m.type === 'VoteResponse' && m.granted && !m.preVote) {
      const hs = this.durableHard;
      if (hs.term !== m.term || hs.vote !== m.to) {
        throw this.fail(
          'PersistBeforeAck',
          `grants its vote to ${m.to} in term ${m.term} but has durably term ${hs.term} vote ${hs.vote ?? '-'}`,
        );
      }
    } else if (m.type === 'AppendResponse' && m.success) {
      if (storage.lastIndex() < m.matchIndex) {
        throw this.fail(
          'PersistBeforeAck',
          `acknowledges entries up to ${m.matchIndex} to ${m.to} but its durable log ends at ${storage.lastIndex()}`,
        );
      }
    } else if (m.type === 'SnapshotResponse' && m.installed) {
      // "Installed" may also mean "my log already covers it" (durably, or as committed: known to a majority).
      const covered =
        storage.snapshotMeta().index >= m.index ||
        storage.lastIndex() >= m.index ||
        (this.core !== null && this.core.status().commit >= m.index);
      if (!covered) {
        throw this.fail(
          'PersistBeforeAck',
          `reports snapshot ${m.index} installed but its durable snapshot is ${storage.snapshotMeta().index} and durable log ends at ${storage.lastIndex()}`,
        );
      }
    }
  }

  /**
   * A leader's commit decision counts at once, before any Ready reports it (it may crash first). Every entry a
   * quorum matched went out in a Ready, so the shadow log holds it; a leader never rewrites its own log.
   */
  private recordLeaderCommit(from: number, to: number, term: number): void {
    const hi = Math.min(to, this.shadow.lastIndex());
    for (let i = Math.max(from, this.shadow.baseIndex) + 1; i <= hi; i++)
      this.host.checker.observeCommitted(this.id, this.shadow.entry(i)!, term);
  }

  /** Records a violation found inside the node (the node may swallow the throw) and returns it to throw. */
  private fail(invariant: Violation['invariant'], detail: string): Violation {
    const v = new Violation(invariant, `${this.id}: ${detail}`);
    this.host.violation(v);
    return v;
  }

  private callCore<T>(what: string, fn: (core: RaftCoreApi) => T): T {
    if (this.core === null) throw new Error(`SimNode.${what}: ${this.id} is down`);
    try {
      return fn(this.core);
    } catch (err) {
      if (err instanceof Violation) throw err;
      throw new Violation('CoreContract', `${this.id}: core.${what}() threw ${describeError(err)}`);
    }
  }
}

/**
 * The replicated state the RaftNode applies to: a CounterStateMachine whose every applied entry and
 * restored snapshot is reported to the cluster checkers (same entry and same digest at each index).
 */
class SimStateMachine implements StateMachine {
  sm: CounterStateMachine;
  /** RaftNode.start() is running: a restore now is the restart's, from the node's own snapshot. */
  starting = false;

  constructor(
    private readonly node: SimNode,
    config: ConfigState,
    private readonly host: NodeHost,
    private readonly live: boolean,
  ) {
    this.sm = new CounterStateMachine(config);
  }

  apply(e: Entry): number | null {
    if (!this.live) return null;
    if (e.index !== this.sm.appliedIndex + 1) {
      const v = new Violation(
        'CoreContract',
        `${this.node.id}: entry ${e.index}/${e.term} applied after ${this.sm.appliedIndex} (must follow without gaps or repeats)`,
      );
      this.host.violation(v);
      throw v;
    }
    const key = entryKey(e);
    const writeId = this.sm.apply(e, key);
    this.host.checker.observeCommitted(this.node.id, e, this.node.currentTerm());
    this.host.checker.observeDigest(this.node.id, e.index, this.sm.digest, `applying ${key}`);
    this.host.onApplied(this.node, e);
    return writeId;
  }

  appliedIndex(): number {
    return this.sm.appliedIndex;
  }

  async snapshot(): Promise<StateMachineSnapshot> {
    // Captured now; the bytes are handed out later, as a real state machine's would be.
    const bytes = this.sm.serialize();
    return {
      index: this.sm.appliedIndex,
      data: (async function* () {
        yield bytes;
      })(),
    };
  }

  async restore(meta: SnapshotMeta, data: AsyncIterable<Uint8Array>): Promise<void> {
    const parts: Uint8Array[] = [];
    for await (const chunk of data) parts.push(chunk);
    const bytes = new Uint8Array(Buffer.concat(parts));
    const sm = CounterStateMachine.restore(meta, bytes);
    if (meta.index <= this.sm.appliedIndex) {
      const v = new Violation(
        'CoreContract',
        `${this.node.id}: asked to install snapshot ${meta.index}/${meta.term} but has already applied ${this.sm.appliedIndex}`,
      );
      this.host.violation(v);
      throw v;
    }
    const how = this.starting ? 'restart from snapshot' : `installing snapshot ${meta.index}/${meta.term}`;
    this.host.checker.observeDigest(this.node.id, meta.index, sm.digest, how);
    this.sm = sm;
    if (!this.starting) this.node.stats.snapshotsInstalled++;
    this.host.trace.note(
      this.host.now(),
      `${this.node.id} restored snapshot ${meta.index}/${meta.term} (${bytes.byteLength} B)`,
    );
  }
}

export function describeError(err: unknown): string {
  if (err instanceof Error)
    return `${err.name}: ${err.message}${err.stack ? `\n${err.stack.split('\n').slice(1, 6).join('\n')}` : ''}`;
  return String(err);
}
