import * as fs from 'node:fs';
import { EventStoreClient } from '@app/client';
import type { ProjectorConfig } from './config';
import { startEmbeddedPostgres, EmbeddedPostgres } from './embedded-postgres';
import { Lane, laneDefaults, LaneState } from './lane';
import { ProjectorMetrics } from './metrics';
import { builtInReadModels, ReadModel } from './read-models';
import { RebuildJob, RebuildProgress } from './rebuild';
import { PostgresSink } from './sinks/postgres/postgres-sink';
import type { Sink } from './sinks/sink';

export interface Logger {
  log(m: string): void;
  warn(m: string): void;
  error(m: string): void;
}

export type SinkName = 'postgres' | 'kafka';

export interface SinkStatus {
  state: LaneState;
  position: number;
  lag: number | null;
  error?: string | null;
  source?: string | null;
}

export interface ReadModelStatus {
  name: string;
  state: LaneState | 'rebuilding';
  position: number;
  lag: number | null;
  stopped?: { position: number; eventId: string; error: string };
  rebuild?: RebuildProgress;
}

export interface Status {
  head: number;
  /** Why the cluster's head could not be read lately (all nodes unreachable…), null when it could. */
  clusterError: string | null;
  sinks: Record<SinkName, SinkStatus>;
  readModels: ReadModelStatus[];
}

/** How often the cluster's head position is polled for /status and the lag metrics. */
const headPollMs = 1_000;

/** Makes the Kafka sink: loaded lazily so that kafkajs is not even required when the sink is off. */
export type KafkaSinkFactory = (config: ProjectorConfig, logger: Logger) => Promise<Sink>;

/**
 * The projector's moving parts: the client of the cluster, one lane per enabled sink, rebuild jobs, the
 * head poller and the metrics. Opened before the HTTP server; nothing here knows HTTP.
 */
export class ProjectorRuntime {
  readonly metrics = new ProjectorMetrics();
  readonly client: EventStoreClient;
  readonly lanes = new Map<SinkName, Lane>();
  readonly rebuilds = new Map<string, RebuildJob>();
  postgres: PostgresSink | null = null;
  head = -1;
  headError: string | null = null;
  private embedded: EmbeddedPostgres | null = null;
  private headTimer: NodeJS.Timeout | null = null;
  private stopping = false;

  private constructor(
    readonly config: ProjectorConfig,
    readonly logger: Logger,
    readonly models: ReadModel[],
  ) {
    this.client = new EventStoreClient({
      urls: config.eventStoreUrls,
      token: config.eventStoreToken ?? undefined,
      tls: config.eventStoreCa ? { ca: config.eventStoreCa } : undefined,
      // the projector retries forever at its own level; one client call gives up after a while
      retry: { attempts: 8, initialDelayMs: 100, maxDelayMs: 2_000, totalTimeoutMs: 15_000 },
      logger: { warn: (m) => logger.warn(m) },
    });
  }

  static async open(
    config: ProjectorConfig,
    logger: Logger,
    opts: { models?: ReadModel[]; kafkaSink?: KafkaSinkFactory } = {},
  ): Promise<ProjectorRuntime> {
    const rt = new ProjectorRuntime(config, logger, opts.models ?? builtInReadModels);
    fs.mkdirSync(config.dataDir, { recursive: true });
    const laneOpts = { batchEvents: config.batchEvents, lingerMs: config.lingerMs, ...laneDefaults };
    if (config.sinks.postgres) {
      let url = config.databaseUrl;
      if (url === null) {
        rt.embedded = await startEmbeddedPostgres(config.dataDir);
        url = rt.embedded.url;
        logger.log(`read models in embedded Postgres (PGlite) under ${config.dataDir}/pglite`);
      }
      rt.postgres = new PostgresSink(
        {
          url,
          schema: config.schema,
          models: rt.models,
          poolSize: rt.embedded ? 1 : 4,
          advisoryLocks: rt.embedded === null,
          connectTimeoutMs: 5_000,
        },
        logger,
      );
      rt.addLane('postgres', rt.postgres, laneOpts);
    } else logger.log('postgres sink off (PROJECTOR_SINKS)');
    if (config.sinks.kafka) {
      if (!opts.kafkaSink) throw new Error('the kafka sink is enabled but no factory was given');
      const sink = await opts.kafkaSink(config, logger);
      rt.addLane('kafka', sink, laneOpts);
    } else if (config.kafkaBrokers === null) logger.log('kafka sink off: KAFKA_BROKERS is not set');
    else logger.log('kafka sink off (PROJECTOR_SINKS)');
    rt.startHeadPoller();
    for (const lane of rt.lanes.values()) lane.start();
    if (rt.postgres) void rt.resumeRebuilds();
    return rt;
  }

  private addLane(name: SinkName, sink: Sink, opts: ConstructorParameters<typeof Lane>[3]): void {
    const m = this.metrics;
    m.up.set({ sink: name }, 0);
    m.position.set({ sink: name }, -1);
    const lane = new Lane(name, sink, this.client, opts, {
      log: (s) => this.logger.log(s),
      warn: (s) => this.logger.warn(s),
      onBatch: (n, seconds, position) => {
        m.events.inc({ sink: name }, n);
        m.batchSeconds.observe({ sink: name }, seconds);
        m.batchEvents.observe({ sink: name }, n);
        m.position.set({ sink: name }, position);
        if (position > this.head) this.head = position;
        m.lag.set({ sink: name }, Math.max(0, this.head - position));
        if (name === 'postgres' && this.postgres)
          for (const model of this.models)
            m.modelPosition.set({ model: model.name }, this.postgres.modelInfo(model.name)?.position ?? -1);
      },
      onState: (s) => m.up.set({ sink: name }, s === 'running' ? 1 : 0),
    });
    this.lanes.set(name, lane);
  }

  private startHeadPoller(): void {
    const poll = async () => {
      if (this.stopping) return;
      try {
        const h = await this.client.headPosition({ consistency: 'local' });
        this.head = Math.max(this.head, h);
        this.headError = null;
      } catch (err) {
        this.headError = (err as Error).message;
      }
      this.metrics.head.set(this.head);
      for (const [name, lane] of this.lanes)
        this.metrics.lag.set({ sink: name }, Math.max(0, this.head - lane.position));
      if (!this.stopping) this.headTimer = setTimeout(() => void poll(), headPollMs);
    };
    void poll();
  }

  /** Rebuilds left unfinished by an earlier run continue from their shadow checkpoints. */
  private async resumeRebuilds(): Promise<void> {
    const pg = this.postgres!;
    for (let i = 0; i < 600 && !this.stopping && !pg.isOpen(); i++)
      await new Promise((r) => setTimeout(r, 100));
    if (!pg.isOpen() || this.stopping) return;
    try {
      for (const name of await pg.pendingRebuilds()) this.startRebuild(name, false);
    } catch (err) {
      this.logger.warn(`looking for unfinished rebuilds: ${(err as Error).message}`);
    }
  }

  /** Starts a rebuild of `name` beside the live model (a running one is restarted from 0 when `fresh`). */
  startRebuild(name: string, fresh: boolean): RebuildJob {
    const pg = this.postgres!;
    const existing = this.rebuilds.get(name);
    if (existing) void existing.stop();
    const job = new RebuildJob(
      name,
      pg,
      this.client,
      fresh,
      { batchEvents: this.config.batchEvents, lingerMs: this.config.lingerMs, ...laneDefaults },
      { log: (m) => this.logger.log(m), warn: (m) => this.logger.warn(m) },
      () => this.head,
      this.config.rebuildSwapEvents,
    );
    this.rebuilds.set(name, job);
    void job.finished.then(() => {
      if (this.rebuilds.get(name) === job && job.progress().state === 'done') this.rebuilds.delete(name);
    });
    job.start();
    return job;
  }

  readModelNames(): string[] {
    return this.models.map((m) => m.name);
  }

  status(): Status {
    const sink = (name: SinkName): SinkStatus => {
      const lane = this.lanes.get(name);
      if (!lane) return { state: 'off', position: -1, lag: null };
      return {
        state: lane.state,
        position: lane.position,
        lag: this.head >= 0 || lane.position >= 0 ? Math.max(0, this.head - lane.position) : null,
        error: lane.lastError,
        source: lane.sourceUrl,
      };
    };
    const pgLane = this.lanes.get('postgres');
    const readModels: ReadModelStatus[] = this.models.map((m) => {
      const info = this.postgres?.modelInfo(m.name) ?? null;
      const job = this.rebuilds.get(m.name);
      const position = info?.position ?? -1;
      let state: ReadModelStatus['state'] = pgLane ? pgLane.state : 'off';
      if (info?.stopped) state = 'stopped';
      if (job && job.progress().state === 'rebuilding') state = 'rebuilding';
      const out: ReadModelStatus = { name: m.name, state, position, lag: Math.max(0, this.head - position) };
      if (info?.stopped) out.stopped = info.stopped;
      if (job) out.rebuild = job.progress();
      return out;
    });
    return {
      head: this.head,
      clusterError: this.headError,
      sinks: { postgres: sink('postgres'), kafka: sink('kafka') },
      readModels,
    };
  }

  /** /ready: every enabled sink connected with its checkpoint loaded. */
  ready(): boolean {
    for (const lane of this.lanes.values()) if (lane.state !== 'running') return false;
    return true;
  }

  async shutdown(): Promise<void> {
    this.stopping = true;
    if (this.headTimer) clearTimeout(this.headTimer);
    await Promise.all([...this.rebuilds.values()].map((j) => j.stop()));
    await Promise.all([...this.lanes.values()].map((l) => l.stop()));
    this.client.close();
    if (this.embedded) await this.embedded.close();
  }
}
