/**
 * The Raft core's state machine: term and vote, role changes, step's term rules and dispatch to the role
 * modules (roles/), and the Ready / advance handshake with the shell. The client inputs (propose,
 * membership changes, leadership transfer) are in client-inputs.ts, campaigns and votes in election.ts,
 * the read path (ReadIndex, lease reads) in read-index.ts.
 * Pure: no IO, timers, clock or randomness of its own (eslint enforces it for core/).
 */
import { MembershipChange, RaftCoreApi, RaftStatus, PeerStatus } from './api';
import * as inputs from './client-inputs';
import * as election from './election';
import { RaftLog } from './log';
import { ConfigHistory, isVoter, members } from './membership';
import { Message, isResponse } from './messages';
import { RaftOptions } from './options';
import { Progress } from './progress';
import * as readPath from './read-index';
import { ReadOnlyQueue } from './read-only';
import { loadConfigs, validateOptions } from './startup';
import { UncommittedBytes } from './uncommitted';
import { RaftError, ReadState, Ready, Role, SnapshotChunk, SoftState } from './ready';
import { stepCandidate } from './roles/candidate';
import { stepFollower } from './roles/follower';
import {
  appendAsLeader,
  bcastAppend,
  bcastCommit,
  maybeCommit,
  stepLeader,
  tickLeader,
} from './roles/leader';
import {
  ConfigState,
  Entry,
  EntryType,
  HardState,
  InitialState,
  NodeId,
  RaftLogReader,
  SnapshotMeta,
  decodeConfig,
} from './types';

/** Committed entries handed out in one Ready when the options do not say (see RaftOptions). */
export const COMMITTED_BYTES_PER_READY_MAX = 4 * 1024 * 1024;
export const COMMITTED_ENTRIES_PER_READY_MAX = 4096;

export type RoleState = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/**
 * The Raft core: a synchronous, deterministic state machine. Inputs change state and queue work; ready()
 * hands the work out, advance() acknowledges it. Fields are read by the per-role step functions in roles/.
 */
export class RaftCore implements RaftCoreApi {
  readonly id: NodeId;
  readonly opts: RaftOptions;
  readonly log: RaftLog;
  readonly configs: ConfigHistory;

  term: number;
  vote: NodeId | null;
  state: RoleState = 'follower';
  leaderId: NodeId | null = null;

  /** Ticks since the election timer was reset (follower/candidate) or since the last check-quorum (leader). */
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTicks = 0;
  /**
   * Removed-server guard: vote requests are ignored while we know a leader and heard from it within the
   * (minimum) election timeout (etcd's rule). A (re)started node knows no leader, so it votes at once: after
   * a full-cluster restart an election costs one timeout, not two. With lease reads on, the guard also holds for
   * one election timeout after start whatever the leader: a voter that acknowledged a lease round and restarted
   * at once must not help elect a new leader while that lease may still be in use.
   */
  ticksSinceHeardLeader = 0;
  /** Ticks since start (lease arithmetic). */
  now = 0;

  votes = new Map<NodeId, boolean>();
  progress = new Map<NodeId, Progress>();
  /** Sequence number of the last message the leader sent; echoed in responses. */
  seq = 0;
  /** The tick at which each sequence number range started, for leases (pruned to one election timeout). */
  private seqTicks: { seq: number; tick: number }[] = [];
  leadTransferee: NodeId | null = null;
  transferElapsed = 0;
  /** Set once TimeoutNow was sent in this term: another node may win an election before our lease ends. */
  leaseDisabled = false;
  /** Index of the leader's first entry of its term (its no-op). */
  termStartIndex = 0;
  readonly reads = new ReadOnlyQueue();
  readonly uncommitted = new UncommittedBytes();
  /** Leader: entries were appended since the last Ready; they are sent when the next one is taken. */
  replicationPending = false;

  /** Snapshot being received: bytes handed to the shell so far. */
  incomingSnapshot: { index: number; term: number; bytes: number } | null;
  pendingChunk: SnapshotChunk | null = null;

  msgs: Message[] = [];
  persistedMsgs: Message[] = [];
  readStates: ReadState[] = [];
  failedReads: { ctx: string; error: RaftError }[] = [];
  private handedHard: HardState;
  /** The highest term known durable (its Ready was advanced). */
  private durableTerm: number;
  /** A candidate that won before its term was durable becomes leader on the advance that makes it durable. */
  private leaderOnceDurable = false;
  private handedSoft: SoftState;

  constructor(options: RaftOptions, reader: RaftLogReader, initial: InitialState) {
    validateOptions(options);
    this.id = options.id;
    this.opts = options;
    this.term = initial.hardState.term;
    this.vote = initial.hardState.vote;
    this.log = new RaftLog(reader, initial.hardState.commit, initial.applied);
    this.configs = loadConfigs(this.log, initial);
    this.incomingSnapshot = initial.partialSnapshot ? { ...initial.partialSnapshot } : null;
    this.handedHard = { term: this.term, vote: this.vote, commit: this.log.committed };
    this.durableTerm = this.term;
    this.resetElectionTimer();
    this.handedSoft = this.softState();
    this.logLine(
      `started at term ${this.term}, commit ${this.log.committed}, last index ${this.log.lastIndex()}, voters [${this.config().voters.join(',')}]`,
    );
  }

  // ---- inputs ----

  tick(): void {
    this.now++;
    this.pruneSeqTicks();
    if (this.state === 'leader') {
      tickLeader(this);
      return;
    }
    this.electionElapsed++;
    this.ticksSinceHeardLeader++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTicks) {
      this.electionElapsed = 0;
      this.startCampaign(false);
    }
  }

  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id) {
      this.logLine(`ignored a ${m.type} from ${m.from} to ${m.to}`);
      return;
    }
    if (m.term > this.term) {
      if (m.type === 'VoteRequest') {
        const guarded = this.leaderId !== null || this.opts.leaseReads;
        const inLease =
          this.state === 'leader' || (guarded && this.ticksSinceHeardLeader < this.opts.electionTicks);
        if (inLease && !m.transfer) {
          this.logLine(
            `ignored a ${m.preVote ? 'pre-vote' : 'vote'} request from ${m.from} at term ${m.term}: heard from leader ${this.leaderId ?? '-'} within the election timeout`,
          );
          return;
        }
        if (!m.preVote) this.becomeFollower(m.term, null);
      } else if (m.type === 'VoteResponse' && m.preVote && m.granted) {
        // A pre-vote is granted at the term we would campaign for; our term does not change.
      } else {
        const fromLeader = m.type === 'AppendRequest' || m.type === 'SnapshotRequest';
        this.becomeFollower(m.term, fromLeader ? m.from : null);
      }
    } else if (m.term < this.term) {
      this.answerStale(m);
      return;
    }
    if (m.type === 'VoteRequest') {
      election.handleVoteRequest(this, m);
      return;
    }
    switch (this.state) {
      case 'leader':
        stepLeader(this, m);
        return;
      case 'candidate':
      case 'pre-candidate':
        stepCandidate(this, m);
        return;
      case 'follower':
        stepFollower(this, m);
        return;
    }
  }

  propose(data: Uint8Array): { index: number; term: number } {
    return inputs.propose(this, data);
  }

  readIndex(ctx: string, opts?: { lease?: boolean }): void {
    inputs.assertLeader(this, 'readIndex');
    readPath.requestRead(this, ctx, opts?.lease === true);
  }

  changeMembership(change: MembershipChange): { index: number; term: number } {
    return inputs.changeMembership(this, change);
  }

  transferLeadership(to: NodeId | null): void {
    inputs.transferLeadership(this, to);
  }

  campaign(): void {
    this.startCampaign(false);
  }

  leaderGone(id: NodeId): boolean {
    // With lease reads the guard also protects the old leader's lease: only its expiry may lift it.
    if (this.state !== 'follower' || this.leaderId !== id || this.opts.leaseReads) return false;
    this.leaderId = null;
    this.logLine(`lost leader ${id}: its process is gone`);
    return true;
  }

  campaignIfLeaderless(): boolean {
    const waiting = this.state === 'follower' || (this.state === 'pre-candidate' && this.opts.preVote);
    if (!waiting || this.leaderId !== null || !this.promotable()) return false;
    this.electionElapsed = 0;
    this.startCampaign(false);
    return true;
  }

  snapshotTaken(meta: SnapshotMeta): void {
    if (meta.index > this.log.applying) {
      throw new Error(
        `node ${this.id}: snapshot at ${meta.index} is past the entries handed out for applying (${this.log.applying})`,
      );
    }
    this.configs.compactTo(meta.index);
    this.logLine(`took a snapshot at index ${meta.index} term ${meta.term}`);
  }

  // ---- Ready ----

  hasReady(): boolean {
    return (
      this.msgs.length > 0 ||
      this.persistedMsgs.length > 0 ||
      this.log.hasUnstable() ||
      this.log.hasPendingSnapshot() ||
      this.pendingChunk !== null ||
      this.log.hasNextCommitted() ||
      this.readStates.length > 0 ||
      this.failedReads.length > 0 ||
      this.hardStateChanged() ||
      this.softStateChanged() ||
      (this.state === 'leader' && (this.reads.needsRound() || this.replicationPending))
    );
  }

  ready(): Ready {
    if (this.state === 'leader' && this.replicationPending) bcastAppend(this);
    this.replicationPending = false;
    readPath.startReadRound(this);
    const snapshot = this.log.takeSnapshot();
    // Entries after a snapshot wait for the next Ready: the shell persists entries before installing.
    const entries = snapshot ? [] : this.log.takeUnstable();
    // Responses may promise entries held back for the next Ready: then they wait for it too.
    const holdPersisted = snapshot !== undefined && this.log.hasUnstable();
    const rd: Ready = {
      entries,
      messages: this.msgs,
      // A response promising state of an older term is dropped: a newer leader may have replaced that state.
      persistedMessages: holdPersisted
        ? []
        : this.persistedMsgs.filter((m) => m.term >= this.term || !isResponse(m)),
      committedEntries: this.log.takeCommitted(
        this.opts.committedBytesPerReadyMax ?? COMMITTED_BYTES_PER_READY_MAX,
        this.opts.committedEntriesPerReadyMax ?? COMMITTED_ENTRIES_PER_READY_MAX,
      ),
      readStates: this.readStates,
      failedReads: this.failedReads,
    };
    if (snapshot) rd.snapshot = snapshot;
    if (this.pendingChunk) rd.snapshotChunk = this.pendingChunk;
    if (this.hardStateChanged()) {
      this.handedHard = { term: this.term, vote: this.vote, commit: this.log.committed };
      rd.hardState = { ...this.handedHard };
    }
    if (this.softStateChanged()) {
      this.handedSoft = this.softState();
      rd.softState = { ...this.handedSoft };
    }
    this.msgs = [];
    if (!holdPersisted) this.persistedMsgs = [];
    this.readStates = [];
    this.failedReads = [];
    this.pendingChunk = null;
    return rd;
  }

  advance(rd: Ready): void {
    if (rd.hardState) this.durableTerm = Math.max(this.durableTerm, rd.hardState.term);
    if (this.leaderOnceDurable && this.state === 'candidate' && this.durableTerm >= this.term)
      this.becomeLeader();
    if (rd.snapshot) this.log.stableSnapshotTo(rd.snapshot.index);
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      this.log.stableTo(last.index, last.term);
    }
    if (rd.committedEntries.length > 0)
      this.log.appliedTo(rd.committedEntries[rd.committedEntries.length - 1].index);
    if (this.state === 'leader') {
      const self = this.progress.get(this.id);
      if (self) self.maybeUpdate(this.log.stableIndex());
      if (rd.entries.length > 0 && maybeCommit(this)) bcastCommit(this);
    }
  }

  status(): RaftStatus {
    const progress: Record<NodeId, PeerStatus> = {};
    if (this.state === 'leader') for (const [id, pr] of this.progress) progress[id] = pr.status();
    const snap = this.log.snapshotMeta();
    return {
      id: this.id,
      term: this.term,
      role: this.role(),
      leaderId: this.leaderId,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      snapshot: { index: snap.index, term: snap.term },
      config: this.config(),
      progress,
    };
  }

  // ---- role changes (only these change `state`) ----

  becomeFollower(term: number, leader: NodeId | null): void {
    if (term < this.term)
      throw new Error(
        `node ${this.id}: becoming follower at term ${term} below the current term ${this.term}`,
      );
    const wasLeader = this.state === 'leader';
    const changed = term !== this.term || this.state !== 'follower';
    if (term > this.term) {
      this.term = term;
      this.vote = null;
    }
    this.state = 'follower';
    this.leaderId = leader;
    this.resetElectionTimer();
    if (wasLeader) this.stopLeading();
    if (changed) this.logLine(`became follower at term ${this.term}${leader ? ` (leader ${leader})` : ''}`);
  }

  becomePreCandidate(): void {
    this.state = 'pre-candidate';
    this.leaderId = null;
    this.resetElectionTimer();
    this.logLine(`became pre-candidate at term ${this.term}`);
  }

  becomeCandidate(): void {
    this.term++;
    this.vote = this.id;
    this.state = 'candidate';
    this.leaderId = null;
    this.resetElectionTimer();
    this.logLine(`became candidate at term ${this.term}`);
  }

  becomeLeader(): void {
    this.state = 'leader';
    this.leaderId = this.id;
    this.resetElectionTimer();
    this.leadTransferee = null;
    this.leaseDisabled = false;
    this.uncommitted.reset();
    this.progress = new Map();
    this.syncProgress();
    const self = this.progress.get(this.id);
    if (self) {
      self.match = this.log.stableIndex();
      self.becomeReplicate();
    }
    for (const pr of this.progress.values()) pr.recentActive = true;
    this.logLine(`became leader at term ${this.term}`);
    const noop = appendAsLeader(this, EntryType.Noop, new Uint8Array(0));
    this.termStartIndex = noop.index;
  }

  /**
   * Won the election (election.ts): lead now, or, when we won (alone) before our own term and vote are
   * durable, on the advance that makes them durable.
   */
  becomeLeaderOnceDurable(): void {
    if (this.term > this.durableTerm) this.leaderOnceDurable = true;
    else this.becomeLeader();
  }

  private stopLeading(): void {
    readPath.failPendingReads(this);
    this.progress = new Map();
    this.leadTransferee = null;
    this.uncommitted.reset();
  }

  // ---- shared helpers for the role modules ----

  config(): ConfigState {
    return this.configs.current();
  }

  /**
   * May this node campaign? A voter of the current configuration may. So may a voter of the previous one while
   * the current one (which removes it) is not known to be committed: the node may hold the only up-to-date log
   * (say, a leader that removed itself and restarted), and without it no one else could be elected. It then
   * campaigns with the current configuration's quorum and steps down once that configuration commits.
   */
  promotable(): boolean {
    if (isVoter(this.config(), this.id)) return true;
    const previous = this.configs.previous();
    return (
      previous !== null && this.configs.currentIndex() > this.log.committed && isVoter(previous, this.id)
    );
  }

  role(): Role {
    if (this.state === 'follower' && !this.promotable() && this.config().learners.includes(this.id))
      return 'learner';
    return this.state;
  }

  /**
   * Queues a message. `afterPersist`: it promises state of this Ready. Any message of a term not yet durable
   * waits too (a leader elected alone must not speak for a term it could forget in a crash).
   */
  send(m: Message, afterPersist: boolean): void {
    if ((afterPersist || this.term > this.durableTerm) && !this.opts.unsafe?.ackBeforePersist)
      this.persistedMsgs.push(m);
    else this.msgs.push(m);
  }

  nextSeq(): number {
    this.seq++;
    const last = this.seqTicks[this.seqTicks.length - 1];
    if (!last || last.tick !== this.now) this.seqTicks.push({ seq: this.seq, tick: this.now });
    return this.seq;
  }

  /** The tick at which the message with sequence number `seq` was sent (-Infinity if too old to know). */
  sentTick(seq: number): number {
    for (let i = this.seqTicks.length - 1; i >= 0; i--)
      if (this.seqTicks[i].seq <= seq) return this.seqTicks[i].tick;
    return Number.NEGATIVE_INFINITY;
  }

  private pruneSeqTicks(): void {
    const keepFrom = this.now - 2 * this.opts.electionTicks;
    while (this.seqTicks.length > 1 && this.seqTicks[1].tick < keepFrom) this.seqTicks.shift();
  }

  heardFromLeader(from: NodeId): void {
    this.leaderId = from;
    this.electionElapsed = 0;
    this.ticksSinceHeardLeader = 0;
  }

  /** Appends entries to the log (leader or follower), keeping the configuration history in step. */
  appendToLog(entries: Entry[]): void {
    if (entries.length === 0) return;
    let configChanged = false;
    if (entries[0].index <= this.log.lastIndex()) {
      configChanged = this.configs.truncateFrom(entries[0].index);
      if (configChanged)
        this.logLine(
          `reverted to the configuration at index ${this.configs.currentIndex()} after a conflicting append`,
        );
    }
    this.log.append(entries);
    for (const e of entries) {
      if (e.type !== EntryType.Config) continue;
      this.configs.push(e.index, decodeConfig(e.data));
      configChanged = true;
    }
    if (configChanged && this.state === 'leader') this.syncProgress();
  }

  /** Leader: one Progress per member (new members start probing at the end of our log), none for others. */
  syncProgress(): void {
    const ids = new Set(members(this.config()));
    ids.add(this.id);
    for (const id of ids) {
      if (this.progress.has(id)) continue;
      const pr = new Progress(
        this.log.lastIndex() + 1,
        this.opts.inflightMsgsMax,
        this.opts.inflightBytesMax,
      );
      pr.recentActive = true;
      this.progress.set(id, pr);
    }
    for (const id of [...this.progress.keys()]) if (!ids.has(id)) this.progress.delete(id);
    if (this.leadTransferee !== null && !isVoter(this.config(), this.leadTransferee))
      this.leadTransferee = null;
  }

  // Elections (election.ts), for the role modules.

  /** Starts a (pre-)election; `transfer` skips pre-vote and bypasses the voters' lease guard. */
  startCampaign(transfer: boolean): void {
    election.startCampaign(this, transfer);
  }

  /** Acts on the votes counted so far; returns true if the election ended. */
  tallyVotes(): boolean {
    return election.tallyVotes(this);
  }

  // The read path (read-index.ts), for the role modules.

  /** Leader: serve a read whose term-commit precondition holds. */
  serveRead(ctx: string, lease: boolean): void {
    readPath.serveRead(this, ctx, lease);
  }

  /** Leader: release reads whose heartbeat round a quorum acknowledged. */
  confirmReads(): void {
    readPath.confirmReads(this);
  }

  /** Leader: a quorum acknowledged messages sent recently enough that no other leader can exist yet. */
  leaseValid(): boolean {
    return readPath.leaseValid(this);
  }

  logLine(text: string): void {
    this.opts.logger?.(`node ${this.id} ${text}`);
  }

  // ---- private ----

  /**
   * A message from an older term: tell the sender our term so a stale leader or candidate steps down.
   * The answer carries seq 0, never the request's: it is sent at our (newer) term, and if its receiver has
   * meanwhile restarted and become leader of that term, an echoed seq from its earlier life would count as an
   * acknowledgement of its own heartbeat rounds (confirming ReadIndex reads and leases without a quorum).
   */
  private answerStale(m: Message): void {
    switch (m.type) {
      case 'AppendRequest':
        this.send(
          {
            type: 'AppendResponse',
            from: this.id,
            to: m.from,
            term: this.term,
            success: false,
            matchIndex: 0,
            conflictTerm: 0,
            conflictIndex: 0,
            lastLogIndex: this.log.lastIndex(),
            seq: 0,
          },
          true,
        );
        return;
      case 'SnapshotRequest':
        this.send(
          {
            type: 'SnapshotResponse',
            from: this.id,
            to: m.from,
            term: this.term,
            index: m.meta.index,
            nextOffset: -1,
            installed: false,
            seq: 0,
          },
          true,
        );
        return;
      case 'VoteRequest':
        if (m.preVote)
          this.send(
            {
              type: 'VoteResponse',
              from: this.id,
              to: m.from,
              term: this.term,
              preVote: true,
              granted: false,
            },
            true,
          );
        return;
      default:
        return;
    }
  }

  private resetElectionTimer(): void {
    this.leaderOnceDurable = false;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    const r = this.opts.random();
    if (!(r >= 0 && r < 1))
      throw new Error(`node ${this.id}: options.random returned ${r}, expected a number in [0, 1)`);
    this.randomizedElectionTicks = this.opts.electionTicks + Math.floor(r * this.opts.electionTicks);
    this.votes = new Map();
  }

  private softState(): SoftState {
    return { leaderId: this.leaderId, role: this.role() };
  }

  private hardStateChanged(): boolean {
    return this.term !== this.handedHard.term || this.vote !== this.handedHard.vote;
  }

  private softStateChanged(): boolean {
    return this.leaderId !== this.handedSoft.leaderId || this.role() !== this.handedSoft.role;
  }
}
