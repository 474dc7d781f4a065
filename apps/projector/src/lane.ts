import { EventEnvelope, EventStoreClient, EventStoreError, Subscription } from '@app/client';
import { Sink, SinkFencedError, SinkUnavailableError } from './sinks/sink';

export type LaneState = 'starting' | 'running' | 'paused' | 'stopped' | 'off';

export interface LaneOptions {
  batchEvents: number;
  lingerMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
}

export interface LaneHooks {
  log(m: string): void;
  warn(m: string): void;
  /** After each durable batch. */
  onBatch?(events: number, seconds: number, position: number): void;
  onState?(state: LaneState): void;
}

export const laneDefaults = { backoffMinMs: 100, backoffMaxMs: 5_000 };

/** Waits `ms`, or less when `signal` aborts; `cancel` drops the timer and the abort listener at once. */
function timer(ms: number, signal: AbortSignal): { done: Promise<void>; cancel(): void } {
  let cancel = () => undefined as void;
  const done = new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(finish, ms);
    function finish() {
      clearTimeout(t);
      signal.removeEventListener('abort', finish);
      resolve();
    }
    cancel = finish;
    signal.addEventListener('abort', finish, { once: true });
  });
  return { done, cancel };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return timer(ms, signal).done;
}

/**
 * One sink's follower of `$all`: open the sink (its checkpoint), subscribe right after it, group the events
 * into batches of at most `batchEvents` (waiting at most `lingerMs` to fill one), write each batch, repeat.
 * Memory is bounded: reading runs at most two batches ahead of writing, so a slow sink slows the reading (TCP
 * backpressure up to the node) instead of piling events up. A sink that fails is closed,
 * marked `paused`, reopened with capped exponential backoff and resumed from the checkpoint it reports, so a
 * batch whose outcome was unknown is neither lost nor repeated. A sink fenced by another writer stops the lane.
 */
export class Lane {
  state: LaneState = 'starting';
  /** The last position durably written by the sink, −1 before any. */
  position = -1;
  lastError: string | null = null;
  /** The source side: the URL the subscription reads from, null while reconnecting. */
  sourceUrl: string | null = null;
  private readonly abort = new AbortController();
  private sub: Subscription | null = null;
  private running: Promise<void> | null = null;

  constructor(
    readonly name: string,
    private readonly sink: Sink,
    private readonly client: EventStoreClient,
    private readonly opts: LaneOptions,
    private readonly hooks: LaneHooks,
  ) {}

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.sub?.close();
    await this.running;
    await this.sink.close().catch(() => undefined);
    this.setState('off');
  }

  private setState(s: LaneState): void {
    if (this.state === s) return;
    this.state = s;
    this.hooks.onState?.(s);
  }

  private async loop(): Promise<void> {
    let failures = 0;
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        this.position = await this.sink.open();
        if (signal.aborted) break;
        if (this.state !== 'running') this.hooks.log(`${this.name}: writing after position ${this.position}`);
        this.setState('running');
        this.lastError = null;
        failures = 0;
        await this.follow(signal, () => (failures = 0));
        if (signal.aborted) break;
      } catch (err) {
        if (signal.aborted) break;
        const msg = err instanceof Error ? err.message : String(err);
        if (err instanceof SinkFencedError) {
          this.hooks.warn(`${this.name}: stopped: ${msg}`);
          this.lastError = msg;
          this.setState('stopped');
          await this.sink.close().catch(() => undefined);
          return;
        }
        if (this.lastError !== msg || this.state !== 'paused')
          this.hooks.warn(`${this.name}: paused: ${msg}`);
        this.lastError = msg;
        this.setState('paused');
        if (!(err instanceof SinkUnavailableError) && !isSourceError(err))
          this.hooks.warn(`${this.name}: unexpected error, will retry: ${(err as Error)?.stack ?? msg}`);
      }
      await this.sink.close().catch(() => undefined);
      failures++;
      const cap = Math.min(this.opts.backoffMaxMs, this.opts.backoffMinMs * 2 ** Math.min(failures, 16));
      await sleep(cap / 2 + Math.random() * (cap / 2), signal);
    }
  }

  /**
   * Subscribes after `position` and writes batches until an error or a stop. Reading runs ahead of writing into
   * a queue of at most `prefetchBatches` × `batchEvents` events, so the next batch fills while one is written (and
   * the socket is parsed while the sink waits on its backend); past that bound the reader stops pulling and TCP
   * holds the node back.
   */
  private async follow(signal: AbortSignal, onProgress: () => void): Promise<void> {
    const sub = this.client.subscribeAll({
      from: this.position + 1,
      signal,
      maxBatchEvents: this.opts.batchEvents,
    });
    this.sub = sub;
    const queue = new EventQueue(this.opts.batchEvents * prefetchBatches);
    const reader = (async () => {
      try {
        for await (const events of sub) {
          this.sourceUrl = sub.connectedUrl;
          if (signal.aborted) break;
          await queue.put(events);
        }
        queue.end(null);
      } catch (err) {
        queue.end(err);
      }
    })();
    try {
      for (;;) {
        if (!(await queue.waitAny())) return;
        if (this.opts.lingerMs > 0 && queue.size < this.opts.batchEvents) {
          const t = timer(this.opts.lingerMs, signal);
          await Promise.race([queue.waitSize(this.opts.batchEvents), t.done]);
          t.cancel();
        }
        if (signal.aborted) return;
        const batch = queue.take(this.opts.batchEvents);
        if (batch.length > 0) await this.writeBatch(batch);
        onProgress();
      }
    } finally {
      this.sub = null;
      sub.close();
      queue.end(null);
      await reader;
      this.sourceUrl = null;
    }
  }

  private async writeBatch(batch: EventEnvelope[]): Promise<void> {
    if (batch[0].position !== this.position + 1)
      throw new Error(
        `${this.name}: the source handed position ${batch[0].position} after ${this.position}: not contiguous`,
      );
    const t0 = performance.now();
    await this.sink.write(batch);
    const last = batch[batch.length - 1].position;
    this.position = last;
    this.hooks.onBatch?.(batch.length, (performance.now() - t0) / 1000, last);
  }
}

/** Batches of events read ahead; `prefetchBatches` × batchEvents bounds the queue. */
const prefetchBatches = 2;

/**
 * The bounded hand-over between a lane's reader and its writer: `put` waits while the queue is full, `take`
 * removes up to n events in order, `end` wakes everyone (with the reader's error, if any, for the writer).
 */
class EventQueue {
  private chunks: EventEnvelope[][] = [];
  size = 0;
  private ended = false;
  private error: unknown = null;
  private wake: (() => void)[] = [];

  constructor(private readonly capacity: number) {}

  private notify(): void {
    const w = this.wake;
    this.wake = [];
    for (const f of w) f();
  }

  private wait(): Promise<void> {
    return new Promise((r) => this.wake.push(r));
  }

  async put(events: EventEnvelope[]): Promise<void> {
    while (!this.ended && this.size >= this.capacity) await this.wait();
    if (this.ended) return;
    this.chunks.push(events);
    this.size += events.length;
    this.notify();
  }

  end(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    this.notify();
  }

  /** True once events are queued; false when the reader ended and none are left; throws the reader's error. */
  async waitAny(): Promise<boolean> {
    while (this.size === 0) {
      if (this.ended) {
        if (this.error) throw this.error;
        return false;
      }
      await this.wait();
    }
    return true;
  }

  async waitSize(n: number): Promise<void> {
    while (this.size < n && !this.ended) await this.wait();
  }

  take(n: number): EventEnvelope[] {
    const out: EventEnvelope[] = [];
    while (out.length < n && this.chunks.length > 0) {
      const head = this.chunks[0];
      const room = n - out.length;
      if (head.length <= room) {
        this.chunks.shift();
        for (const e of head) out.push(e);
      } else {
        for (let i = 0; i < room; i++) out.push(head[i]);
        this.chunks[0] = head.slice(room);
      }
    }
    this.size -= out.length;
    this.notify();
    return out;
  }
}

function isSourceError(err: unknown): boolean {
  return err instanceof EventStoreError;
}
