import { MembershipChange, RaftStatus } from '../core/api';
import { RaftOptions } from '../core/options';
import { SoftState } from '../core/ready';
import { ConfigState, Entry, NodeId, SnapshotMeta } from '../core/types';
import { RaftNodeMetrics } from './metrics';
import { NodeStorage, PeerTransport, StateMachine } from './ports';

export type ReadConsistency = 'linearizable' | 'lease' | 'local';

export interface RaftNodeOptions {
  id: NodeId;
  storage: NodeStorage;
  transport: PeerTransport;
  stateMachine: StateMachine;
  /** Overrides of DEFAULT_RAFT_OPTIONS (id and random are filled in by the node). */
  raft?: Partial<Omit<RaftOptions, 'id'>>;
  tickMs: number;
  /** The first configuration, used only when the storage is empty (INITIAL_CLUSTER). Absent = join mode: wait to be added. */
  bootstrap?: ConfigState;
  /**
   * Join mode only: Raft addresses of existing members, used until the log brings this node the configuration
   * (the transport needs an address to answer the leader's first AppendRequests).
   */
  joinPeers?: Record<NodeId, string>;
  /** Snapshot policy: take a state-machine snapshot after this many applied entries or log bytes. */
  snapshotEveryEntries: number;
  snapshotEveryBytes: number;
  /** Entries kept in the log behind a snapshot so slow followers can still be served from the log. */
  snapshotKeepEntries: number;
  /** A proposal not applied within this time fails with 'timeout' (its fate is unknown). */
  proposalTimeoutMs: number;
  logger?: { log(msg: string): void; warn(msg: string): void; error(msg: string): void };
  /** Optional metrics hooks (PromRaftMetrics registers Prometheus metrics in a given registry). */
  metrics?: RaftNodeMetrics;
  /** Readies taken from the core before the oldest is advanced (pipelining depth); default 16. */
  readiesInFlightMax?: number;
  /** Deliberate mistakes, for the simulator to prove its checkers catch them. Never set in production. */
  unsafe?: NodeUnsafeSwitches;
}

export interface NodeUnsafeSwitches {
  /** Send a Ready's persistedMessages (votes, acknowledgements) before its persist completes. */
  sendBeforePersist?: boolean;
  /** Keep taking Readies while one that installs a snapshot is in flight (the bug the simulator found). */
  pipelineThroughInstall?: boolean;
}

export type NodeErrorCode =
  /** This node is not the leader; `leaderId` names the leader if known. */
  | 'not_leader'
  /** No leader known (election in progress, no quorum). Retry shortly. */
  | 'unavailable'
  /** The proposal's fate is unknown (it may still commit). Retry with the same idempotency keys. */
  | 'timeout'
  | 'overloaded'
  | 'invalid_request'
  | 'conflict'
  | 'stopped'
  /** The disk refused a write (ENOSPC, EIO): the node accepts no more writes. */
  | 'storage_failed';

export class NodeError extends Error {
  constructor(
    readonly code: NodeErrorCode,
    message: string,
    readonly leaderId: NodeId | null = null,
  ) {
    super(message);
    this.name = 'NodeError';
  }
}

export interface AppliedEntry {
  entry: Entry;
  result: unknown;
}

export interface NodeStatus extends RaftStatus {
  /** Whether this node has applied everything committed that it saw when it started. */
  caughtUp: boolean;
  storageFailed: string | null;
}

export interface RaftNodeApi {
  start(): Promise<void>;
  /** Graceful: a leader first hands leadership to another voter (bounded wait). */
  stop(opts?: { transferLeadership?: boolean }): Promise<void>;
  /** Resolves with the state machine's result once the command is applied on this (leader) node. */
  propose(command: Uint8Array): Promise<{ index: number; result: unknown }>;
  /**
   * Resolves once this node's state machine may serve a read at the given consistency
   * (linearizable: ReadIndex confirmed and applied; lease: leader lease; local: at once). Returns the read index.
   */
  read(consistency: ReadConsistency): Promise<number>;
  /** Resolves when the change (and, for joint consensus, the final C_new) is committed. */
  changeMembership(change: MembershipChange): Promise<void>;
  transferLeadership(to?: NodeId): Promise<NodeId>;
  snapshotNow(): Promise<SnapshotMeta>;
  status(): NodeStatus;
  /** Calls `listener` with every applied entry, in order, with its result; returns the unsubscribe function. */
  onApplied(listener: (applied: AppliedEntry) => void): () => void;
  /** Calls `listener` with the current soft state at once and on every change; returns the unsubscribe function. */
  onSoftState(listener: (state: SoftState) => void): () => void;
}
