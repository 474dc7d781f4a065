/**
 * Background work on the event loop (writing and merging runs) gives way to requests: `turn()` resolves at
 * once until SLICE_MS have passed since the last real turn, then after a setImmediate (so timers, I/O and
 * requests run in between). Checking the clock every call would cost more than the work: callers ask every
 * CHECK_EVERY items.
 */
const SLICE_MS = 2;
export const CHECK_EVERY = 128;

export class Slicer {
  private since = performance.now();

  /** Whether the slice is used up (then `await Slicer.yieldNow()`). */
  due(): boolean {
    const now = performance.now();
    if (now - this.since < SLICE_MS) return false;
    this.since = now;
    return true;
  }

  static yieldNow(): Promise<void> {
    return new Promise((r) => setImmediate(r));
  }
}
