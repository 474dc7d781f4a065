import { Entry, NodeId, SnapshotMeta } from './types';

/** Every message carries the sender's term; the transport adds nothing to it. */
interface Base {
  from: NodeId;
  to: NodeId;
  term: number;
}

export interface VoteRequest extends Base {
  type: 'VoteRequest';
  /** Pre-vote: asks "would you vote for me at `term`?" without anyone changing term. */
  preVote: boolean;
  lastLogIndex: number;
  lastLogTerm: number;
  /** Set when campaigning because of TimeoutNow: bypasses the removed-server (lease) guard. */
  transfer: boolean;
}

export interface VoteResponse extends Base {
  type: 'VoteResponse';
  preVote: boolean;
  granted: boolean;
}

export interface AppendRequest extends Base {
  type: 'AppendRequest';
  prevLogIndex: number;
  prevLogTerm: number;
  entries: Entry[];
  leaderCommit: number;
  /** Echoed in the response; lets the leader match heartbeat rounds to ReadIndex requests. */
  seq: number;
}

export interface AppendResponse extends Base {
  type: 'AppendResponse';
  success: boolean;
  /** On success: the index up to which the follower's log matches the leader's. */
  matchIndex: number;
  /** Fast backup, on rejection: the term of the conflicting entry (0 if the follower's log is too short)... */
  conflictTerm: number;
  /** ...the first index the follower has for that term... */
  conflictIndex: number;
  /** ...and the follower's last log index. */
  lastLogIndex: number;
  seq: number;
}

export interface SnapshotRequest extends Base {
  type: 'SnapshotRequest';
  meta: SnapshotMeta;
  /** Byte offset of `data` in the snapshot. */
  offset: number;
  data: Uint8Array;
  done: boolean;
  seq: number;
}

export interface SnapshotResponse extends Base {
  type: 'SnapshotResponse';
  /** The snapshot index this answers for. */
  index: number;
  /** Bytes the follower holds durably (the leader resumes from here); -1 = rejected, restart from 0. */
  nextOffset: number;
  /** True once the follower has installed the snapshot. */
  installed: boolean;
  seq: number;
}

export interface TimeoutNow extends Base {
  type: 'TimeoutNow';
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | SnapshotRequest
  | SnapshotResponse
  | TimeoutNow;
export type MessageType = Message['type'];

/** Approximate wire size, for flow control and batching. */
export function messageBytes(m: Message): number {
  switch (m.type) {
    case 'AppendRequest': {
      let n = 64;
      for (const e of m.entries) n += 24 + e.data.byteLength;
      return n;
    }
    case 'SnapshotRequest':
      return 256 + m.data.byteLength;
    default:
      return 64;
  }
}

/** An answer to a request (it promises state of the answering node's term). */
export function isResponse(m: Message): boolean {
  return m.type === 'AppendResponse' || m.type === 'SnapshotResponse' || m.type === 'VoteResponse';
}
