import {
  NO_CONCURRENCY_CHECK,
  STREAM_DOES_NOT_EXIST,
  STREAM_EXISTS,
  ValidationError,
} from '@event-driven-io/emmett';
import {
  globalPositionOf,
  RaftEventStoreDefaultStreamVersion,
  streamPositionOf,
  streamVersionOf,
  toExpectedRevision,
  toRevisionRange,
} from './versions';

describe('versions: Emmett counts from 1, the store from 0', () => {
  it("a stream's version is its number of events (0n: none)", () => {
    expect(RaftEventStoreDefaultStreamVersion).toBe(0n);
    expect(streamVersionOf(-1)).toBe(0n);
    expect(streamVersionOf(0)).toBe(1n);
    expect(streamVersionOf(41)).toBe(42n);
    expect(streamPositionOf(0)).toBe(1n);
    expect(streamPositionOf(41)).toBe(42n);
    expect(globalPositionOf(0)).toBe(1n);
    expect(globalPositionOf(1206)).toBe(1207n);
  });

  it('expected stream versions map to expected revisions', () => {
    expect(toExpectedRevision(undefined)).toBe('any');
    expect(toExpectedRevision(NO_CONCURRENCY_CHECK)).toBe('any');
    expect(toExpectedRevision(STREAM_DOES_NOT_EXIST)).toBe('no_stream');
    expect(toExpectedRevision(STREAM_EXISTS)).toBe('stream_exists');
    expect(toExpectedRevision(0n)).toBe('no_stream');
    expect(toExpectedRevision(1n)).toBe(0);
    expect(toExpectedRevision(42n)).toBe(41);
  });

  it('refuses versions the store cannot hold', () => {
    expect(() => toExpectedRevision(-1n)).toThrow(ValidationError);
    expect(() => toExpectedRevision(2n ** 60n)).toThrow(ValidationError);
    expect(() => toExpectedRevision('latest' as never)).toThrow(ValidationError);
  });

  it('read ranges: inclusive stream positions, maxCount a count (0n: no limit)', () => {
    expect(toRevisionRange(undefined)).toEqual({ fromRevision: 0 });
    expect(toRevisionRange({})).toEqual({ fromRevision: 0 });
    expect(toRevisionRange({ from: 0n })).toEqual({ fromRevision: 0 });
    expect(toRevisionRange({ from: 1n })).toEqual({ fromRevision: 0 });
    expect(toRevisionRange({ from: 3n, to: 5n })).toEqual({ fromRevision: 2, toRevision: 4 });
    expect(toRevisionRange({ to: 0n })).toEqual({ fromRevision: 0, toRevision: -1 });
    expect(toRevisionRange({ maxCount: 0n })).toEqual({ fromRevision: 0 });
    expect(toRevisionRange({ from: 2n, maxCount: 3n })).toEqual({ fromRevision: 1, maxCount: 3 });
    expect(() => toRevisionRange({ from: -1n })).toThrow(ValidationError);
  });
});
