/**
 * Background work on the event loop (writing and merging runs) gives way to requests: `turn()` resolves at
 * once until SLICE_MS have passed since the last real turn, then after a setImmediate (so timers, I/O and
 * requests run in between). Checking the clock every call would cost more than the work: callers ask every
 * CHECK_EVERY items.
 */
export const SLICE_MS = 2;
export const CHECK_EVERY = 128;

export class Slicer {
  private since = performance.now();

  /** `sliceMs`: how long a slice may run; a writer that falls behind asks for longer ones. */
  constructor(private readonly sliceMs: () => number = () => SLICE_MS) {}

  /** Whether the slice is used up (then `await Slicer.yieldNow()`). */
  due(): boolean {
    const now = performance.now();
    if (now - this.since < this.sliceMs()) return false;
    this.since = now;
    return true;
  }

  static yieldNow(): Promise<void> {
    return new Promise((r) => setImmediate(r));
  }
}

/**
 * How long a merge's turns on the event loop are, given how many runs its store has. A size-tiered set of
 * runs stays near (runs per merge - 1) x levels runs when merges keep up: about 6-8 at millions of keys.
 * When merges fall behind (2 ms turns lose to a loaded event loop), runs pile up and every lookup of a new
 * key asks each run's Bloom filter (and reads a block for each false positive): at 2M streams 21 index
 * runs where 6 would do. So a store with many runs gives its merge longer turns.
 */
export function mergeSliceMs(runs: number): number {
  return runs <= 8 ? SLICE_MS : 4 * SLICE_MS;
}

/** Merges one store runs at once (on disjoint windows of runs): a long merge of big runs no longer holds up the small ones. */
export const MERGES_MAX = 2;

/**
 * The runs a store should merge next, or null: the newest window of `k` adjacent runs of similar size (within
 * 4x) that no merge is reading. Sizes below `floor` (a full table's entries) count as `floor`: a snapshot cut
 * writes whatever the table holds as a run, often a few entries, and such a run between full ones used to
 * fail every window around it; each cut left a wall the tiers could not merge across (at 2M streams 33 index
 * runs, growing by about one per cut, where 6-8 would do). When runs have piled up (more than 3k: merges lost to a loaded event loop),
 * first a catch-up window of 2k adjacent runs within 16x of each other: one pass over more runs rewrites each
 * entry fewer times, so the pile comes down instead of growing (at 2M streams it had grown to 35 index runs
 * where 6 would do).
 */
export function mergeWindow<R extends { info: { entries: number } }>(
  runs: R[],
  busy: Set<R>,
  k: number,
  floor = 1,
): R[] | null {
  if (runs.length > 3 * k) {
    const wide = windowOf(runs, busy, 2 * k, 16, floor);
    if (wide !== null) return wide;
  }
  return windowOf(runs, busy, k, 4, floor);
}

function windowOf<R extends { info: { entries: number } }>(
  runs: R[],
  busy: Set<R>,
  width: number,
  ratio: number,
  floor: number,
): R[] | null {
  for (let end = runs.length; end >= width; end--) {
    const window = runs.slice(end - width, end);
    if (window.some((r) => busy.has(r))) continue;
    const sizes = window.map((r) => Math.max(floor, r.info.entries));
    if (Math.max(...sizes) > ratio * Math.max(1, Math.min(...sizes))) continue;
    return window;
  }
  return null;
}

/**
 * How long a table writer's turns are, given how many frozen tables wait to be written: apply that outpaces
 * the writer would pile tables up (memory, and every lookup asks each table), so the further behind, the
 * longer the turns; beyond four it keeps the event loop (but for its file writes) until the table is out: a
 * bounded stall in overload instead of memory without bound.
 */
export function writerSliceMs(waiting: number): number {
  return waiting <= 2 ? SLICE_MS : waiting <= 4 ? 25 * SLICE_MS : Infinity;
}

/**
 * The background merges of one store: at most MERGES_MAX at once, each on a window of adjacent runs that no
 * other merge reads (mergeWindow). A merge of big runs takes long; meanwhile small runs may pile up, so a
 * second merge can take other runs (adjacent windows stay adjacent whatever the other merge swaps in).
 */
export class Merges<R extends { info: { entries: number } }> {
  private readonly running = new Set<Promise<void>>();
  private readonly reading = new Set<R>();

  constructor(
    private readonly runs: () => R[],
    private readonly runsPerMerge: number,
    /** A full table's entries: smaller runs count as this big (see mergeWindow). */
    private readonly floor: number,
    /** Merges the window and swaps the result in; must not reject (a store records its own failure). */
    private readonly merge: (window: R[]) => Promise<void>,
    private readonly stopped: () => boolean,
  ) {}

  /** Starts what merges are due. */
  start(): void {
    while (this.running.size < MERGES_MAX && !this.stopped()) {
      const window = mergeWindow(this.runs(), this.reading, this.runsPerMerge, this.floor);
      if (window === null) return;
      for (const r of window) this.reading.add(r);
      const done: Promise<void> = this.merge(window).finally(() => {
        for (const r of window) this.reading.delete(r);
        this.running.delete(done);
        // The merged run may complete a tier of its own.
        this.start();
      });
      this.running.add(done);
    }
  }

  get active(): number {
    return this.running.size;
  }

  /** Resolves once the merges under way now are done. */
  async settled(): Promise<void> {
    await Promise.all(this.running);
  }
}
