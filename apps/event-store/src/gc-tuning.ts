import { constants, PerformanceObserver } from 'node:perf_hooks';
import * as v8 from 'node:v8';

/**
 * Imported first by main.ts. V8 grows the old generation by a factor of the live heap after each full
 * collection (the "heap growing factor", which it picks between 1.1 and 4 itself).
 *
 * Small heaps: a node's JS heap is tens of MB while it churns through ~100 MB/s of off-heap buffers
 * (socket reads, replication frames, event-file write buffers, log staging) that V8 counts toward its
 * limits; with its heuristics for small heaps V8 then ran a full mark-compact 2–3 times a second, a third
 * of a follower's CPU (`perf`, `--trace-gc`), and 100-event batch appends ran at ~135k events/s. A factor of
 * 3 cut that to < 1 a second and the same bench to ~165–180k events/s.
 *
 * Large heaps: with millions of streams the live heap is ~100 MB (caches, run indexes, tables), and a
 * factor of 3 let the heap's committed pages reach ~3× that: most of a node's RSS was garbage waiting for a
 * collection. So the factor is chosen after every full collection to keep the room for garbage near
 * HEAP_SLACK_BYTES: 3× below ~32 MB of live heap, then less (2× at 64 MB, 1.64× at 100 MB), never under
 * 1.25×. The flag is read at every limit computation, so setting it at run time works. A
 * `--heap-growing-percent` given on the command line or in NODE_OPTIONS wins (and stays fixed).
 */
export const HEAP_GROWING_PERCENT_MAX = 200;
export const HEAP_GROWING_PERCENT_MIN = 25;
export const HEAP_SLACK_BYTES = 64 * 1024 * 1024;

/** The growing percent that leaves about `slack` bytes above a live heap of `liveBytes`. */
export function growingPercentFor(liveBytes: number, slack = HEAP_SLACK_BYTES): number {
  const p = Math.floor((100 * slack) / Math.max(1, liveBytes));
  return Math.min(HEAP_GROWING_PERCENT_MAX, Math.max(HEAP_GROWING_PERCENT_MIN, p));
}

const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) =>
  /^--heap[-_]growing[-_]percent/.test(a),
);

/** The percent in force (null when given on the command line). */
export let heapGrowingPercent: number | null = null;

function setPercent(p: number): void {
  if (p === heapGrowingPercent) return;
  heapGrowingPercent = p;
  v8.setFlagsFromString(`--heap-growing-percent=${p}`);
}

if (!given) {
  setPercent(HEAP_GROWING_PERCENT_MAX);
  // After each full collection the used heap is about the live heap: the next limit is computed from it.
  const obs = new PerformanceObserver((list) => {
    let major = false;
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) major = true;
    }
    if (major) setPercent(growingPercentFor(v8.getHeapStatistics().used_heap_size));
  });
  obs.observe({ entryTypes: ['gc'] });
}

/**
 * One full collection once `done()` holds (checked every 250 ms for at most 10 minutes): a node's start-up
 * replays the log after its snapshot, and the garbage of that replay (a hundred MiB and more with millions
 * of streams) otherwise stays resident while the node idles, since V8 collects when allocation asks it to.
 * Needs `--expose-gc` (tools/node-runtime.json); without it nothing happens. Returns a function that stops
 * the waiting.
 */
export function collectOnceWhen(done: () => boolean, onCollected?: (ms: number) => void): () => void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') return () => {};
  const started = Date.now();
  const timer = setInterval(() => {
    if (Date.now() - started > 600_000) return clearInterval(timer);
    if (!done()) return;
    clearInterval(timer);
    const t0 = performance.now();
    gc();
    onCollected?.(performance.now() - t0);
  }, 250);
  timer.unref();
  return () => clearInterval(timer);
}
