/**
 * Virtual time: a priority queue of events ordered by (time, insertion order). Ties keep insertion
 * order, so a run depends only on its seed.
 */
export interface Scheduled<T> {
  time: number;
  seq: number;
  event: T;
}

export class Scheduler<T> {
  private heap: Scheduled<T>[] = [];
  private seq = 0;
  private nowMs = 0;

  /** The virtual time of the event being handled (ms). */
  now(): number {
    return this.nowMs;
  }

  size(): number {
    return this.heap.length;
  }

  at(time: number, event: T): void {
    if (!(time >= this.nowMs)) throw new Error(`Scheduler.at: time ${time} is before now ${this.nowMs}`);
    const item = { time, seq: this.seq++, event };
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(item, h[p])) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = item;
  }

  after(delayMs: number, event: T): void {
    this.at(this.nowMs + Math.max(0, delayMs), event);
  }

  /** Removes and returns the earliest event, advancing virtual time to it; undefined when empty. */
  pop(): Scheduled<T> | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      const n = h.length;
      while (true) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && before(h[r], h[l]) ? r : l;
        if (!before(h[c], last)) break;
        h[i] = h[c];
        i = c;
      }
      h[i] = last;
    }
    this.nowMs = top.time;
    return top;
  }

  peekTime(): number | undefined {
    return this.heap.length > 0 ? this.heap[0].time : undefined;
  }
}

function before<T>(a: Scheduled<T>, b: Scheduled<T>): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
