import { Message } from './messages';
import { Entry, HardState, NodeId, SnapshotMeta } from './types';

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader' | 'learner';

export interface SoftState {
  leaderId: NodeId | null;
  role: Role;
}

/** A ReadIndex request that became safe: once `index` is applied, reads for `ctx` may be served. */
export interface ReadState {
  ctx: string;
  index: number;
}

export interface SnapshotChunk {
  meta: SnapshotMeta;
  offset: number;
  data: Uint8Array;
  done: boolean;
}

/**
 * One batch of work for the shell. Order of work:
 * 1. persist `hardState`, `entries` (an entry at an index ≤ the stable last index first truncates the
 *    stable log from there) and `snapshotChunk`, all durably (fsync);
 *    `messages` may be sent at once, in parallel with persisting (the leader replicates while it writes);
 * 2. if `snapshot` is set (always after its last chunk is durable), install it: replace the log
 *    with the snapshot, restore the state machine from its bytes;
 * 3. send `persistedMessages` (they promise what step 1 made durable);
 * 4. apply `committedEntries` in order (may start before 1 finishes: they are durable on a majority);
 * 5. call `advance(ready)`.
 * The shell may take the next Ready before advancing this one; readies are persisted and advanced in order.
 * A Ready with `snapshot` is the exception: the next Ready is taken only once it is advanced, because its
 * entries and snapshot chunks build on the installed snapshot (storage must see the install first).
 */
export interface Ready {
  hardState?: HardState;
  entries: Entry[];
  snapshotChunk?: SnapshotChunk;
  snapshot?: SnapshotMeta;
  messages: Message[];
  persistedMessages: Message[];
  committedEntries: Entry[];
  readStates: ReadState[];
  /** Reads that can no longer be confirmed (leadership lost, stepped down); the caller may retry. */
  failedReads: { ctx: string; error: RaftError }[];
  /** Present when leader or role changed. */
  softState?: SoftState;
}

export type RaftErrorCode =
  | 'not_leader'
  | 'leadership_lost'
  | 'transfer_in_progress'
  | 'config_change_in_progress'
  | 'overloaded'
  | 'invalid_request'
  | 'stopped';

/** The closed list of expected failures callers branch on. */
export class RaftError extends Error {
  constructor(
    readonly code: RaftErrorCode,
    message: string,
    readonly leaderId: NodeId | null = null,
  ) {
    super(message);
    this.name = 'RaftError';
  }
}
