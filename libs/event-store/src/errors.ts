export type EventStoreErrorCode = 'invalid_request' | 'payload_too_large';

/**
 * A client mistake found while preparing a command (400 / 413 in API.md). The message names the field,
 * e.g. "events[3].id: not a UUID".
 */
export class EventStoreError extends Error {
  constructor(
    readonly code: EventStoreErrorCode,
    message: string,
    readonly details?: { field: string; problem: string }[],
  ) {
    super(message);
    this.name = 'EventStoreError';
  }
}

export function isEventStoreError(e: unknown): e is EventStoreError {
  return e instanceof EventStoreError;
}
