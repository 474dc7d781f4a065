/**
 * Plain data shared by the Raft core, its shell, storage and transport.
 * Indexes and terms are safe integers (< 2^53): at a million entries per second that lasts 285 years.
 */
export type NodeId = string;

export enum EntryType {
  /** A client command, opaque to Raft. */
  Normal = 0,
  /** The empty entry every leader appends at the start of its term (commits earlier terms' entries). */
  Noop = 1,
  /** A membership change; `data` is `encodeConfig(ConfigState)` (JSON, UTF-8). */
  Config = 2,
}

export interface Entry {
  index: number;
  term: number;
  type: EntryType;
  data: Uint8Array;
}

/** Must be durable before any message that depends on it is sent. */
export interface HardState {
  term: number;
  vote: NodeId | null;
  /** Advisory: commit may be re-learned from the leader; it is clamped to the last log index on restart. */
  commit: number;
}

export interface MemberAddress {
  raftAddress: string;
  httpUrl: string;
}

/**
 * A cluster configuration. In joint consensus (C_old,new) `outgoing` holds C_old's voters and a decision
 * needs a majority of both `voters` and `outgoing`; otherwise `outgoing` is empty.
 * Learners receive the log but never vote or count.
 */
export interface ConfigState {
  voters: NodeId[];
  outgoing: NodeId[];
  learners: NodeId[];
  addresses: Record<NodeId, MemberAddress>;
}

export interface SnapshotMeta {
  /** Last log index the snapshot includes (0 = no snapshot). */
  index: number;
  term: number;
  /** The configuration as of `index`. */
  config: ConfigState;
}

/**
 * The stable part of the log, seen synchronously by the core (like etcd's Storage). Implemented by the
 * durable segment log (in-memory index + cache, sync reads) and by the in-memory storage of the simulator.
 * Everything returned here is durable.
 */
export interface RaftLogReader {
  /** Index of the first entry still in the log (snapshot.index + 1 when compacted). */
  firstIndex(): number;
  /** Index of the last durable entry (snapshot.index if the log is empty). */
  lastIndex(): number;
  /** Term of the entry at `index`; the snapshot's term at snapshot.index; undefined if compacted or past the end. */
  term(index: number): number | undefined;
  /** Entries in [lo, hi), at least one if lo < hi, then stopping before `maxBytes` of payload would be exceeded. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** The latest durable snapshot (index 0 when there is none). */
  snapshotMeta(): SnapshotMeta;
  /**
   * A chunk of the latest snapshot's bytes, for InstallSnapshot. 'pending' when the bytes are being
   * prepared (the core retries later); `done` is true on the last chunk.
   */
  snapshotChunk(offset: number, maxBytes: number): { data: Uint8Array; done: boolean } | 'pending';
}

/** What a (re)starting core is given besides the reader. */
export interface InitialState {
  hardState: HardState;
  /** The latest configuration in the log (or the snapshot's, or the bootstrap configuration). */
  config: ConfigState;
  /** Bytes of an incoming snapshot already durable from an interrupted transfer, to resume from. */
  partialSnapshot?: { index: number; term: number; bytes: number };
  /**
   * The configuration the cluster was bootstrapped with, when the log has no snapshot. The core reverts to it
   * if a conflicting append truncates every (uncommitted) config entry. Defaults to `config`.
   */
  bootstrapConfig?: ConfigState;
  /**
   * The state machine's applied index, if the shell's state machine keeps its state across restarts (etcd's
   * Config.Applied): committed entries are handed out from after it, not from after the snapshot. At most the
   * last index; entries up to it count as committed.
   */
  applied?: number;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export function encodeConfig(config: ConfigState): Uint8Array {
  return textEncoder.encode(JSON.stringify(config));
}

export function decodeConfig(data: Uint8Array): ConfigState {
  const c = JSON.parse(textDecoder.decode(data)) as ConfigState;
  return {
    voters: c.voters ?? [],
    outgoing: c.outgoing ?? [],
    learners: c.learners ?? [],
    addresses: c.addresses ?? {},
  };
}

export function emptyConfig(): ConfigState {
  return { voters: [], outgoing: [], learners: [], addresses: {} };
}
