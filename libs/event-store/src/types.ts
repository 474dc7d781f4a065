/**
 * Public data types of the event store domain (no HTTP). Shapes follow /work/shared/API.md.
 */

/** `any`: no check; `no_stream`: the stream must not exist; `stream_exists`: it must; a number: its last revision is exactly that. */
export type ExpectedRevision = 'any' | 'no_stream' | 'stream_exists' | number;

/** The event envelope, as returned everywhere (API.md). */
export interface EventEnvelope {
  id: string;
  streamId: string;
  type: string;
  /** Place inside its stream, gapless from 0. */
  revision: number;
  /** Place in the global order, gapless from 0. */
  position: number;
  /** ISO-8601 UTC with milliseconds, assigned once by the leader when the command was proposed. */
  timestamp: string;
  data: unknown;
  /** `{}` when the client sent none. */
  metadata: unknown;
}

/** One event of an append request, as received from a client. */
export interface AppendEventInput {
  id?: string;
  type: string;
  data?: unknown;
  metadata?: unknown;
}

export interface AppendInput {
  streamId: string;
  expectedRevision?: ExpectedRevision;
  events: AppendEventInput[];
}

/** An event ready to be proposed: id assigned, data and metadata serialized once to JSON bytes (UTF-8). */
export interface PreparedEvent {
  id: string;
  type: string;
  data: Uint8Array;
  metadata: Uint8Array;
}

/** The replicated command. Built by `prepareAppend` on the leader, carried in a Raft entry by `encodeCommand`. */
export interface AppendCommand {
  kind: 'append';
  streamId: string;
  expectedRevision: ExpectedRevision;
  /** Leader-assigned timestamp, ISO-8601 with milliseconds. */
  timestamp: string;
  events: PreparedEvent[];
}

export interface AppendSuccess {
  ok: true;
  streamId: string;
  firstRevision: number;
  lastRevision: number;
  firstPosition: number;
  lastPosition: number;
  /** True when this was an idempotent retry: nothing was written, the original revisions/positions are returned. */
  duplicate?: boolean;
}

/** 409 in API.md. `actualRevision` is -1 when the stream does not exist. */
export interface WrongExpectedRevision {
  ok: false;
  error: 'wrong_expected_revision';
  streamId: string;
  expectedRevision: ExpectedRevision;
  actualRevision: number;
}

/**
 * An event id already committed (inside the idempotency window) was reused by a request that is not an
 * identical retry: different stream, type, data or metadata, a mix of new and known ids, or ids that were
 * not committed together in this order. Nothing was written. Maps to 409 `idempotency_conflict`.
 */
export interface IdempotencyConflict {
  ok: false;
  error: 'idempotency_conflict';
  streamId: string;
  eventId: string;
  message: string;
}

/** A Normal entry that is not a decodable command (should never happen; applied as a no-op on every node). */
export interface InvalidCommand {
  ok: false;
  error: 'invalid_command';
  message: string;
}

export type AppendResult = AppendSuccess | WrongExpectedRevision | IdempotencyConflict | InvalidCommand;

export type ReadDirection = 'forward' | 'backward';

export interface ReadStreamOptions {
  /** Revision to start at (inclusive). Default: 0 forward, the last revision backward. */
  from?: number;
  /** Default 100, at most `limits.readLimitMax` (4096). */
  limit?: number;
  direction?: ReadDirection;
}

export interface StreamPage {
  streamId: string;
  events: EventEnvelope[];
  lastRevision: number;
  /** Revision to continue from in the same direction, null at the end. */
  next: number | null;
}

export interface ReadAllOptions {
  /** Position to start at (inclusive). Default: 0 forward, the last position backward. */
  from?: number;
  limit?: number;
  direction?: ReadDirection;
  /** Only events of these types. */
  types?: string[];
  /** Only events of streams whose id starts with this. */
  streamPrefix?: string;
}

export interface AllPage {
  events: EventEnvelope[];
  /** The store's last position (-1 when empty). */
  lastPosition: number;
  /**
   * Position to continue from in the same direction, null at the end. With filters a page may hold fewer
   * than `limit` events (even none) while `next` is not null: a bounded number of events is scanned per call.
   */
  next: number | null;
}

/** Given to `onAppended` listeners once per applied append (never for idempotent retries). */
export interface AppendedBatch {
  streamId: string;
  firstRevision: number;
  lastRevision: number;
  firstPosition: number;
  lastPosition: number;
}

export type SubscriptionTarget =
  { streamId: string } | { all: true; types?: string[]; streamPrefix?: string };

export interface SubscribeOptions {
  /**
   * First revision (stream) or position ($all) to deliver, inclusive. Undefined: only events appended
   * after the call. (SSE `Last-Event-ID: n` means from = n + 1.)
   */
  from?: number;
}
