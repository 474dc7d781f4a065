import { performance } from 'node:perf_hooks';
import { Clock, Scheduler } from './ports';

/** The process's monotonic clock. */
export const systemClock: Clock = { now: () => performance.now() };

/** The Node.js event loop. */
export const systemScheduler: Scheduler = {
  soon: (fn) => {
    setImmediate(fn);
  },
  every: (ms, fn) => {
    const timer = setInterval(fn, ms);
    return () => clearInterval(timer);
  },
};
