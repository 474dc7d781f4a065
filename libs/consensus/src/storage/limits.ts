/** Every limit of the durable storage, with its unit. */

/** Segment files roll when the next batch would not fit (a single batch larger than this gets a segment of its own). */
export const segmentBytesDefault = 64 * 1024 * 1024;
/** Offsets inside a segment are 32-bit. */
export const segmentBytesMax = 1024 * 1024 * 1024;
export const segmentBytesMin = 4 * 1024;
/** Recent entries kept in memory for reads without IO. */
export const cacheEntriesDefault = 4096;
export const cacheBytesDefault = 16 * 1024 * 1024;
export const snapshotsKeepDefault = 2;
/** One entry's payload; a record claiming more is damage. */
export const entryBytesMax = 64 * 1024 * 1024;
/** With no fsync in flight, a batch this large is written at once instead of waiting for the end of the tick. */
export const eagerFlushBytesDefault = 16 * 1024;
/** Overlapping fdatasync calls (each holds a libuv pool thread; the pool has 4 by default). */
export const syncsInFlightMaxDefault = 3;
/** While every fsync slot is busy, the next batch is written ahead (page cache only) once it is this large. */
export const writeAheadBytesMin = 16 * 1024;
/** The staging buffer starts at this size, doubles as needed and shrinks back after a larger batch. */
export const stagingBytesInitial = 1024 * 1024;
/** Sequential reads (scans, zero fill, snapshot streams) use buffers of this size. */
export const ioChunkBytes = 1024 * 1024;
/** Sealed segments whose file descriptors stay open for reads (least recently used are closed). */
export const readFdsOpenMax = 32;
/** Records of at most this many bytes are checksummed in JS (no native call overhead); larger ones natively. */
export const crcJsBytesMax = 1024;

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`storage invariant violated: ${message}`);
}
