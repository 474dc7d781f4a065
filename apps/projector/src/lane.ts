import { EventEnvelope, EventStoreClient, EventStoreError, Subscription } from '../../../libs/client/src';
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
 * Memory is bounded: the subscription is pulled only when the previous batch is written, so a slow sink slows
 * the reading (TCP backpressure up to the node) instead of piling events up. A sink that fails is closed,
 * marked `paused`, reopened with capped exponential backoff and resumed from the checkpoint it reports, so a
 * batch whose outcome was unknown is neither lost nor repeated. A sink fenced by another writer stops the lane.
 */
export class Lane {
  state: LaneState = 'starting';
  /** The last position durably written by the sink, −1 before any. */
  position = -1;
  lastError: string | null = null;
  eventsWritten = 0;
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

  /** Subscribes after `position` and writes batches until an error or a stop. */
  private async follow(signal: AbortSignal, onProgress: () => void): Promise<void> {
    const sub = this.client.subscribeAll({
      from: this.position + 1,
      signal,
      maxBatchEvents: this.opts.batchEvents,
    });
    this.sub = sub;
    const it = sub[Symbol.asyncIterator]();
    let pending: Promise<IteratorResult<EventEnvelope[]>> | null = null;
    try {
      for (;;) {
        pending ??= it.next();
        const first = await pending;
        pending = null;
        this.sourceUrl = sub.connectedUrl;
        if (first.done || signal.aborted) return;
        let batch = first.value;
        // Linger: take what arrives within lingerMs, up to batchEvents.
        const deadline = performance.now() + this.opts.lingerMs;
        while (batch.length < this.opts.batchEvents) {
          const wait = deadline - performance.now();
          if (wait <= 0) break;
          pending = it.next();
          const t = timer(wait, signal);
          const more = await Promise.race([pending, t.done.then(() => null)]);
          t.cancel();
          if (more === null) break;
          pending = null;
          if (more.done) break;
          batch = batch.length === 0 ? more.value : batch.concat(more.value);
        }
        if (batch.length > this.opts.batchEvents) {
          // a subscription batch may straddle the limit: write it in pieces
          for (let i = 0; i < batch.length; i += this.opts.batchEvents)
            await this.writeBatch(batch.slice(i, i + this.opts.batchEvents));
        } else if (batch.length > 0) await this.writeBatch(batch);
        onProgress();
      }
    } finally {
      this.sub = null;
      sub.close();
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
    this.eventsWritten += batch.length;
    this.hooks.onBatch?.(batch.length, (performance.now() - t0) / 1000, last);
  }
}

function isSourceError(err: unknown): boolean {
  return err instanceof EventStoreError;
}
