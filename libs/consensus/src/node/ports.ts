import { Message } from '../core/messages';
import { SnapshotChunk } from '../core/ready';
import { Entry, HardState, InitialState, NodeId, RaftLogReader, SnapshotMeta } from '../core/types';

/**
 * Durable storage for one node: the Raft log, hard state and snapshots. The sync reader view (RaftLogReader)
 * only shows what is durable. Writes are group-committed: many concurrent `persist` calls share one fsync;
 * each promise resolves only once its bytes are durable. Calls are handled in call order.
 */
export interface NodeStorage extends RaftLogReader {
  initialState(): InitialState;
  /** Entries first truncate the stable log from entries[0].index if it is ≤ lastIndex(). */
  persist(work: { hardState?: HardState; entries: Entry[]; snapshotChunk?: SnapshotChunk }): Promise<void>;
  /** Publishes a completely received snapshot and discards the log up to (and, if it conflicts, after) it. */
  installSnapshot(meta: SnapshotMeta): Promise<void>;
  /**
   * Stores a snapshot the local state machine took; becomes the latest snapshot. `content` is its byte stream
   * or the parts that make it up (file parts may be hard-linked instead of copied, see SnapshotPart).
   */
  saveSnapshot(meta: SnapshotMeta, content: SnapshotContent): Promise<void>;
  /** The latest snapshot's bytes (null if none). */
  readSnapshot(): AsyncIterable<Uint8Array> | null;
  /** Drops whole segments whose entries are all ≤ index. */
  compact(index: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * One piece of a snapshot's byte stream. A file part is the first `length` bytes of `file`, whose CRC-32C
 * is `crc32c`: the state machine promises those bytes are durable (fsynced) and never change while the
 * file exists (the file may grow past `length`; only the prefix belongs to the snapshot). Storage may keep
 * such a file by hard link instead of copying it, so the snapshot stays valid after the state machine
 * removes its own name for it.
 */
export type SnapshotPart = { bytes: Uint8Array } | { file: string; length: number; crc32c: number };

/** A snapshot's bytes: a stream, or parts whose concatenation is the stream. */
export type SnapshotContent = AsyncIterable<Uint8Array> | SnapshotPart[];

/** What StateMachine.snapshot() returns: the stream (`data`) or, to let storage avoid copying, `parts`. */
export type StateMachineSnapshot =
  { index: number; data: AsyncIterable<Uint8Array> } | { index: number; parts: SnapshotPart[] };

/** What a transport may tell the node besides messages. */
export interface TransportEvents {
  /**
   * A connection to `peer` was refused: no process listens on its Raft address (it died or is
   * restarting). A hint for fast failover, never a basis for safety: see RaftCoreApi.leaderGone.
   */
  peerGone?(peer: NodeId): void;
}

export interface PeerTransport {
  /** Starts listening; every authenticated inbound message is passed to `onMessage`. */
  start(onMessage: (message: Message) => void, events?: TransportEvents): Promise<void>;
  /** Best effort, never throws, never blocks: a message to an unreachable peer is dropped. */
  send(messages: Message[]): void;
  /** Where to reach each peer (raft host:port). Called whenever the configuration changes. */
  setPeers(peers: Record<NodeId, string>): void;
  close(): Promise<void>;
}

/**
 * The replicated application. Rules: apply is deterministic (same entries → same state and results on
 * every node); snapshot captures a point in time quickly and may stream the bytes later; restore discards
 * all previous state.
 */
export interface StateMachine {
  /** Called for every committed entry in index order (Noop and Config too, to keep appliedIndex exact). */
  apply(entry: Entry): unknown | Promise<unknown>;
  /** The last index applied (what a restart resumes after). */
  appliedIndex(): number;
  /**
   * Either form; with `parts` the node stores the parts (their concatenation is the byte stream that
   * restore() and peers receive). File parts must stay in place until the returned promise's snapshot is
   * stored: the node takes one snapshot at a time, never during a restore.
   */
  snapshot(): Promise<StateMachineSnapshot>;
  restore(meta: SnapshotMeta, data: AsyncIterable<Uint8Array>): Promise<void>;
}

/** Monotonic time in milliseconds: deadlines of proposals, reads and waiters, and durations for metrics. */
export interface Clock {
  now(): number;
}

/**
 * Where the node runs deferred and periodic work. Production uses the event loop (setImmediate,
 * setInterval); the seeded simulator runs the same callbacks on virtual time.
 */
export interface Scheduler {
  /** Runs `fn` once, after the current macrotask and its microtasks (setImmediate). */
  soon(fn: () => void): void;
  /** Runs `fn` every `ms` milliseconds until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}
