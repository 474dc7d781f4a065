/**
 * The history a fault run records and the checker reads: every client operation with its invocation and
 * completion times (ms since the run started, from one monotonic clock) and its outcome, plus what the
 * cluster holds after healing. Plain JSON, so a run's history can be written to disk and checked again.
 */

/** An append's expected revision as sent (`expectedRevision` in the API). */
export type Expected = number | 'any' | 'no_stream' | 'stream_exists';

/**
 * How an operation ended.
 * - `ok`: a definitive success (201 for appends, 200/404 for reads).
 * - `conflict`: 409 wrong_expected_revision (appends only) — definitely not applied.
 * - `fail`: definitely not applied (503 with no leader, 400, a refused connection before the request was sent).
 * - `unknown`: may or may not have taken effect (timeout, 504, connection reset after sending).
 */
export type Outcome = 'ok' | 'conflict' | 'fail' | 'unknown';

export interface AppendOp {
  kind: 'append';
  /** Unique per operation in the history. */
  id: number;
  /** The client (worker) that issued it; one client has at most one operation in flight. */
  client: number;
  /** The node the request was sent to first (redirects may have moved it). */
  node: string;
  stream: string;
  /** The event ids of the request, in order. A retry of an earlier operation carries the same ids. */
  eventIds: string[];
  expected: Expected;
  invokeMs: number;
  /** Completion time; for `unknown` it is when the client gave up (the effect may land later, or never). */
  completeMs: number;
  outcome: Outcome;
  /** Set when `ok`: the coordinates the 201 answered. */
  firstRevision?: number;
  lastRevision?: number;
  firstPosition?: number;
  lastPosition?: number;
  /** Set when `conflict`: the `actualRevision` of the 409 (-1 for no stream). */
  actualRevision?: number;
  /** If this operation re-sends an earlier one (same event ids), that operation's id. */
  retryOf?: number;
  /** Free text for the report (status code, error). */
  note?: string;
}

export interface ReadOp {
  kind: 'read';
  id: number;
  client: number;
  node: string;
  stream: string;
  invokeMs: number;
  completeMs: number;
  /** `ok` for 200 and for 404 (an absent stream reads as the empty list). */
  outcome: Outcome;
  /** Set when `ok`: the event ids of the whole stream, revision 0 first. */
  eventIds?: string[];
  note?: string;
}

export type Op = AppendOp | ReadOp;

/** One event as a node's `$all` shows it after healing. */
export interface FinalEvent {
  id: string;
  stream: string;
  revision: number;
  position: number;
}

/** What one subscriber to `$all` received, in order, across its reconnections (Last-Event-ID resumes). */
export interface SubscriberLog {
  subscriber: number;
  node: string;
  /**
   * The position its first connection asked for (`from`), which must be the first message it received.
   * Absent means 0 (the workload subscribes with `from=0`); null for a subscription to new events only,
   * whose first message is then taken as its start.
   */
  from?: number | null;
  /** Positions and ids in the order they arrived. */
  received: { position: number; id: string }[];
}

export interface History {
  /** Operations in invocation order. */
  ops: Op[];
  /** Every event id the workload ever put in a request (so "never sent" can be checked). */
  sentEventIds: string[];
  /** After healing: each node's whole `$all`, read with consistency=local once all applied the same commit index. */
  finalAll: Record<string, FinalEvent[]>;
  subscribers: SubscriberLog[];
}

export type AnomalyKind =
  | 'not-linearizable'
  | 'lost-acknowledged'
  | 'wrong-coordinates'
  | 'duplicate'
  | 'never-sent'
  | 'gap'
  | 'nodes-differ'
  | 'subscriber';

export interface Anomaly {
  kind: AnomalyKind;
  stream?: string;
  message: string;
  /** Operation ids involved, for the report. */
  ops?: number[];
}

export interface Verdict {
  valid: boolean;
  anomalies: Anomaly[];
  /** Per stream: operations checked, search states visited, milliseconds spent. */
  streams: { stream: string; ops: number; states: number; ms: number }[];
}
