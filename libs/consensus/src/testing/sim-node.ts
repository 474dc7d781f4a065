import { RaftCoreApi, RaftStatus } from '../core/api';
import { Message } from '../core/messages';
import { RaftOptions } from '../core/options';
import { RaftError, Ready, ReadState } from '../core/ready';
import {
  ConfigState,
  Entry,
  HardState,
  InitialState,
  NodeId,
  RaftLogReader,
  SnapshotMeta,
} from '../core/types';
import { ClusterChecker, Violation } from './checkers';
import { CounterStateMachine, entryKey } from './counter-state-machine';
import { Prng } from './prng';
import { ShadowLog } from './shadow-log';
import { TraceRing } from './trace';

/** What the simulator needs from the in-memory durable storage (MemoryStorage implements it). */
export interface SimStorage extends RaftLogReader {
  /** Makes a Ready's hardState, entries and snapshotChunk durable, and installs `snapshot` if set. */
  applyReady(ready: Ready): void;
  /** A local state-machine snapshot at `index`: the log up to it may be discarded. */
  compact(index: number, data: Uint8Array, config: ConfigState): void;
  clone(): SimStorage;
  initialState(bootstrapConfig: ConfigState): InitialState;
}

export type CoreFactory = (options: RaftOptions, log: RaftLogReader, initial: InitialState) => RaftCoreApi;

/** How this node's shell behaves; drawn per seed. */
export interface ShellProfile {
  /** Readies taken before the first is advanced (1 = no pipelining). */
  pipelineDepth: number;
  /** Apply committed entries when the Ready is taken instead of after its persistence. */
  applyBeforePersist: boolean;
  fsyncMsMin: number;
  fsyncMsMax: number;
  slowFsyncRate: number;
  slowFsyncMsMax: number;
  /** A local snapshot is taken once this many entries are applied past the last one. */
  snapshotEveryEntries: number;
  /** Probability that a snapshotChunk read says 'pending' (bytes being prepared). */
  pendingSnapshotRate: number;
  /** The simulator-level mistake: drop the durable vote on restart. */
  forgetVoteOnRestart: boolean;
  /** Check every acknowledgement against what is durable when it is sent. */
  checkPersistBeforeAck: boolean;
}

/** The cluster around a node: time, network, checkers and the simulated clients. */
export interface NodeHost {
  now(): number;
  readonly trace: TraceRing;
  readonly checker: ClusterChecker;
  send(messages: readonly Message[]): void;
  /** Calls `node.persisted(incarnation)` at virtual time `atMs`. */
  schedulePersisted(node: SimNode, incarnation: number, atMs: number): void;
  onApplied(node: SimNode, entry: Entry, writeId: number | null): void;
  /** A new vote became durable (a chance to crash right after it). */
  onVoteDurable(node: SimNode): void;
  /** A node became the first leader of its term. */
  onNewLeader(node: SimNode): void;
  /** A leader's commit index advanced. */
  onLeaderCommit(node: SimNode): void;
  /** A Ready with work to persist was taken; it becomes durable in `durableInMs`. */
  onPersistStarted(node: SimNode, durableInMs: number): void;
  onReadServed(node: SimNode, ctx: string, sm: CounterStateMachine): void;
  onReadFailed(node: SimNode, ctx: string, error: RaftError): void;
}

interface PendingReady {
  ready: Ready;
  durable: boolean;
  applied: boolean;
}

/**
 * One simulated node: the pure core plus a model of its IO shell. A Ready's hardState, entries and
 * snapshotChunk reach `storage` only after a simulated fsync; `persistedMessages` go out only then.
 * A crash throws away the core, the state machine and all work not yet durable; a restart rebuilds
 * them from `storage` alone.
 */
export class SimNode {
  up = false;
  /** Bumped on every crash, so events scheduled for an earlier life are ignored. */
  incarnation = 0;
  core: RaftCoreApi | null = null;
  sm: CounterStateMachine;
  readonly shadow = new ShadowLog();
  /** Set once a committed configuration removed this node (it is then stopped at the liveness phase). */
  removed = false;
  stopped = false;
  private pending: PendingReady[] = [];
  private lastPersistAt = 0;
  private durableHard: HardState = { term: 0, vote: null, commit: 0 };
  private waitingReads: ReadState[] = [];
  private commitSeen = 0;
  private hardCommitSeen = 0;
  private termSeen = 0;
  private checkedLeaderTerm = -1;
  /** Per term, the range of seq numbers this life sent in AppendRequests and SnapshotRequests. */
  private seqsSent = new Map<number, { min: number; max: number }>();
  lastStatus: RaftStatus | null = null;
  stats = { readies: 0, snapshotsTaken: 0, snapshotsInstalled: 0, restarts: 0 };

  constructor(
    readonly id: NodeId,
    private storage: SimStorage,
    private readonly bootstrapConfig: ConfigState,
    private readonly makeCore: CoreFactory,
    private readonly baseOptions: Omit<RaftOptions, 'id' | 'random' | 'logger'>,
    private readonly shell: ShellProfile,
    private readonly prng: Prng,
    private readonly host: NodeHost,
  ) {
    this.sm = new CounterStateMachine(bootstrapConfig);
  }

  /** Starts (or restarts) from durable storage only. */
  start(): void {
    if (this.up) throw new Error(`SimNode.start: ${this.id} is already up`);
    this.storage = this.storage.clone();
    const initial = this.storage.initialState(this.bootstrapConfig);
    if (this.shell.forgetVoteOnRestart && this.incarnation > 0)
      initial.hardState = { ...initial.hardState, vote: null };
    this.durableHard = { ...initial.hardState };
    const snap = this.storage.snapshotMeta();
    this.sm =
      snap.index > 0
        ? CounterStateMachine.restore(snap, this.readSnapshotBytes(snap))
        : new CounterStateMachine(this.bootstrapConfig);
    if (snap.index > 0)
      this.host.checker.observeDigest(this.id, snap.index, this.sm.digest, 'restart from snapshot');
    const first = this.storage.firstIndex();
    const last = this.storage.lastIndex();
    this.shadow.load(
      snap.index,
      snap.term,
      last >= first ? this.storage.entries(first, last + 1, Number.MAX_SAFE_INTEGER) : [],
    );
    this.pending = [];
    this.waitingReads = [];
    this.commitSeen = 0;
    this.hardCommitSeen = 0;
    this.termSeen = 0;
    this.checkedLeaderTerm = -1;
    this.seqsSent = new Map();
    this.lastPersistAt = this.host.now();
    const options: RaftOptions = {
      ...this.baseOptions,
      id: this.id,
      random: this.prng.derive(`core#${this.incarnation}`).asFunction(),
      logger: (line) => this.host.trace.note(this.host.now(), line),
    };
    this.core = this.makeCore(options, this.readerFor(this.storage), initial);
    this.up = true;
    this.host.trace.note(
      this.host.now(),
      `${this.id} ${this.incarnation === 0 ? 'starts' : 'restarts'}: term=${initial.hardState.term} vote=${initial.hardState.vote ?? '-'} commit=${initial.hardState.commit} log=${first}..${last} snapshot=${snap.index}/${snap.term}`,
    );
    this.afterEvent();
  }

  /** Loses everything not yet durable. */
  crash(): void {
    if (!this.up) return;
    this.host.trace.note(
      this.host.now(),
      `${this.id} CRASHES (${this.pending.filter((p) => !p.durable).length} readies not yet durable are lost)`,
    );
    this.up = false;
    this.core = null;
    this.pending = [];
    this.waitingReads = [];
    this.incarnation++;
    this.stats.restarts++;
    this.lastStatus = null;
  }

  /** Runs `fn` against the core, then handles everything it produced and checks the invariants. */
  drive(fn: (core: RaftCoreApi) => void): void {
    if (!this.up || this.core === null) return;
    let refused: RaftError | null = null;
    try {
      fn(this.core);
    } catch (err) {
      if (err instanceof Violation) throw err;
      if (!(err instanceof RaftError))
        throw new Violation('CoreContract', `${this.id}: the core threw ${describeError(err)}`);
      refused = err;
    }
    this.afterEvent();
    if (refused !== null) throw refused;
  }

  /** The head of the persistence queue became durable. */
  persisted(incarnation: number): void {
    if (incarnation !== this.incarnation || !this.up) return;
    const p = this.pending.find((x) => !x.durable);
    if (p === undefined)
      throw new Error(`SimNode.persisted: ${this.id} has no Ready waiting for persistence`);
    this.storage.applyReady(p.ready);
    if (p.ready.hardState) {
      const votedNow =
        p.ready.hardState.vote !== null &&
        (p.ready.hardState.vote !== this.durableHard.vote ||
          p.ready.hardState.term !== this.durableHard.term);
      this.durableHard = { ...p.ready.hardState };
      if (votedNow) this.host.onVoteDurable(this);
    }
    p.durable = true;
    if (p.ready.snapshot) this.installSnapshot(p.ready.snapshot);
    this.sendChecked(p.ready.persistedMessages);
    this.afterEvent();
  }

  durableHardState(): HardState {
    return this.durableHard;
  }

  private afterEvent(): void {
    this.drain();
    this.checkStatus();
  }

  private drain(): void {
    for (let rounds = 0; ; rounds++) {
      if (rounds > 10_000)
        throw new Violation(
          'CoreContract',
          `${this.id}: hasReady() stayed true for 10000 Readies in one event`,
        );
      if (!this.up || this.core === null) return;
      this.applyInOrder();
      while (this.pending.length > 0 && this.pending[0].durable && this.pending[0].applied) {
        const done = this.pending.shift()!;
        this.callCore('advance', (c) => c.advance(done.ready));
      }
      this.maybeTakeSnapshot();
      if (this.pending.length >= this.shell.pipelineDepth || !this.callCore('hasReady', (c) => c.hasReady()))
        return;
      this.take();
    }
  }

  private take(): void {
    const ready = this.callCore('ready', (c) => c.ready());
    this.stats.readies++;
    const now = this.host.now();
    if (ready.snapshot) this.shadow.resetToSnapshot(ready.snapshot.index, ready.snapshot.term);
    try {
      this.shadow.append(ready.entries);
    } catch (err) {
      throw new Violation(
        'CoreContract',
        `${this.id}: Ready entries do not fit the log: ${describeError(err)}`,
      );
    }
    this.host.checker.observeEntries(this.id, ready.entries, (i) => this.shadow.term(i));
    for (const e of ready.committedEntries)
      this.host.checker.observeCommitted(this.id, e, this.currentTerm());
    if (ready.softState)
      this.host.trace.note(
        now,
        `${this.id} is ${ready.softState.role} (leader ${ready.softState.leaderId ?? '-'})`,
      );
    if (ready.hardState) {
      if (ready.hardState.commit < this.hardCommitSeen) {
        throw new Violation(
          'CommitMonotonic',
          `${this.id}: Ready hardState lowers commit from ${this.hardCommitSeen} to ${ready.hardState.commit} without a restart`,
        );
      }
      this.hardCommitSeen = ready.hardState.commit;
    }
    this.sendChecked(ready.messages);
    for (const rs of ready.readStates) this.waitingReads.push(rs);
    for (const f of ready.failedReads) this.host.onReadFailed(this, f.ctx, f.error);
    const hasWork =
      ready.hardState !== undefined || ready.entries.length > 0 || ready.snapshotChunk !== undefined;
    const delay = hasWork ? this.fsyncDelayMs() : 0;
    this.lastPersistAt = Math.max(this.lastPersistAt, now + delay);
    if (hasWork) this.host.onPersistStarted(this, this.lastPersistAt - now);
    this.pending.push({ ready, durable: false, applied: false });
    this.host.schedulePersisted(this, this.incarnation, this.lastPersistAt);
  }

  /** Applies Readies' committed entries strictly in Ready order, each once it is allowed to. */
  private applyInOrder(): void {
    for (const p of this.pending) {
      if (p.applied) continue;
      const mustWait = !this.shell.applyBeforePersist || p.ready.snapshot !== undefined;
      if (mustWait && !p.durable) return;
      for (const e of p.ready.committedEntries) this.applyEntry(e);
      p.applied = true;
      this.serveReads();
    }
  }

  private applyEntry(e: Entry): void {
    if (e.index <= this.sm.appliedIndex) {
      throw new Violation(
        'CoreContract',
        `${this.id}: committed entry ${e.index}/${e.term} handed out again (applied is ${this.sm.appliedIndex})`,
      );
    }
    if (e.index !== this.sm.appliedIndex + 1) {
      throw new Violation(
        'CoreContract',
        `${this.id}: committed entry ${e.index}/${e.term} skips ahead of applied ${this.sm.appliedIndex}`,
      );
    }
    const key = entryKey(e);
    const writeId = this.sm.apply(e, key);
    this.host.checker.observeCommitted(this.id, e, this.currentTerm());
    this.host.checker.observeDigest(this.id, e.index, this.sm.digest, `applying ${key}`);
    this.host.onApplied(this, e, writeId);
  }

  private serveReads(): void {
    if (this.waitingReads.length === 0) return;
    const still: ReadState[] = [];
    for (const rs of this.waitingReads) {
      if (rs.index <= this.sm.appliedIndex) this.host.onReadServed(this, rs.ctx, this.sm);
      else still.push(rs);
    }
    this.waitingReads = still;
  }

  private installSnapshot(meta: SnapshotMeta): void {
    const bytes = this.readSnapshotBytes(meta);
    const sm = CounterStateMachine.restore(meta, bytes);
    if (meta.index <= this.sm.appliedIndex) {
      throw new Violation(
        'CoreContract',
        `${this.id}: asked to install snapshot ${meta.index}/${meta.term} but has already applied ${this.sm.appliedIndex}`,
      );
    }
    this.host.checker.observeDigest(
      this.id,
      meta.index,
      sm.digest,
      `installing snapshot ${meta.index}/${meta.term}`,
    );
    this.sm = sm;
    this.stats.snapshotsInstalled++;
    this.host.trace.note(
      this.host.now(),
      `${this.id} installed snapshot ${meta.index}/${meta.term} (${bytes.byteLength} B)`,
    );
    this.serveReads();
  }

  private maybeTakeSnapshot(): void {
    const applied = this.sm.appliedIndex;
    const snapIndex = this.storage.snapshotMeta().index;
    if (applied - snapIndex < this.shell.snapshotEveryEntries) return;
    // Only a durable, applied prefix can be compacted.
    if (applied > this.storage.lastIndex() || this.storage.term(applied) !== this.sm.appliedTerm) return;
    const meta: SnapshotMeta = { index: applied, term: this.sm.appliedTerm, config: this.sm.config };
    this.storage.compact(applied, this.sm.serialize(), this.sm.config);
    this.shadow.compactTo(applied);
    this.stats.snapshotsTaken++;
    this.host.trace.note(this.host.now(), `${this.id} took snapshot ${applied}/${meta.term}`);
    this.callCore('snapshotTaken', (c) => c.snapshotTaken(meta));
  }

  private readSnapshotBytes(meta: SnapshotMeta): Uint8Array {
    const got = this.storage.snapshotMeta();
    if (got.index !== meta.index || got.term !== meta.term) {
      throw new Violation(
        'CoreContract',
        `${this.id}: snapshot ${meta.index}/${meta.term} to install, but storage holds ${got.index}/${got.term}`,
      );
    }
    const chunk = this.storage.snapshotChunk(0, Number.MAX_SAFE_INTEGER);
    if (chunk === 'pending' || !chunk.done)
      throw new Error(`SimNode: storage of ${this.id} cannot hand out its whole snapshot ${meta.index}`);
    return chunk.data;
  }

  /** Sends messages after checking each acknowledgement only promises what is durable now. */
  private sendChecked(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    for (const m of messages) {
      if (this.shell.checkPersistBeforeAck) this.checkDurable(m);
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
  checkEchoedSeq(m: Message): void {
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
    if (m.type === 'VoteResponse' && m.granted && !m.preVote) {
      const hs = this.durableHard;
      if (hs.term !== m.term || hs.vote !== m.to) {
        throw new Violation(
          'PersistBeforeAck',
          `${this.id} grants its vote to ${m.to} in term ${m.term} but has durably term ${hs.term} vote ${hs.vote ?? '-'}`,
        );
      }
    } else if (m.type === 'AppendResponse' && m.success) {
      if (this.storage.lastIndex() < m.matchIndex) {
        throw new Violation(
          'PersistBeforeAck',
          `${this.id} acknowledges entries up to ${m.matchIndex} to ${m.to} but its durable log ends at ${this.storage.lastIndex()}`,
        );
      }
    } else if (m.type === 'SnapshotResponse' && m.installed) {
      // "Installed" may also mean "my log already covers it" (durably, or as committed: known to a majority).
      const covered =
        this.storage.snapshotMeta().index >= m.index ||
        this.storage.lastIndex() >= m.index ||
        (this.core !== null && this.core.status().commit >= m.index);
      if (!covered) {
        throw new Violation(
          'PersistBeforeAck',
          `${this.id} reports snapshot ${m.index} installed but its durable snapshot is ${this.storage.snapshotMeta().index} and durable log ends at ${this.storage.lastIndex()}`,
        );
      }
    }
  }

  /** Per-node checks after every event: election safety, commit and term never going back. */
  private checkStatus(): void {
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
   * A leader's commit decision counts at once, before any Ready reports it (it may crash first). Every entry a
   * quorum matched went out in a Ready, so the shadow log holds it; a leader never rewrites its own log.
   */
  private recordLeaderCommit(from: number, to: number, term: number): void {
    const hi = Math.min(to, this.shadow.lastIndex());
    for (let i = Math.max(from, this.shadow.baseIndex) + 1; i <= hi; i++)
      this.host.checker.observeCommitted(this.id, this.shadow.entry(i)!, term);
  }

  /**
   * This node's term now. A node learns of a commit only from a leader of its term or from its own commit
   * decision, so this is never below the term the entry was committed in.
   */
  private currentTerm(): number {
    return this.core === null ? Number.MAX_SAFE_INTEGER : this.core.status().term;
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

  private fsyncDelayMs(): number {
    const s = this.shell;
    if (this.prng.chance(s.slowFsyncRate)) return this.prng.range(s.fsyncMsMax, s.slowFsyncMsMax);
    return this.prng.range(s.fsyncMsMin, s.fsyncMsMax);
  }

  /** The reader the core sees: durable storage, whose snapshot bytes are sometimes not ready yet. */
  private readerFor(storage: SimStorage): RaftLogReader {
    const rate = this.shell.pendingSnapshotRate;
    const prng = this.prng;
    return {
      firstIndex: () => storage.firstIndex(),
      lastIndex: () => storage.lastIndex(),
      term: (i) => storage.term(i),
      entries: (lo, hi, maxBytes) => storage.entries(lo, hi, maxBytes),
      snapshotMeta: () => storage.snapshotMeta(),
      snapshotChunk: (offset, maxBytes) =>
        prng.chance(rate) ? 'pending' : storage.snapshotChunk(offset, maxBytes),
    };
  }
}

export function describeError(err: unknown): string {
  if (err instanceof Error)
    return `${err.name}: ${err.message}${err.stack ? `\n${err.stack.split('\n').slice(1, 6).join('\n')}` : ''}`;
  return String(err);
}
