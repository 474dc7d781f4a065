import { ExpectedRevision } from './types';

/** Whether an append's expectation holds for a stream whose last revision is `actual` (-1: no stream). */
export function expectationHolds(expected: ExpectedRevision, actual: number): boolean {
  switch (expected) {
    case 'any':
      return true;
    case 'no_stream':
      return actual === -1;
    case 'stream_exists':
      return actual >= 0;
    default:
      return actual === expected;
  }
}
