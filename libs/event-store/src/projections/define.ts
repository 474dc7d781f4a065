import { EventEnvelope } from '../types';

/**
 * A projection: a fold over events, optionally partitioned by a key. States must be JSON values (they are
 * checkpointed in snapshots). `handle` may return a new state or mutate and return the one it was given.
 */
export interface ProjectionDefinition<S = unknown> {
  name: string;
  /** Bump when `handle` changes meaning: a checkpoint of another version is discarded and rebuilt by replay. */
  version?: number;
  initial: () => S;
  /** The partition an event belongs to; null skips the event. Absent: one state for the whole projection. */
  partitionBy?: (e: EventEnvelope) => string | null;
  /** Cheap filter run before partitionBy/handle; `data` is parsed only if a handler reads it. */
  canHandle?: (e: EventEnvelope) => boolean;
  handle: (state: S, e: EventEnvelope) => S;
}

const PROJECTION_NAME_RE = /^[A-Za-z0-9._-]{1,128}$/;

export function defineProjection<S>(def: ProjectionDefinition<S>): ProjectionDefinition<S> {
  if (!PROJECTION_NAME_RE.test(def.name)) {
    throw new Error(`defineProjection: name '${def.name}' must be 1-128 characters of A-Z a-z 0-9 . _ -`);
  }
  if (typeof def.handle !== 'function' || typeof def.initial !== 'function') {
    throw new Error(`defineProjection ${def.name}: 'initial' and 'handle' must be functions`);
  }
  return def;
}

export type ProjectionStatus = 'running' | 'rebuilding' | 'faulted';

export interface ProjectionInfo {
  name: string;
  status: ProjectionStatus;
  /** Position of the last event folded in (-1: none yet). */
  position: number;
  /** Events of the store not yet folded in. */
  lag: number;
  /** Replay speed while rebuilding (0 when running). */
  eventsPerSecond: number;
  /** Estimated seconds to catch up while rebuilding (0 when running, null when unknown). */
  etaSeconds: number | null;
  /** Why it is faulted. */
  error?: string;
}

export interface ProjectionView {
  name: string;
  position: number;
  /** The state; for a partitioned projection an object of partition key → state (one page of them). */
  state: unknown;
  /** Partitioned projections: present when more partitions follow; pass it as `after` for the next page. */
  next?: string;
}
