import { NodeId } from './types';

/** Every limit of the core, with its unit. Ticks are the shell's timer period (e.g. 50 ms). */
export interface RaftOptions {
  id: NodeId;
  /** Minimum election timeout; each node draws its timeout in [electionTicks, 2 * electionTicks). */
  electionTicks: number;
  heartbeatTicks: number;
  /** Pipelined AppendRequests in flight per follower before waiting for acknowledgements. */
  inflightMsgsMax: number;
  /** Payload bytes per AppendRequest (at least one entry is always sent). */
  msgBytesMax: number;
  /**
   * Entry payload bytes in flight per follower (etcd's MaxInflightBytes): no new AppendRequest goes out while
   * this much is unacknowledged, so at most inflightBytesMax plus one message is in flight (a message may exceed
   * msgBytesMax by carrying one large entry). Unset: bounded by inflightMsgsMax × msgBytesMax only.
   */
  inflightBytesMax?: number;
  /**
   * Committed entries handed out in one Ready: at most this many payload bytes (at least one entry) and entries.
   * Bounds one apply batch, e.g. re-applying a long log after a restart. Unset: 4 MiB and 4096 entries.
   */
  committedBytesPerReadyMax?: number;
  committedEntriesPerReadyMax?: number;
  /** Proposals are refused with 'overloaded' while this many bytes are appended but not committed. */
  uncommittedBytesMax: number;
  snapshotChunkBytes: number;
  preVote: boolean;
  checkQuorum: boolean;
  /**
   * Opt-in lease reads: a leader that heard from a majority within (electionTicks - clockDriftTicksMax)
   * serves reads without a round trip. Assumes clocks drift less than clockDriftTicksMax per election timeout.
   */
  leaseReads: boolean;
  clockDriftTicksMax: number;
  /** Injected randomness in [0, 1): the core has none of its own. */
  random: () => number;
  /** Log lines in one shape: "node n2 became leader at term 5". */
  logger?: (line: string) => void;
  /** Deliberate protocol mistakes for the simulator's self-test. The product never sets these. */
  unsafe?: UnsafeSwitches;
}

export interface UnsafeSwitches {
  /** Commit by counting replicas of an entry from a previous term. */
  commitPreviousTermByCount?: boolean;
  /** Grant votes without the election restriction (log up-to-date check). */
  voteWithoutLogCheck?: boolean;
  /** Put messages that must wait for persistence into the send-at-once list. */
  ackBeforePersist?: boolean;
  /** Serve ReadIndex without confirming leadership with a majority. */
  readWithoutQuorum?: boolean;
}

export const DEFAULT_RAFT_OPTIONS: Omit<RaftOptions, 'id' | 'random'> = {
  electionTicks: 10,
  heartbeatTicks: 2,
  inflightMsgsMax: 64,
  msgBytesMax: 1024 * 1024,
  inflightBytesMax: 16 * 1024 * 1024,
  uncommittedBytesMax: 64 * 1024 * 1024,
  committedBytesPerReadyMax: 4 * 1024 * 1024,
  committedEntriesPerReadyMax: 4096,
  snapshotChunkBytes: 1024 * 1024,
  preVote: true,
  checkQuorum: true,
  leaseReads: false,
  clockDriftTicksMax: 2,
};
