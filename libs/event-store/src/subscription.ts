import { AllPage, EventEnvelope, StreamPage, SubscribeOptions, SubscriptionTarget } from './types';

/** A live subscription: history then live, no gap, no duplicate. `close()` ends it (the iterator returns). */
export interface EventSubscription extends AsyncIterableIterator<EventEnvelope> {
  close(): void;
  /**
   * The next events in order, as many as are at hand (at least one; at most one page), or null once the
   * subscription has ended. Same sequence as next(), with one promise per page instead of per event; the
   * two may be mixed.
   */
  nextBatch(): Promise<EventEnvelope[] | null>;
}

/** What a subscription needs from the store. */
export interface SubscriptionSource {
  readStream(streamId: string, opts: { from: number; limit: number }): StreamPage | null;
  readAll(opts: { from: number; limit: number; types?: string[]; streamPrefix?: string }): AllPage;
  streamRevision(streamId: string): number;
  lastPosition(): number;
  /** Calls `wake` once, at the next append, restore or close. Returns a cancel function. */
  onceChanged(wake: () => void): () => void;
  isClosed(): boolean;
}

/** Events read from storage per refill: the only buffer a subscription holds. */
export const SUBSCRIPTION_PAGE_EVENTS = 256;

/**
 * The subscription holds a cursor (next revision or position) and never buffers live events: when it has
 * delivered everything stored it sleeps until the next append, then reads from storage again (the recent
 * records cache makes that cheap). A slow consumer therefore costs one page of memory, whatever the rate.
 */
export function subscribe(
  source: SubscriptionSource,
  target: SubscriptionTarget,
  opts: SubscribeOptions,
): EventSubscription {
  const streamId = 'streamId' in target ? target.streamId : null;
  const filters = 'all' in target ? { types: target.types, streamPrefix: target.streamPrefix } : {};
  let next =
    opts.from ?? (streamId !== null ? source.streamRevision(streamId) + 1 : source.lastPosition() + 1);
  let page: EventEnvelope[] = [];
  let pageIndex = 0;
  let closed = false;
  let cancelWait: (() => void) | null = null;
  let wakeWaiter: (() => void) | null = null;

  /** 'events': the page holds events; 'more': a filtered scan found none yet but history remains; 'caught-up'. */
  const refill = (): 'events' | 'more' | 'caught-up' => {
    if (streamId !== null) {
      const p = source.readStream(streamId, { from: next, limit: SUBSCRIPTION_PAGE_EVENTS });
      if (!p || p.events.length === 0) return 'caught-up';
      page = p.events;
      next = page[page.length - 1].revision + 1;
    } else {
      const p = source.readAll({ from: next, limit: SUBSCRIPTION_PAGE_EVENTS, ...filters });
      page = p.events;
      if (page.length > 0) next = page[page.length - 1].position + 1;
      // Filtered pages may scan past events without returning any; resume after what was scanned.
      if (p.next !== null) next = Math.max(next, p.next);
      else if (next <= p.lastPosition) next = p.lastPosition + 1;
      if (page.length === 0) return p.next !== null ? 'more' : 'caught-up';
    }
    pageIndex = 0;
    return 'events';
  };

  // Calls to next() are served one at a time, in call order (a second caller must not refill the same page).
  let queue: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };
  const sub: EventSubscription = {
    next: () => inTurn(pull),
    nextBatch: () => inTurn(pullBatch),
    async return(): Promise<IteratorResult<EventEnvelope>> {
      sub.close();
      return { value: undefined, done: true };
    },
    close(): void {
      closed = true;
      page = [];
      cancelWait?.();
      wakeWaiter?.();
    },
    [Symbol.asyncIterator]() {
      return sub;
    },
  };

  async function pull(): Promise<IteratorResult<EventEnvelope>> {
    if (!(await fill())) return { value: undefined, done: true };
    return { value: page[pageIndex++], done: false };
  }

  async function pullBatch(): Promise<EventEnvelope[] | null> {
    if (!(await fill())) return null;
    const out = pageIndex === 0 ? page : page.slice(pageIndex);
    pageIndex = page.length;
    return out;
  }

  /** Waits until the page holds an undelivered event (true) or the subscription ended (false). */
  async function fill(): Promise<boolean> {
    while (!closed && !source.isClosed()) {
      if (pageIndex < page.length) return true;
      const r = refill();
      if (r === 'events') continue;
      if (r === 'more') {
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      // Nothing stored past the cursor: register for the next change in this same tick (no lost wake-up).
      await new Promise<void>((resolve) => {
        wakeWaiter = resolve;
        cancelWait = source.onceChanged(resolve);
      });
      wakeWaiter = cancelWait = null;
    }
    return false;
  }
  return sub;
}
