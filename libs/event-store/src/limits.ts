const MiB = 1024 * 1024;

/** Client-facing limits (API.md defaults). Configurable; must be the same on every node. */
export interface EventStoreLimits {
  eventsPerAppendMax: number;
  /** Sum of all events' serialized data + metadata in one append (the HTTP body limit is enforced by the app). */
  appendBytesMax: number;
  /** One event's serialized data + metadata. */
  eventBytesMax: number;
  streamIdCharsMax: number;
  eventTypeCharsMax: number;
  readLimitDefault: number;
  readLimitMax: number;
}

export const DEFAULT_LIMITS: EventStoreLimits = Object.freeze({
  eventsPerAppendMax: 1000,
  appendBytesMax: 4 * MiB,
  eventBytesMax: 1 * MiB,
  streamIdCharsMax: 256,
  eventTypeCharsMax: 256,
  readLimitDefault: 100,
  readLimitMax: 4096,
});

/** Internal sizing of the storage engine. */
export const STORAGE_DEFAULTS = Object.freeze({
  /** An event file is closed and a new one started once it would exceed this. */
  fileBytesMax: 64 * MiB,
  /** The idempotency window: ids of the most recent events (by position) that retries are recognized by. */
  idempotencyWindowEvents: 1 << 20,
  /** Recent event records kept in memory (serves live subscribers and fresh reads without file IO). */
  recentCacheEvents: 16_384,
  recentCacheBytesMax: 32 * MiB,
  /** One read call returns at most this many bytes of event records (at least one event). */
  readBytesMax: 16 * MiB,
  /** A filtered $all read scans at most this many events per call. */
  filteredScanEventsMax: 65_536,
  /** Unflushed bytes of the open event file kept in memory before a write() call. */
  writeBufferBytesMax: 1 * MiB,
  /** Local snapshot cuts kept on disk. */
  cutsKept: 2,
});
