import type { EventEnvelope } from '@app/client';

/**
 * A destination of committed events with its own durable checkpoint. The projector runs one lane per sink:
 * it subscribes to `$all` after the sink's checkpoint, groups events into batches and hands each batch to
 * `write`, which must make the events and the new checkpoint durable together (one transaction), so that a
 * crash at any instant leaves either the whole batch with its checkpoint, or neither.
 */
export interface Sink {
  /** `postgres` or `kafka`: the label in /status and /metrics. */
  readonly name: string;
  /**
   * Connects, prepares (schema, topics, fencing of an older writer) and returns the last position durably
   * written, −1 before any. Throws when the backend is unreachable; the lane retries with backoff.
   */
  open(): Promise<number>;
  /**
   * Writes a batch: positions contiguous, the first one right after the last position written. Resolves once
   * the events and the checkpoint (the batch's last position) are durable. A `SinkUnavailableError` means
   * "nothing of this batch may be assumed written": the lane reopens the sink (which reloads its checkpoint)
   * and resends from there.
   */
  write(events: readonly EventEnvelope[]): Promise<void>;
  /** Releases connections; the sink may be opened again afterwards. */
  close(): Promise<void>;
}

/** The backend is unreachable or the write's outcome is unknown: reopen, reload the checkpoint, retry. */
export class SinkUnavailableError extends Error {
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'SinkUnavailableError';
  }
}

/**
 * Another process took over this sink's writer identity (Kafka fenced our producer epoch): the lane stops
 * (state `stopped`) instead of taking the identity back, which would make two projectors fence each other in
 * turn. Restarting the projector takes it back.
 */
export class SinkFencedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SinkFencedError';
  }
}
