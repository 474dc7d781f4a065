/** Types of the event store's HTTP API (contract v1, /work/shared/API.md) as the client exposes them. */

/** One committed event, as returned by reads and subscriptions. */
export interface EventEnvelope {
  id: string;
  streamId: string;
  type: string;
  /** Place inside its stream, gapless from 0. */
  revision: number;
  /** Place in the global order ($all), gapless from 0. */
  position: number;
  /** ISO-8601, assigned once by the leader. */
  timestamp: string;
  data: unknown;
  metadata: unknown;
}

/** `any` (default), `no_stream`, `stream_exists`, or the exact last revision of the stream. */
export type ExpectedRevision = 'any' | 'no_stream' | 'stream_exists' | number;

export interface NewEvent {
  /** A UUID; the client assigns a random one before the first attempt when absent. */
  id?: string;
  type: string;
  data?: unknown;
  metadata?: unknown;
}

export interface AppendResult {
  streamId: string;
  firstRevision: number;
  lastRevision: number;
  firstPosition: number;
  lastPosition: number;
}

export interface RetryOptions {
  /** Attempts of one call, the first one included. */
  attempts?: number;
  /** First backoff bound; the n-th wait is random in [0, min(maxDelayMs, initialDelayMs * 2^n)]. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Bound of one call across all its attempts and waits. */
  totalTimeoutMs?: number;
}

export interface ClientLogger {
  warn(msg: string): void;
  debug?(msg: string): void;
}

export interface ClientOptions {
  /** Node base URLs, e.g. http://127.0.0.1:2113; calls fail over across them. */
  urls: string[];
  /** Bound of one attempt (default 10 s). */
  requestTimeoutMs?: number;
  /** Capped exponential backoff with full jitter. */
  retry?: RetryOptions;
  /**
   * Sent as `authorization: Bearer <token>` on every request and subscription when set. A node with tokens
   * configured answers 401 without one and 403 when its role (read < write < admin) is too low.
   */
  token?: string;
  /** For https:// URLs: the CA certificate(s) (PEM) to trust instead of the system's, e.g. a private CA. */
  tls?: ClientTlsOptions;
  logger?: ClientLogger;
}

export interface ClientTlsOptions {
  ca?: string | Buffer | (string | Buffer)[];
}

export type Direction = 'forward' | 'backward';
export type Consistency = 'linearizable' | 'local';

export interface ReadStreamOptions {
  /** Revision to start at (default 0 forward, the last one backward). */
  from?: number;
  /** Events per page (server default 100, max 4096). */
  limit?: number;
  direction?: Direction;
  consistency?: Consistency;
}

export interface StreamPage {
  streamId: string;
  events: EventEnvelope[];
  lastRevision: number;
  /** Revision to read from next, null at the end. */
  next: number | null;
}

export interface ReadAllOptions {
  /** Position to start at (default 0 forward, the last one backward). */
  from?: number;
  limit?: number;
  direction?: Direction;
  consistency?: Consistency;
  /** Only events of these types. */
  types?: string[];
  /** Only events of streams whose id starts with this. */
  streamPrefix?: string;
}

export interface AllPage {
  events: EventEnvelope[];
  /** The last position in the store (-1 when empty), not of this page. */
  lastPosition: number;
  /** Position to read from next, null at the end. */
  next: number | null;
}

export interface SubscribeOptions {
  /** First revision/position to deliver (inclusive). Default: only events committed after the call. */
  from?: number;
  signal?: AbortSignal;
  /** Most events in one yielded batch (default 1000). */
  maxBatchEvents?: number;
  /** A connection with no byte (not even a heartbeat) for this long is dropped and resumed (default 35 s). */
  idleTimeoutMs?: number;
}

export interface SubscribeAllOptions extends SubscribeOptions {
  types?: string[];
  streamPrefix?: string;
}

/** Batches of events in order, exactly once, across reconnections to any node. */
export interface Subscription extends AsyncIterable<EventEnvelope[]> {
  /** The last delivered position ($all) or revision (stream), -1 before any. */
  readonly lastId: number;
  /** The node the subscription reads from right now, null between connections. */
  readonly connectedUrl: string | null;
  /** Connections opened after the first one. */
  readonly reconnects: number;
  /** Ends the iteration (it returns, it does not throw). */
  close(): void;
}

/** Options of `EventStoreClient.request` (a route without a typed method: cluster admin, projections…). */
export interface RequestOptions {
  /** Sent as JSON. */
  body?: unknown;
  /** Start at the leader when one is known (routes that only the leader serves; a follower answers 307). */
  leader?: boolean;
  /**
   * The request changes something: a lost answer (504, timeout, connection closed after sending) ends in
   * UnknownOutcomeError, like an append, instead of UnavailableError.
   */
  write?: boolean;
}

export interface ClusterMember {
  id: string;
  httpUrl: string;
  raftAddress: string;
  voter: boolean;
  matchIndex?: number;
}

export interface ClusterView {
  nodeId: string;
  role: 'leader' | 'follower' | 'candidate' | 'learner';
  term: number;
  leaderId: string | null;
  leaderUrl: string | null;
  commitIndex: number;
  appliedIndex: number;
  lastLogIndex: number;
  snapshot: { index: number; term: number };
  members: ClusterMember[];
}
