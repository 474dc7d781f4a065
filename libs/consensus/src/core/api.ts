import { Message } from './messages';
import { RaftOptions } from './options';
import { Ready, Role } from './ready';
import { ConfigState, InitialState, MemberAddress, NodeId, RaftLogReader, SnapshotMeta } from './types';

export type MembershipChange =
  /** Add a non-voting learner that receives the log. */
  | { type: 'addLearner'; id: NodeId; address: MemberAddress }
  /** Make a caught-up learner a voter (joint consensus: C_old,new then C_new). */
  | { type: 'promote'; id: NodeId }
  /** Remove a voter (joint consensus) or a learner (direct). */
  | { type: 'remove'; id: NodeId };

export interface PeerStatus {
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  /** Ticks since the leader last heard from it. */
  lastHeardTicks: number;
}

export interface RaftStatus {
  id: NodeId;
  term: number;
  role: Role;
  leaderId: NodeId | null;
  commit: number;
  applied: number;
  lastIndex: number;
  snapshot: { index: number; term: number };
  config: ConfigState;
  /** Leader only. */
  progress: Record<NodeId, PeerStatus>;
}

/**
 * The pure Raft core. Synchronous, deterministic; no IO, timers, clock or randomness of its own.
 * Errors the caller may branch on are thrown as RaftError (see ready.ts).
 */
export interface RaftCoreApi {
  tick(): void;
  step(message: Message): void;
  /** Leader only: appends a Normal entry. Throws RaftError not_leader / overloaded / transfer_in_progress. */
  propose(data: Uint8Array): { index: number; term: number };
  /** Starts a ReadIndex read; its ReadState (or failure) comes in a later Ready under the same ctx. */
  readIndex(ctx: string, opts?: { lease?: boolean }): void;
  changeMembership(change: MembershipChange): { index: number; term: number };
  /** Leader only: catch `to` up (or the most caught-up voter if null), then send it TimeoutNow. */
  transferLeadership(to: NodeId | null): void;
  /** Start an election now (tests; a single-node cluster elects itself on its first timeout anyway). */
  campaign(): void;
  /**
   * The shell learned that `id`'s process is gone (its Raft port refuses connections). If `id` is this
   * follower's leader, the follower forgets it: it reports no leader and answers (pre-)vote requests again,
   * as it would once the election timeout passed without a word from the leader. Returns whether it did.
   * Only timing changes (no safety property rests on when a follower gives up on its leader); a wrong hint
   * about a live leader lets this one node vote early, and a majority must be wrong for an election to win.
   * Ignored with lease reads on: then the old leader's lease must run out first.
   */
  leaderGone(id: NodeId): boolean;
  /**
   * A promotable follower with no known leader starts a (pre-)election now, or a pre-candidate starts its
   * pre-vote round again (it changes no term: the voters that ignored the first round may answer now); false
   * (nothing done) otherwise.
   */
  campaignIfLeaderless(): boolean;
  hasReady(): boolean;
  ready(): Ready;
  advance(ready: Ready): void;
  /** The shell took a state-machine snapshot at `meta.index` and stored it; the log before it may go. */
  snapshotTaken(meta: SnapshotMeta): void;
  status(): RaftStatus;
}

export type RaftCoreFactory = (
  options: RaftOptions,
  log: RaftLogReader,
  initial: InitialState,
) => RaftCoreApi;
