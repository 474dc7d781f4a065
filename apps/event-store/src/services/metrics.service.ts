import { Inject, Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge } from 'prom-client';
import { NodeRuntime } from '../runtime/node-runtime';
import { StreamsService } from './streams.service';
import { NODE_RUNTIME } from './tokens';

/** GET /metrics: the node's Raft metrics (registered by the node), event-store gauges, HTTP request counts. */
@Injectable()
export class MetricsService {
  private readonly requests: Counter<'method' | 'route' | 'status'>;

  constructor(
    @Inject(NODE_RUNTIME) private readonly rt: NodeRuntime,
    streams: StreamsService,
  ) {
    const registers = [rt.registry];
    collectDefaultMetrics({ register: rt.registry });
    this.requests = new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    const store = rt.store;
    new Gauge({
      name: 'eventstore_last_position',
      help: 'Position of the last stored event (-1 when empty)',
      registers,
      collect() {
        this.set(store.lastPosition());
      },
    });
    // Counted in plain numbers by the batcher, copied in when scraped.
    const batching = streams.batcher.stats;
    new Counter({
      name: 'eventstore_append_entries_total',
      help: 'Raft entries proposed for appends (each carries one or more append commands)',
      registers,
      collect() {
        this.reset();
        this.inc(batching.entries);
      },
    });
    new Counter({
      name: 'eventstore_append_commands_total',
      help: 'Append commands proposed; divided by eventstore_append_entries_total: appends per Raft entry',
      registers,
      collect() {
        this.reset();
        this.inc(batching.commands);
      },
    });
    new Gauge({
      name: 'eventstore_projection_lag_events',
      help: 'Events not yet folded into each projection',
      labelNames: ['projection'],
      registers,
      collect() {
        for (const p of store.projections.list()) this.set({ projection: p.name }, p.lag);
      },
    });
  }

  countRequest(method: string, route: string, status: number): void {
    this.requests.inc({ method, route, status: String(status) });
  }

  contentType(): string {
    return this.rt.registry.contentType;
  }

  text(): Promise<string> {
    return this.rt.registry.metrics();
  }
}
