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
 * Idle collection: sampled every IDLE_CHECK_MS; idle below IDLE_CPU of a core (an idle leader of three uses
 * ~4-5% on heartbeats and timers, a follower ~2%; a node under load 30% and more); after this much growth.
 */
export const IDLE_CHECK_MS = 500;
export const IDLE_CPU = 0.15;
export const IDLE_GROWTH_BYTES = 16 * 1024 * 1024;

/**
 * Whether an idle node should run a full collection now: the process (every thread: merges on the merge
 * thread count) used under IDLE_CPU of a core since the last sample, and the heap grew by at least
 * IDLE_GROWTH_BYTES since the last collection this ran (so an idle node is not collected again and again).
 */
export function shouldCollectIdle(cpuFraction: number, usedBytes: number, usedAfterLast: number): boolean {
  return cpuFraction < IDLE_CPU && usedBytes - usedAfterLast >= IDLE_GROWTH_BYTES;
}

/**
 * Full collections when the node goes idle. V8 collects when allocation asks it to, so the garbage of the
 * last burst of work (a start-up replay, a load that just ended, tables written after it) stayed resident
 * while a node idled: after a restart at 2M streams heap used 93-178 MiB and RSS 413-435 MiB, where a
 * collection finds about half of it garbage. A collection of a 150 MiB heap takes ~50-100 ms; idle, nobody
 * waits for it. Needs `--expose-gc` (tools/node-runtime.json); without it nothing happens. Returns a
 * function that stops the sampling.
 */
export function collectWhenIdle(onCollected?: (ms: number, freedBytes: number) => void): () => void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') return () => {};
  let usedAfterLast = 0;
  let cpu = process.cpuUsage();
  let at = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const d = process.cpuUsage(cpu);
    const fraction = (d.user + d.system) / 1000 / Math.max(1, now - at);
    const used = v8.getHeapStatistics().used_heap_size;
    if (shouldCollectIdle(fraction, used, usedAfterLast)) {
      gc();
      const after = v8.getHeapStatistics().used_heap_size;
      onCollected?.(performance.now() - now, used - after);
      usedAfterLast = after;
    }
    // Sampled after the collection: its own CPU does not make the next sample look busy.
    cpu = process.cpuUsage();
    at = performance.now();
  }, IDLE_CHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
