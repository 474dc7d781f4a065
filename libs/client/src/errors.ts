import type { ExpectedRevision } from './types';

/** Base of every error the client throws on purpose; callers branch on the subclasses. */
export class EventStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** 409 `wrong_expected_revision`: the stream's last revision is not what the append expected. */
export class WrongExpectedRevisionError extends EventStoreError {
  constructor(
    readonly streamId: string,
    readonly expectedRevision: ExpectedRevision,
    /** -1 when the stream does not exist. */
    readonly actualRevision: number,
  ) {
    super(
      `wrong expected revision on ${streamId}: expected ${JSON.stringify(expectedRevision)}, actual ${actualRevision}`,
    );
  }
}

/** 404 `stream_not_found` on a stream read. */
export class StreamNotFoundError extends EventStoreError {
  constructor(readonly streamId: string) {
    super(`stream ${streamId} does not exist`);
  }
}

/**
 * The server rejected the request itself (400 invalid_request, 413 payload_too_large, 404, 409 other than
 * a wrong expected revision, e.g. idempotency_conflict, or any other 4xx). Never retried.
 */
export class InvalidRequestError extends EventStoreError {
  constructor(
    message: string,
    readonly status: number,
    /** The response body (`details` of a 400, or the whole body otherwise). */
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** Gave up after the retries on 503 / connection errors: nothing was committed by this call. */
export class UnavailableError extends EventStoreError {}

/** Gave up after 504s / timeouts / dropped connections of an append: it may have committed. */
export class UnknownOutcomeError extends EventStoreError {}
