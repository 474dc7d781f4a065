import { NodeError } from './api';
import { Clock } from './ports';

/** A condition: true = satisfied, false = keep waiting, an Error = give up with it. */
export type Condition = () => boolean | Error;

interface Waiter {
  check: Condition;
  deadlineMs: number;
  what: string;
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * Promises that settle when a condition on the node's state holds. The node calls `checkAll()` after every
 * change of state (a Ready completed, a tick) and `expire()` on every tick; every waiter has a deadline.
 */
export class Waiters {
  private list: Waiter[] = [];

  constructor(private readonly clock: Clock) {}

  waitFor(check: Condition, timeoutMs: number, what: string): Promise<void> {
    const first = check();
    if (first === true) return Promise.resolve();
    if (first instanceof Error) return Promise.reject(first);
    return new Promise((resolve, reject) => {
      this.list.push({ check, deadlineMs: this.clock.now() + timeoutMs, what, resolve, reject });
    });
  }

  get size(): number {
    return this.list.length;
  }

  checkAll(): void {
    if (this.list.length === 0) return;
    const keep: Waiter[] = [];
    for (const w of this.list) {
      let r: boolean | Error;
      try {
        r = w.check();
      } catch (e) {
        r = e as Error;
      }
      if (r === true) w.resolve();
      else if (r instanceof Error) w.reject(r);
      else keep.push(w);
    }
    this.list = keep;
  }

  expire(nowMs: number): void {
    if (this.list.length === 0) return;
    const keep: Waiter[] = [];
    for (const w of this.list) {
      if (w.deadlineMs <= nowMs)
        w.reject(new NodeError('timeout', `timed out waiting for ${w.what}; the outcome is unknown, retry`));
      else keep.push(w);
    }
    this.list = keep;
  }

  rejectAll(error: Error): void {
    const list = this.list;
    this.list = [];
    for (const w of list) w.reject(error);
  }
}
