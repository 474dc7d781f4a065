import { Inject, Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { MergeThread } from '@app/event-store';
import { NodeRuntime } from '../runtime/node-runtime';
import { StreamsService } from './streams.service';
import { NODE_RUNTIME } from './tokens';

/**
 * Gauges and counters read from one stats snapshot taken at scrape time; 0 while `read` gives null (the
 * feature is off). Counters mirror totals the store keeps itself.
 */
function statMetrics<S>(registers: Registry[], read: () => S | null) {
  return {
    gauge: (name: string, help: string, pick: (s: S) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const s = read();
          this.set(s ? pick(s) : 0);
        },
      }),
    counter: (name: string, help: string, pick: (s: S) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          const s = read();
          this.reset();
          this.inc(s ? pick(s) : 0);
        },
      }),
  };
}

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
    rt.registry.registerMetric(streams.stages.histogram.asMetric());
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
      name: 'eventstore_streams',
      help: 'Streams in the store',
      registers,
      collect() {
        this.set(store.streamIndexStats().streams);
      },
    });
    // The on-disk stream index (STREAM_INDEX=disk): its block cache against its budget, runs and table.
    const index = statMetrics(registers, () => {
      const s = store.streamIndexStats();
      return s.kind === 'disk' ? s : null;
    });
    index.gauge(
      'eventstore_stream_index_cache_bytes',
      'Bytes of decoded run blocks cached',
      (s) => s.cacheBytes,
    );
    index.gauge(
      'eventstore_stream_index_cache_budget_bytes',
      'STREAM_INDEX_CACHE_BYTES',
      (s) => s.cacheBudgetBytes,
    );
    index.counter(
      'eventstore_stream_index_cache_hits_total',
      'Block reads served from the cache',
      (s) => s.cacheHits,
    );
    index.counter(
      'eventstore_stream_index_cache_misses_total',
      'Block reads from the run files',
      (s) => s.cacheMisses,
    );
    index.gauge('eventstore_stream_index_runs', 'Run files of the stream index', (s) => s.runs);
    index.gauge('eventstore_stream_index_run_bytes', 'Bytes of the run files', (s) => s.runBytes);
    index.gauge(
      'eventstore_stream_index_table_entries',
      'Index entries in memory, not yet in a run',
      (s) => s.tableEntries,
    );
    index.gauge(
      'eventstore_stream_index_resident_bytes',
      'Memory the runs keep outside the cache (block indexes, Bloom filters)',
      (s) => s.residentBytes,
    );
    // Partition states on disk (PROJECTION_STATE=disk): the shared block cache, runs and tables.
    // Merges of both kinds of runs go to one thread per process (started on demand, ended when idle).
    const merges = statMetrics(registers, () => MergeThread.shared());
    merges.counter(
      'eventstore_merge_thread_jobs_total',
      'Merges of runs sent to the merge thread',
      (t) => t.jobs,
    );
    merges.gauge('eventstore_merge_thread_running', '1 while the merge thread runs', (t) =>
      t.running ? 1 : 0,
    );
    const parts = statMetrics(registers, () => store.projections.storageStats());
    parts.gauge(
      'eventstore_projection_cache_bytes',
      'Bytes of decoded partition-state blocks cached',
      (s) => s.cacheBytes,
    );
    parts.gauge('eventstore_projection_cache_budget_bytes', 'PROJECTION_CACHE_BYTES', (s) => s.cacheBytesMax);
    parts.counter(
      'eventstore_projection_cache_hits_total',
      'Partition-state block reads served from the cache',
      (s) => s.cacheHits,
    );
    parts.counter(
      'eventstore_projection_cache_misses_total',
      'Partition-state block reads from the run files',
      (s) => s.cacheMisses,
    );
    parts.gauge('eventstore_projection_runs', 'Run files of partition states', (s) => s.runs);
    parts.gauge('eventstore_projection_run_bytes', 'Bytes of partition-state run files', (s) => s.runBytes);
    parts.gauge(
      'eventstore_projection_table_partitions',
      'Partition states in memory (live and frozen tables), not yet in a run',
      (s) => s.tableKeys,
    );
    parts.gauge(
      'eventstore_projection_resident_bytes',
      'Memory partition-state runs keep outside the cache (block indexes, Bloom filters)',
      (s) => s.residentBytes,
    );
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
