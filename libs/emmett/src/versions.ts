import type { ExpectedRevision } from '@app/client';
import {
  type ExpectedStreamVersion,
  NO_CONCURRENCY_CHECK,
  STREAM_DOES_NOT_EXIST,
  STREAM_EXISTS,
  ValidationError,
} from '@event-driven-io/emmett';

/**
 * How Emmett's numbers map onto the event store's (API.md: revisions and positions gapless from 0).
 *
 * Emmett's stores (its in-memory one, PostgreSQL, SQLite) count from 1: the version of a stream is its number of
 * events, 0n when it has none; an event's `streamPosition` is the version the stream has right after it. So:
 *
 *   Emmett stream version  = our last revision + 1     (0n: no stream; the store's lastRevision -1)
 *   Emmett streamPosition  = our revision + 1
 *   Emmett globalPosition  = our position + 1
 *   expected version v > 0 = expectedRevision v - 1;   0n = 'no_stream'
 */

/** The version of a stream without events, as `InMemoryEventStoreDefaultStreamVersion` in Emmett. */
export const RaftEventStoreDefaultStreamVersion = 0n;

/** Emmett version of a stream whose last revision is `lastRevision` (-1: the stream does not exist). */
export function streamVersionOf(lastRevision: number): bigint {
  return BigInt(lastRevision) + 1n;
}

/** Emmett `streamPosition` (1-based) of the event at `revision` (0-based). */
export function streamPositionOf(revision: number): bigint {
  return BigInt(revision) + 1n;
}

/** Emmett `globalPosition` (1-based) of the event at `position` (0-based) in $all. */
export function globalPositionOf(position: number): bigint {
  return BigInt(position) + 1n;
}

/** A non-negative bigint (or integer number) version/position as a bigint; anything else is a ValidationError. */
function unsigned(value: unknown, what: string): bigint {
  let v: bigint;
  if (typeof value === 'bigint') v = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) v = BigInt(value);
  else throw new ValidationError(`${what} must be a bigint, got ${String(value)}`);
  if (v < 0n) throw new ValidationError(`${what} must be >= 0n, got ${v}`);
  if (v > BigInt(Number.MAX_SAFE_INTEGER))
    throw new ValidationError(`${what} ${v} is beyond the store's revisions (Number.MAX_SAFE_INTEGER)`);
  return v;
}

/** Emmett's expected stream version as the event store's `expectedRevision`. */
export function toExpectedRevision(expected: ExpectedStreamVersion | undefined): ExpectedRevision {
  if (expected === undefined || expected === null || expected === NO_CONCURRENCY_CHECK) return 'any';
  if (expected === STREAM_DOES_NOT_EXIST) return 'no_stream';
  if (expected === STREAM_EXISTS) return 'stream_exists';
  const version = unsigned(expected, 'expectedStreamVersion');
  // Version 0n = no event yet; Emmett's in-memory store accepts it only while the stream is empty.
  return version === 0n ? 'no_stream' : Number(version - 1n);
}

/** Which revisions a read covers: `fromRevision` and up, at most to `toRevision`, at most `maxCount` events. */
export interface RevisionRange {
  fromRevision: number;
  /** Inclusive; undefined: to the end. */
  toRevision?: number;
  /** undefined: no limit. */
  maxCount?: number;
}

/**
 * Emmett's `from` / `to` (inclusive stream positions, 1-based like `streamPosition`) and `maxCount` (a limit on
 * the number of events; 0n or absent: none) as revisions. `from` 0n or 1n both mean the first event.
 */
export function toRevisionRange(opts?: { from?: unknown; to?: unknown; maxCount?: unknown }): RevisionRange {
  const range: RevisionRange = { fromRevision: 0 };
  if (opts?.from !== undefined && opts.from !== null) {
    const from = unsigned(opts.from, 'from');
    range.fromRevision = from === 0n ? 0 : Number(from - 1n);
  }
  if (opts?.to !== undefined && opts.to !== null) range.toRevision = Number(unsigned(opts.to, 'to')) - 1;
  if (opts?.maxCount !== undefined && opts.maxCount !== null) {
    const maxCount = unsigned(opts.maxCount, 'maxCount');
    if (maxCount > 0n) range.maxCount = Number(maxCount);
  }
  return range;
}
