import type { EventEnvelope, EventStoreClient } from '@app/client';
import { Lane, LaneOptions } from './lane';
import { PostgresSink } from './sinks/postgres/postgres-sink';
import { Sink, SinkUnavailableError } from './sinks/sink';

const readPageEvents = 4096;

export interface RebuildProgress {
  /** The shadow table's position. */
  position: number;
  eventsPerSecond: number;
  /** Seconds until caught up at the current rate, null when unknown. */
  etaSeconds: number | null;
  startedAt: string;
  state: 'rebuilding' | 'stopped' | 'done';
  error: string | null;
}

/**
 * Rebuilds one read model from position 0 into a shadow table beside the live one: its own lane follows `$all`
 * into the shadow (queries keep answering from the live table), and after each batch tries to swap the shadow
 * in — which succeeds, under the sink's write mutex, once the shadow is within `swapCatchUpEvents` (PROJECTOR_REBUILD_SWAP_EVENTS) of what
 * the live lane has delivered (the gap is read and applied inside the swap). A restart resumes an unfinished
 * rebuild from its shadow checkpoint.
 */
export class RebuildJob {
  readonly lane: Lane;
  readonly startedAt = new Date().toISOString();
  private shadowPosition = -1;
  private readonly rate = new RateMeter();
  private done = false;
  private stoppedError: string | null = null;
  private finishedResolve!: () => void;
  readonly finished = new Promise<void>((r) => (this.finishedResolve = r));

  constructor(
    readonly model: string,
    private readonly pg: PostgresSink,
    private readonly client: EventStoreClient,
    fresh: boolean,
    laneOpts: LaneOptions,
    private readonly log: { log(m: string): void; warn(m: string): void },
    private readonly headPosition: () => number,
    /** The most events a swap reads itself to bring the shadow level with the live model. */
    private readonly swapCatchUpEvents: number,
  ) {
    let firstOpen = fresh;
    const sink: Sink = {
      name: `rebuild:${model}`,
      open: async () => {
        // the live sink owns the connection; wait until it is open
        if (!this.pg.isOpen()) throw new SinkUnavailableError('postgres: not connected yet');
        this.shadowPosition = await this.pg.prepareShadow(model, firstOpen);
        firstOpen = false;
        return this.shadowPosition;
      },
      write: async (events) => {
        if (this.done || this.stoppedError) return;
        const r = await this.pg.writeShadow(model, this.shadowPosition, events);
        this.shadowPosition = r.position;
        this.rate.add(events.length);
        if (r.stopped) {
          this.stoppedError = `stopped at position ${r.stopped.position} (event ${r.stopped.eventId}): ${r.stopped.error}`;
          this.log.warn(`rebuild of ${model} ${this.stoppedError}`);
          void this.lane.stop();
          return;
        }
        await this.trySwap();
      },
      close: async () => undefined,
    };
    this.lane = new Lane(`rebuild:${model}`, sink, client, laneOpts, {
      log: log.log,
      warn: log.warn,
    });
  }

  start(): void {
    this.log.log(`rebuild of ${this.model} started beside the live model`);
    this.lane.start();
  }

  async stop(): Promise<void> {
    await this.lane.stop();
    this.finishedResolve();
  }

  progress(): RebuildProgress {
    const eps = this.rate.perSecond();
    const left = this.headPosition() - this.shadowPosition;
    return {
      position: this.shadowPosition,
      eventsPerSecond: Math.round(eps),
      etaSeconds: eps > 0 ? Math.max(0, Math.round(left / eps)) : null,
      startedAt: this.startedAt,
      state: this.done ? 'done' : this.stoppedError ? 'stopped' : 'rebuilding',
      error: this.stoppedError,
    };
  }

  private async trySwap(): Promise<void> {
    const r = await this.pg.swap(this.model, this.shadowPosition, (after, upTo) =>
      this.readRange(after, upTo),
    );
    this.shadowPosition = r.position;
    if (!r.swapped) return;
    this.done = true;
    this.log.log(`rebuild of ${this.model} caught up at position ${r.position}: swapped in`);
    void this.lane.stop().then(() => this.finishedResolve());
  }

  /** Events (after, upTo], or null if there are more than the swap may read itself. */
  private async readRange(after: number, upTo: number): Promise<EventEnvelope[] | null> {
    if (upTo - after > this.swapCatchUpEvents) return null;
    const out: EventEnvelope[] = [];
    let from = after + 1;
    while (from <= upTo) {
      const page = await this.client.readAll({
        from,
        limit: Math.min(readPageEvents, upTo - from + 1),
        consistency: 'local',
      });
      if (page.events.length === 0) return null;
      for (const e of page.events) if (e.position <= upTo) out.push(e);
      from = page.events[page.events.length - 1].position + 1;
    }
    return out;
  }
}

/** Events per second over the last ~10 s. */
class RateMeter {
  private readonly buckets: { t: number; n: number }[] = [];
  add(n: number): void {
    const t = Math.floor(performance.now() / 1000);
    const last = this.buckets[this.buckets.length - 1];
    if (last && last.t === t) last.n += n;
    else this.buckets.push({ t, n });
    while (this.buckets.length > 11) this.buckets.shift();
  }
  perSecond(): number {
    if (this.buckets.length === 0) return 0;
    const now = performance.now() / 1000;
    const span = Math.max(1, now - this.buckets[0].t);
    return this.buckets.reduce((s, b) => s + b.n, 0) / span;
  }
}
