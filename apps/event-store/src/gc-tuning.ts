import * as v8 from 'node:v8';

/**
 * Imported first by main.ts. A node's JS heap is small (tens of MB) while it churns through ~100 MB/s of
 * off-heap buffers (socket reads, replication frames, event-file write buffers, log staging) that V8 counts
 * toward its limits; with its heuristics for small heaps V8 then ran a full mark-compact 2–3 times a second,
 * a third of a follower's CPU (`perf`, `--trace-gc`), and 100-event batch appends ran at ~135k events/s.
 * Pinning the heap growing factor at 3 (V8 picks 1.1–4 itself) cut that to < 1 a second and the same bench
 * to ~165–180k events/s; memory stays at most ~3× the live heap. The flag is read at every limit
 * computation, so setting it at start-up works. A `--heap-growing-percent` given on the command line or in
 * NODE_OPTIONS wins.
 */
export const HEAP_GROWING_PERCENT = 200;

const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) =>
  /^--heap[-_]growing[-_]percent/.test(a),
);
if (!given) v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
