/**
 * `npm run bench:projector`: the projector (apps/projector, PROJECTOR.md) as a process against a real
 * 3-process cluster on this machine, Postgres on 127.0.0.1:5432 and the Kafka broker of scripts/kafka.sh on
 * 127.0.0.1:9092. Prints one table of figures, each next to a ceiling measured in the same run. No timed
 * assertions.
 *
 *  1. fill the cluster with BENCH_PROJECTOR_EVENTS (1,000,000) ~200 B events: wrk + bench/projector-fill.lua,
 *     100-event batches over 4,000 `bench-<n>` streams, every 5th request to one of 1,000 `order-<n>` streams
 *  2. Postgres alone: a fresh database, a projector with PROJECTOR_SINKS=postgres from position 0: time from
 *     the spawn until /status says its position is the cluster's last (polled every 200 ms) → events/s; RSS.
 *     Ceiling: plain `pg` multi-row INSERTs of one row per event + a checkpoint UPDATE, in transactions of the
 *     projector's batch size (bench/support/projector-ceilings.ts)
 *  3. Kafka alone: a fresh topic, PROJECTOR_SINKS=kafka, same timing. Ceiling: kafkajs alone producing the
 *     same records in transactions of the same size to a fresh topic with the same partitions. Repeated with
 *     the batch sizes in BENCH_PROJECTOR_KAFKA_BATCHES (2000,10000)
 *  4. both sinks in one projector (fresh database and topic): events/s of each
 *  5. end-to-end lag at a steady BENCH_PROJECTOR_LAG_RATE (5,000) events/s for BENCH_PROJECTOR_LAG_S (60) s, the
 *     projector of 4 caught up: a Node appender at a fixed rate (100-event requests) plus 20 probes/s (single
 *     events to `probe-…` streams); Postgres visibility = the stream_summaries checkpoint (polled every 5 ms)
 *     reaching the probe's position (rows and checkpoint commit together); Kafka visibility = a kafkajs
 *     consumer (read_committed) receiving the probe's record. Lag = visible − acknowledged.
 *
 * Environment: BENCH_PROJECTOR_EVENTS (1000000), BENCH_PROJECTOR_BATCH (5000, the projector's default
 * PROJECTOR_BATCH_EVENTS), BENCH_PROJECTOR_KAFKA_BATCHES (2000,10000; empty: none), BENCH_PROJECTOR_LAG_S (60),
 * BENCH_PROJECTOR_LAG_RATE (5000), BENCH_PROJECTOR_PG (postgres://postgres@127.0.0.1:5432),
 * BENCH_PROJECTOR_KAFKA (unset: the bench starts a broker of its own with scripts/kafka.sh on free ports, data
 * under .bench-tmp, so that a jest run stopping the shared 127.0.0.1:9092 broker cannot cut a run short; or
 * host:port of an existing broker), BENCH_PROJECTOR_STALL_S (45: a sink without progress that long fails its
 * run), PROJECTOR_LINGER_MS (passed on), BENCH_ONLY (postgres,kafka,batches,both,lag), BENCH_CPU_PROF=1 (the
 * projector processes, and the nodes, write CPU profiles into .bench-tmp/profiles/), BENCH_KEEP_DATA=1.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { Client } from 'pg';
import { EventStoreClient, EventEnvelope } from '@app/client';
import { waitFor } from '@app/consensus/testing';
import { BenchBroker } from './support/kafka-broker';
import { getJson } from './support/http';
import {
  benchDir,
  ClusterHarness,
  cpuSeconds,
  freePorts,
  killProc,
  Proc,
  repoRoot,
  rssMiB,
  sleep,
  spawnTracked,
  startBenchCluster,
  stopBenchCluster,
} from './support/bench-run';
import {
  CeilingResult,
  deleteKafkaTopics,
  kafkaTransactionCeiling,
  postgresInsertCeiling,
} from './support/projector-ceilings';
import { Probe, RateLoad, RateLoadResult, runFillWrk } from './support/projector-load';
import { envInt, int, log, ms, pct, percentile, runBench, table } from './support/report';
import { requireWrk, WrkResult, wrkProblems } from './support/wrk';

const totalEvents = envInt('BENCH_PROJECTOR_EVENTS', 1_000_000);
const batchEvents = envInt('BENCH_PROJECTOR_BATCH', 5000);
const kafkaBatches = (process.env.BENCH_PROJECTOR_KAFKA_BATCHES ?? '2000,10000')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0 && n !== batchEvents);
const lagSeconds = envInt('BENCH_PROJECTOR_LAG_S', 60);
const lagRate = envInt('BENCH_PROJECTOR_LAG_RATE', 5000);
const pgBase = (process.env.BENCH_PROJECTOR_PG ?? 'postgres://postgres@127.0.0.1:5432').replace(/\/+$/, '');
/** Set: use this broker; unset: the bench starts a broker of its own (bench/support/kafka-broker.ts). */
const givenBrokers = process.env.BENCH_PROJECTOR_KAFKA ? process.env.BENCH_PROJECTOR_KAFKA.split(',') : null;
let kafkaBrokers: string[] = givenBrokers ?? [];
let brokerPid: number | null = null;
/** A sink that makes no progress for this long (paused, e.g. a batch the broker refuses) fails its run. */
const stallMs = envInt('BENCH_PROJECTOR_STALL_S', 45) * 1000;
const only = new Set(
  (process.env.BENCH_ONLY ?? 'postgres,kafka,batches,both,lag').split(',').map((s) => s.trim()),
);

const eventBytes = 200;
const fillEventsPerRequest = 100;
const fillConnections = 4;
const fillStreams = 4000;
const orderEvery = 5;
const orderStreams = 1000;
const kafkaPartitions = 3;
const lagEventsPerRequest = 100;
const probesPerS = 20;
const statusPollMs = 200;
const checkpointPollMs = 5;
const catchUpTimeoutMs = 30 * 60_000;
const readyTimeoutMs = 120_000;
const visibleTimeoutMs = 60_000;
const projectorMain = path.join(repoRoot, 'dist', 'apps', 'projector', 'src', 'main.js');

const target = {
  postgresPerS: 20_000,
  kafkaPerS: 50_000,
  ofCeiling: 0.5,
  lagP99Ms: 100,
};

type SinkName = 'postgres' | 'kafka';

interface SinkStatus {
  state: string;
  position: number;
  lag: number | null;
  error?: string | null;
}

interface Status {
  head: number;
  sinks: Record<SinkName, SinkStatus>;
}

interface BatchMetrics {
  batches: number;
  events: number;
  seconds: number;
}

interface ProjectorRun {
  name: string;
  batch: number;
  sinks: SinkName[];
  events: number;
  /** Spawn → GET /ready 200 (ms). */
  readyMs: number;
  /** Spawn → position == head, per sink (ms). */
  caughtMs: Partial<Record<SinkName, number>>;
  rssReady: number;
  rssEnd: number;
  rssMax: number;
  /** CPU cores over the catch-up: the projector, the three nodes together, Postgres (all its processes), the broker. */
  cores: { projector: number; nodes: number; postgres: number; kafka: number };
  metrics: Partial<Record<SinkName, BatchMetrics>>;
  /** Non-running states seen, with their errors. */
  troubles: string[];
  /** Status polls that found a sink not running after one that found it running. */
  pauses: number;
  rows?: { streamSummaries: number; orders: number };
}

interface Results {
  /** 1-minute load average of the box before and after (the 2 cores are shared with other work). */
  loadBefore: number;
  loadAfter: number;
  fill?: { events: number; seconds: number; load: WrkResult };
  head: number;
  pg?: { run: ProjectorRun; ceiling: CeilingResult };
  kafka: {
    run: ProjectorRun | null;
    error?: string;
    ceilingError?: string;
    ceiling: (CeilingResult & { valueBytes: number }) | null;
  }[];
  both?: ProjectorRun;
  lag?: Lag;
}

interface Lag {
  load: RateLoadResult;
  postgres: number[];
  kafka: number[];
  missingPostgres: number;
  missingKafka: number;
  probes: number;
  checkpointPolls: number;
  cores: { projector: number; nodes: number; postgres: number; kafka: number };
  rssEnd: number;
}

/** A projector process with its HTTP address. */
class ProjectorProc {
  private constructor(
    readonly name: string,
    readonly proc: Proc,
    readonly url: string,
    readonly logFile: string,
    readonly startedAt: number,
  ) {}

  static async start(name: string, dir: string, env: Record<string, string>): Promise<ProjectorProc> {
    if (!fs.existsSync(projectorMain))
      throw new Error(`bench: ${projectorMain} is missing: run \`npm run build\` first`);
    const [port] = await freePorts(1);
    const args = [process.execPath];
    if (process.env.BENCH_CPU_PROF === '1') {
      const profDir = path.join(repoRoot, '.bench-tmp', 'profiles');
      fs.mkdirSync(profDir, { recursive: true });
      args.push(
        '--cpu-prof',
        `--cpu-prof-dir=${profDir}`,
        `--cpu-prof-name=projector-${name}-${Date.now()}.cpuprofile`,
      );
    }
    args.push(projectorMain);
    const logFile = path.join(dir, `projector-${name}.log`);
    const dataDir = path.join(dir, `projector-${name}`);
    const t0 = performance.now();
    const proc = spawnTracked(
      `projector-${name}`,
      args,
      {
        ...env,
        PROJECTOR_HTTP_ADDR: `127.0.0.1:${port}`,
        PROJECTOR_DATA_DIR: dataDir,
        PROJECTOR_ID: `bench-${name}`,
      },
      logFile,
    );
    return new ProjectorProc(name, proc, `http://127.0.0.1:${port}`, logFile, t0);
  }

  tail(lines = 20): string {
    try {
      const text = fs.readFileSync(this.logFile, 'utf8').trimEnd().split('\n');
      return `--- projector ${this.name} log (last ${lines} lines) ---\n${text.slice(-lines).join('\n')}`;
    } catch {
      return `--- projector ${this.name}: no log ---`;
    }
  }

  async status(): Promise<Status> {
    const r = await getJson(`${this.url}/status`, 10_000);
    if (r.status !== 200) throw new Error(`bench: GET /status answered ${r.status}`);
    return r.body as Status;
  }

  /** Sums of projector_batch_duration_seconds and projector_batch_events per sink. */
  async batchMetrics(): Promise<Partial<Record<SinkName, BatchMetrics>>> {
    const r = await getJson(`${this.url}/metrics`, 10_000);
    const text = String(r.body);
    const out: Partial<Record<SinkName, BatchMetrics>> = {};
    for (const sink of ['postgres', 'kafka'] as SinkName[]) {
      const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
      const count = num(
        new RegExp(`^projector_batch_duration_seconds_count\\{sink="${sink}"\\} (\\S+)`, 'm'),
      );
      if (!Number.isFinite(count)) continue;
      out[sink] = {
        batches: count,
        seconds: num(new RegExp(`^projector_batch_duration_seconds_sum\\{sink="${sink}"\\} (\\S+)`, 'm')),
        events: num(new RegExp(`^projector_batch_events_sum\\{sink="${sink}"\\} (\\S+)`, 'm')),
      };
    }
    return out;
  }

  async waitReady(): Promise<number> {
    await waitFor(
      `projector ${this.name} GET /ready = 200`,
      async () => {
        if (this.proc.exited) throw new Error(`bench: projector ${this.name} exited:\n${this.tail()}`);
        return (await getJson(`${this.url}/ready`, 2000)).status === 200;
      },
      { timeoutMs: readyTimeoutMs, intervalMs: 50, backoff: false },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.tail()}`);
    });
    return performance.now() - this.startedAt;
  }

  /** SIGTERM (graceful: a CPU profile gets written), SIGKILL after 20 s. */
  stop(): Promise<void> {
    return killProc(this.proc, 'SIGTERM', 20_000);
  }
}

/** CPU seconds of every process whose command name is `comm`, by PID (Linux /proc). */
function cpuByComm(comm: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim() !== comm) continue;
      out.set(Number(d), cpuSeconds(Number(d)));
    } catch {
      /* gone */
    }
  }
  return out;
}

function kafkaPid(): number | null {
  return brokerPid;
}

/** CPU used by the projector, the nodes, Postgres and the broker between `start()` and `cores()`. */
class CpuMeter {
  private t0 = 0;
  private projector0 = 0;
  private nodes0 = 0;
  private pg0 = new Map<number, number>();
  private kafka0 = 0;

  constructor(
    private readonly cluster: ClusterHarness,
    private readonly projectorPid: number,
  ) {}

  private nodesCpu(): number {
    return this.cluster.running().reduce((s, n) => s + cpuSeconds(n.proc!.pid), 0);
  }

  start(): this {
    this.t0 = performance.now();
    this.projector0 = cpuSeconds(this.projectorPid);
    this.nodes0 = this.nodesCpu();
    this.pg0 = cpuByComm('postgres');
    const k = kafkaPid();
    this.kafka0 = k ? cpuSeconds(k) : NaN;
    return this;
  }

  cores(): { projector: number; nodes: number; postgres: number; kafka: number } {
    const s = (performance.now() - this.t0) / 1000;
    let pg = 0;
    for (const [pid, cpu] of cpuByComm('postgres')) pg += cpu - (this.pg0.get(pid) ?? 0);
    const k = kafkaPid();
    return {
      projector: (cpuSeconds(this.projectorPid) - this.projector0) / s,
      nodes: (this.nodesCpu() - this.nodes0) / s,
      postgres: pg / s,
      kafka: k ? (cpuSeconds(k) - this.kafka0) / s : NaN,
    };
  }
}

async function createDatabase(): Promise<string> {
  const name = `bench_projector_${randomBytes(4).toString('hex')}`;
  const c = new Client({ connectionString: `${pgBase}/postgres` });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  return name;
}

async function dropDatabase(name: string): Promise<void> {
  const c = new Client({ connectionString: `${pgBase}/postgres` });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await c.end();
  }
}

async function lastPosition(cluster: ClusterHarness): Promise<number> {
  const leader = await cluster.waitForLeader();
  const r = await getJson(`${leader.url}/streams/$all?direction=backward&limit=1`, 30_000);
  if (r.status !== 200) throw new Error(`bench: GET $all answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.lastPosition as number;
}

async function fill(cluster: ClusterHarness, res: Results): Promise<void> {
  const leader = await cluster.waitForLeader();
  const have = (await lastPosition(cluster)) + 1;
  const requests = Math.ceil((totalEvents - have) / fillEventsPerRequest);
  if (requests <= 0) return;
  log(
    `filling to ${int(totalEvents)} events: ${int(requests)} requests of ${fillEventsPerRequest} ~${eventBytes} B events on ${fillConnections} connections, ` +
      `${fillStreams} bench-<n> streams, every ${orderEvery}th request to one of ${orderStreams} order-<n> streams`,
  );
  const t0 = performance.now();
  const load = await runFillWrk({
    url: leader.url,
    connections: fillConnections,
    eventsPerRequest: fillEventsPerRequest,
    eventBytes,
    streams: fillStreams,
    orderEvery,
    orderStreams,
    requests,
  });
  const seconds = (performance.now() - t0) / 1000;
  const events = (await lastPosition(cluster)) + 1 - have;
  res.fill = { events, seconds, load };
  log(`  ${int(events)} events in ${seconds.toFixed(1)} s (${int(events / seconds)}/s) ${wrkProblems(load)}`);
  log('waiting until every node applied everything');
  await cluster.waitCaughtUp(catchUpTimeoutMs);
}

/**
 * Starts a projector and follows it until every enabled sink's position reaches `head`. `keep`: leave it
 * running (the caller stops it).
 */
async function catchUpRun(
  cluster: ClusterHarness,
  dir: string,
  name: string,
  env: Record<string, string>,
  sinks: SinkName[],
  batch: number,
  head: number,
): Promise<{ run: ProjectorRun; proc: ProjectorProc }> {
  log(`projector ${name}: sinks ${sinks.join('+')}, batch ${batch}, from position 0 to ${int(head)}`);
  const p = await ProjectorProc.start(name, dir, {
    ...env,
    EVENT_STORE_URLS: cluster
      .all()
      .map((n) => n.url)
      .join(','),
    PROJECTOR_SINKS: sinks.join(','),
    PROJECTOR_BATCH_EVENTS: String(batch),
    ...(process.env.PROJECTOR_LINGER_MS ? { PROJECTOR_LINGER_MS: process.env.PROJECTOR_LINGER_MS } : {}),
  });
  const cpu = new CpuMeter(cluster, p.proc.pid).start();
  const readyMs = await p.waitReady();
  const rssReady = rssMiB(p.proc.pid);
  let rssMax = rssReady;
  const caughtMs: Partial<Record<SinkName, number>> = {};
  const troubles: string[] = [];
  let pauses = 0;
  const wasRunning: Partial<Record<SinkName, boolean>> = {};
  let lastProgress = '';
  let lastLog = performance.now();
  let lastMove = performance.now();
  let lastPositions = '';
  await waitFor(
    `projector ${name} to reach position ${head} on ${sinks.join(', ')}`,
    async () => {
      if (p.proc.exited) throw new Error(`bench: projector ${name} exited:\n${p.tail()}`);
      const s = await p.status();
      const now = performance.now();
      rssMax = Math.max(rssMax, rssMiB(p.proc.pid));
      for (const sink of sinks) {
        const st = s.sinks[sink];
        if (st.state !== 'running' && wasRunning[sink]) pauses++;
        wasRunning[sink] = st.state === 'running';
        if (st.state !== 'running') {
          const note = `${sink} ${st.state}${st.error ? `: ${st.error}` : ''}`;
          if (!troubles.includes(note) && troubles.length < 5) {
            troubles.push(note);
            log(`  ${note}`);
          }
          if (st.state === 'stopped') throw new Error(`bench: projector ${name}: ${note}`);
        }
        if (caughtMs[sink] === undefined && st.position >= head) caughtMs[sink] = now - p.startedAt;
      }
      const positions = sinks.map((k) => s.sinks[k].position).join(',');
      if (positions !== lastPositions) lastMove = now;
      lastPositions = positions;
      if (now - lastMove > stallMs)
        throw new Error(
          `bench: projector ${name} made no progress for ${stallMs / 1000} s at ${positions} (${troubles.join('; ') || 'no error shown'})`,
        );
      if (now - lastLog > 10_000) {
        lastLog = now;
        const progress = sinks.map((k) => `${k} ${int(s.sinks[k].position)}`).join(', ');
        if (progress !== lastProgress)
          log(
            `  ${progress} (${((now - p.startedAt) / 1000).toFixed(0)} s, RSS ${rssMiB(p.proc.pid).toFixed(0)} MiB)`,
          );
        lastProgress = progress;
      }
      return sinks.every((k) => caughtMs[k] !== undefined);
    },
    { timeoutMs: catchUpTimeoutMs, intervalMs: statusPollMs, backoff: false },
  );
  const cores = cpu.cores();
  const run: ProjectorRun = {
    name,
    batch,
    sinks,
    events: head + 1,
    readyMs,
    caughtMs,
    rssReady,
    rssEnd: rssMiB(p.proc.pid),
    rssMax,
    cores,
    metrics: await p.batchMetrics().catch(() => ({})),
    troubles,
    pauses,
  };
  for (const sink of sinks) {
    const m = run.metrics[sink];
    log(
      `  ${sink}: ${int(run.events / (caughtMs[sink]! / 1000))} events/s (${(caughtMs[sink]! / 1000).toFixed(1)} s from spawn, ready after ${ms(readyMs, 0)})` +
        (m
          ? `; ${int(m.batches)} batches, mean ${int(m.events / m.batches)} events, ${ms((m.seconds / m.batches) * 1000, 1)} per write, writes ${pct(m.seconds / (caughtMs[sink]! / 1000))} of the time`
          : ''),
    );
  }
  log(
    `  RSS ${rssReady.toFixed(0)} → ${run.rssEnd.toFixed(0)} MiB (max ${rssMax.toFixed(0)}); cores: projector ${cores.projector.toFixed(2)}, nodes ${cores.nodes.toFixed(2)}, postgres ${cores.postgres.toFixed(2)}, kafka ${cores.kafka.toFixed(2)}`,
  );
  return { run, proc: p };
}

/** Real events of the cluster (the first page of `$all`), as templates of the Kafka ceiling's records. */
async function templateEvents(cluster: ClusterHarness): Promise<EventEnvelope[]> {
  const client = new EventStoreClient({ urls: cluster.all().map((n) => n.url) });
  try {
    const page = await client.readAll({ from: 0, limit: 1000 });
    return page.events;
  } finally {
    client.close();
  }
}

class Cleanup {
  databases: string[] = [];
  topics: string[] = [];
  projectors: ProjectorProc[] = [];
  broker: BenchBroker | null = null;

  async run(): Promise<void> {
    for (const p of this.projectors) await p.stop().catch(() => undefined);
    // the projectors' logs outlive the data: .bench-tmp/logs-projector/ (replacing the previous run's)
    const logs = path.join(repoRoot, '.bench-tmp', 'logs-projector');
    fs.rmSync(logs, { recursive: true, force: true });
    fs.mkdirSync(logs, { recursive: true });
    for (const p of this.projectors)
      if (fs.existsSync(p.logFile)) fs.copyFileSync(p.logFile, path.join(logs, path.basename(p.logFile)));
    for (const db of this.databases)
      await dropDatabase(db).catch((err: Error) => log(`could not drop database ${db}: ${err.message}`));
    if (this.broker) this.broker.stop();
    else
      await deleteKafkaTopics(kafkaBrokers, this.topics).catch((err: Error) =>
        log(`could not delete topics ${this.topics.join(', ')}: ${err.message}`),
      );
  }
}

async function postgresPhase(
  cluster: ClusterHarness,
  dir: string,
  res: Results,
  clean: Cleanup,
): Promise<void> {
  const db = await createDatabase();
  clean.databases.push(db);
  const url = `${pgBase}/${db}`;
  const { run, proc } = await catchUpRun(
    cluster,
    dir,
    'pg',
    { DATABASE_URL: url },
    ['postgres'],
    batchEvents,
    res.head,
  );
  clean.projectors.push(proc);
  await proc.stop();
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    const count = async (t: string) =>
      Number((await c.query(`SELECT count(*) AS n FROM projector.${t}`)).rows[0].n);
    run.rows = { streamSummaries: await count('stream_summaries'), orders: await count('orders') };
    log(
      `  read models: ${int(run.rows.streamSummaries)} stream_summaries rows, ${int(run.rows.orders)} orders rows`,
    );
  } finally {
    await c.end();
  }
  log(
    `postgres ceiling: ${int(res.head + 1)} rows by plain multi-row INSERTs, ${batchEvents} per transaction`,
  );
  const ceiling = await postgresInsertCeiling(url, res.head + 1, batchEvents);
  log(
    `  ${int(ceiling.perS)} rows/s (${ceiling.seconds.toFixed(1)} s, ${ceiling.transactions} transactions)`,
  );
  res.pg = { run, ceiling };
}

async function kafkaPhase(
  cluster: ClusterHarness,
  dir: string,
  res: Results,
  clean: Cleanup,
  batch: number,
  templates: EventEnvelope[],
): Promise<void> {
  const topic = `bench-${randomBytes(4).toString('hex')}`;
  clean.topics.push(topic, `${topic}-checkpoints`);
  const entry: Results['kafka'][number] = { run: null, ceiling: null };
  res.kafka.push(entry);
  try {
    const { run, proc } = await catchUpRun(
      cluster,
      dir,
      `kafka-${batch}`,
      {
        KAFKA_BROKERS: kafkaBrokers.join(','),
        KAFKA_TOPIC: topic,
        KAFKA_PARTITIONS: String(kafkaPartitions),
      },
      ['kafka'],
      batch,
      res.head,
    );
    clean.projectors.push(proc);
    await proc.stop();
    entry.run = run;
  } catch (err) {
    entry.error = (err as Error).message.split('\n')[0];
    log(`  kafka projector with batch ${batch} failed: ${(err as Error).message}`);
    const p = clean.projectors.find((x) => x.name === `kafka-${batch}`);
    if (p) {
      log(p.tail(15));
      await p.stop();
    }
  }
  const ceilTopic = `bench-ceiling-${randomBytes(4).toString('hex')}`;
  clean.topics.push(ceilTopic, `${ceilTopic}-checkpoints`);
  log(
    `kafka ceiling: ${int(res.head + 1)} records by kafkajs alone, ${batch} per transaction, ${kafkaPartitions} partitions`,
  );
  try {
    entry.ceiling = await kafkaTransactionCeiling({
      brokers: kafkaBrokers,
      topic: ceilTopic,
      partitions: kafkaPartitions,
      records: res.head + 1,
      perTransaction: batch,
      templates,
    });
    log(
      `  ${int(entry.ceiling.perS)} records/s (${entry.ceiling.seconds.toFixed(1)} s, ${entry.ceiling.transactions} transactions, values ~${int(entry.ceiling.valueBytes)} B)`,
    );
  } catch (err) {
    log(`  kafka ceiling with ${batch} per transaction failed: ${(err as Error).message}`);
    const type = (err as { type?: string }).type;
    entry.ceilingError = `${type ? `[${type}] ` : ''}${(err as Error).message.split('\n')[0]}`;
  }
  // the topics hold ~2 × events × ~500 B: delete them at once (the broker's disk)
  await deleteKafkaTopics(kafkaBrokers, [
    topic,
    `${topic}-checkpoints`,
    ceilTopic,
    `${ceilTopic}-checkpoints`,
  ]).catch(() => undefined);
}

/** Polls the stream_summaries checkpoint every `checkpointPollMs`; `visibleAt(position)` answers from the polls. */
class CheckpointPoller {
  /** (time of the answer, checkpoint) of every poll whose checkpoint moved. */
  private readonly moves: { t: number; position: number }[] = [];
  polls = 0;
  private stopped = false;
  private done: Promise<void> = Promise.resolve();

  constructor(private readonly url: string) {}

  async start(): Promise<void> {
    const c = new Client({ connectionString: this.url });
    await c.connect();
    const q = `SELECT position FROM projector.checkpoints WHERE name = 'stream_summaries'`;
    this.done = (async () => {
      let last = -2;
      try {
        while (!this.stopped) {
          const t0 = performance.now();
          const r = await c.query(q);
          const t = performance.now();
          this.polls++;
          const position = Number(r.rows[0]?.position ?? -1);
          if (position !== last) this.moves.push({ t, position });
          last = position;
          await sleep(Math.max(0, checkpointPollMs - (t - t0)));
        }
      } finally {
        await c.end();
      }
    })();
  }

  /** The first poll that saw the checkpoint at or past `position` (null: not yet). */
  visibleAt(position: number): number | null {
    let lo = 0;
    let hi = this.moves.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.moves[mid].position >= position) hi = mid;
      else lo = mid + 1;
    }
    return lo < this.moves.length ? this.moves[lo].t : null;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

/** A read_committed kafkajs consumer noting when each probe record arrives. */
class ProbeConsumer {
  readonly seen = new Map<number, number>();
  private readonly kafka = new Kafka({
    clientId: 'bench-lag',
    brokers: kafkaBrokers,
    logLevel: logLevel.NOTHING,
  });
  private readonly consumer = this.kafka.consumer({
    groupId: `bench-lag-${randomBytes(4).toString('hex')}`,
    readUncommitted: false,
    maxWaitTimeInMs: 50,
    minBytes: 1,
  });

  async start(topic: string): Promise<void> {
    await this.consumer.connect();
    await this.consumer.subscribe({ topic, fromBeginning: false });
    await this.consumer.run({
      eachBatch: async ({ batch }) => {
        const t = performance.now();
        for (const m of batch.messages) {
          if (!m.key || !m.key.toString().startsWith('probe-')) continue;
          const pos = Number(m.headers?.position?.toString());
          if (!this.seen.has(pos)) this.seen.set(pos, t);
        }
      },
    });
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect().catch(() => undefined);
  }
}

async function bothAndLag(cluster: ClusterHarness, dir: string, res: Results, clean: Cleanup): Promise<void> {
  const db = await createDatabase();
  clean.databases.push(db);
  const topic = `bench-${randomBytes(4).toString('hex')}`;
  clean.topics.push(topic, `${topic}-checkpoints`);
  const url = `${pgBase}/${db}`;
  const { run, proc } = await catchUpRun(
    cluster,
    dir,
    'both',
    {
      DATABASE_URL: url,
      KAFKA_BROKERS: kafkaBrokers.join(','),
      KAFKA_TOPIC: topic,
      KAFKA_PARTITIONS: String(kafkaPartitions),
    },
    ['postgres', 'kafka'],
    batchEvents,
    res.head,
  );
  clean.projectors.push(proc);
  res.both = run;
  if (!only.has('lag')) {
    await proc.stop();
    return;
  }

  const leader = await cluster.waitForLeader();
  const requestsPerS = lagRate / lagEventsPerRequest;
  log(
    `end-to-end lag: ${lagSeconds} s at ${int(lagRate)} events/s (${requestsPerS} requests/s × ${lagEventsPerRequest}) + ${probesPerS} probes/s`,
  );
  const poller = new CheckpointPoller(url);
  const consumer = new ProbeConsumer();
  await poller.start();
  await consumer.start(topic);
  const load = new RateLoad({
    url: leader.url,
    requestsPerS,
    eventsPerRequest: lagEventsPerRequest,
    eventBytes,
    streams: 1000,
    orderEvery,
    probesPerS,
    durationS: lagSeconds,
  });
  // the consumer group joins and resets to the end: probe until one probe is seen in both sinks
  await waitFor(
    'a warm-up probe visible in Kafka and Postgres',
    async () => {
      const p = await load.probe();
      await sleep(200);
      return p !== null && consumer.seen.has(p.position) && poller.visibleAt(p.position) !== null;
    },
    { timeoutMs: 60_000, intervalMs: 100, backoff: false },
  );
  const cpu = new CpuMeter(cluster, proc.proc.pid).start();
  const result = await load.runFor();
  const cores = cpu.cores();
  const probes = result.probes;
  const lastProbe = Math.max(...probes.map((p) => p.position));
  await waitFor(
    'every probe visible in both sinks',
    async () => probes.every((p) => consumer.seen.has(p.position)) && poller.visibleAt(lastProbe) !== null,
    { timeoutMs: visibleTimeoutMs, intervalMs: 100, backoff: false },
  ).catch((err: Error) => log(`  ${err.message}`));
  await poller.stop();
  await consumer.stop();
  const pgLags: number[] = [];
  const kLags: number[] = [];
  let missingPostgres = 0;
  let missingKafka = 0;
  for (const p of probes as Probe[]) {
    const v = poller.visibleAt(p.position);
    if (v === null) missingPostgres++;
    else pgLags.push(v - p.ackAt);
    const k = consumer.seen.get(p.position);
    if (k === undefined) missingKafka++;
    else kLags.push(k - p.ackAt);
  }
  res.lag = {
    load: result,
    postgres: pgLags,
    kafka: kLags,
    missingPostgres,
    missingKafka,
    probes: probes.length,
    checkpointPolls: poller.polls,
    cores,
    rssEnd: rssMiB(proc.proc.pid),
  };
  const achieved = (result.eventsOk + probes.length) / result.seconds;
  log(
    `  achieved ${int(achieved)} events/s (${result.requestsOk} requests ok, ${result.requestsFailed} failed, ${result.late} late; ack p50 ${ms(result.ackP50Ms)} p99 ${ms(result.ackP99Ms)})`,
  );
  log(
    `  postgres lag p50 ${ms(percentile(pgLags, 50))} p99 ${ms(percentile(pgLags, 99))} max ${ms(Math.max(...pgLags))}; ` +
      `kafka lag p50 ${ms(percentile(kLags, 50))} p99 ${ms(percentile(kLags, 99))} max ${ms(Math.max(...kLags))}; ${probes.length} probes`,
  );
  await proc.stop();
}

async function main(): Promise<void> {
  const wrkVersion = requireWrk();
  const dir = benchDir('projector');
  const res: Results = { head: -1, kafka: [], loadBefore: os.loadavg()[0], loadAfter: NaN };
  const clean = new Cleanup();
  const needKafka = ['kafka', 'batches', 'both', 'lag'].some((x) => only.has(x));
  if (needKafka && !givenBrokers) {
    log('starting a Kafka broker of this bench (scripts/kafka.sh on free ports, data under .bench-tmp)');
    clean.broker = await BenchBroker.start(dir);
    kafkaBrokers = clean.broker.brokers;
    brokerPid = clean.broker.pid;
    log(`  broker ${kafkaBrokers.join(',')} (pid ${brokerPid})`);
  }
  log('starting a 3-node cluster');
  const cluster = await startBenchCluster('projector-cluster', 3).catch(async (err: Error) => {
    await clean.run();
    throw err;
  });
  let failure: Error | null = null;
  try {
    await fill(cluster, res);
    res.head = await lastPosition(cluster);
    log(`the cluster holds ${int(res.head + 1)} events (last position ${res.head})`);
    if (only.has('postgres')) await postgresPhase(cluster, dir, res, clean);
    const templates = only.has('kafka') || only.has('batches') ? await templateEvents(cluster) : [];
    if (templates.length > 0) {
      // a fresh broker JVM is cold: the first run on it would be slower than the ones after it
      const records = Math.min(200_000, res.head + 1);
      const topic = `bench-warmup-${randomBytes(4).toString('hex')}`;
      log(`warming the broker up: ${int(records)} records in transactions of ${batchEvents} (not reported)`);
      const w = await kafkaTransactionCeiling({
        brokers: kafkaBrokers,
        topic,
        partitions: kafkaPartitions,
        records,
        perTransaction: batchEvents,
        templates,
      });
      log(`  ${int(w.perS)} records/s`);
      await deleteKafkaTopics(kafkaBrokers, [topic, `${topic}-checkpoints`]).catch(() => undefined);
    }
    if (only.has('kafka')) await kafkaPhase(cluster, dir, res, clean, batchEvents, templates);
    if (only.has('batches'))
      for (const b of kafkaBatches) await kafkaPhase(cluster, dir, res, clean, b, templates);
    if (only.has('both') || only.has('lag')) await bothAndLag(cluster, dir, res, clean);
  } catch (err) {
    failure = err as Error;
    process.stderr.write(
      `bench: stage failed: ${failure.stack ?? failure.message}\n${clean.projectors.map((p) => p.tail(20)).join('\n')}\n`,
    );
  } finally {
    res.loadAfter = os.loadavg()[0];
    await clean.run();
    await stopBenchCluster(cluster);
  }
  printReport(wrkVersion, dir, res);
  if (failure) throw failure;
}

function met(ok: boolean): string {
  return ok ? 'yes' : 'NO';
}

function rss(r: ProjectorRun): string {
  return `${r.rssReady.toFixed(0)} / ${r.rssEnd.toFixed(0)} / ${r.rssMax.toFixed(0)}`;
}

function cores(c: ProjectorRun['cores'], sinks: SinkName[]): string {
  const parts = [c.projector.toFixed(2), c.nodes.toFixed(2)];
  parts.push(sinks.includes('postgres') ? c.postgres.toFixed(2) : '-');
  parts.push(sinks.includes('kafka') ? c.kafka.toFixed(2) : '-');
  return parts.join(' / ');
}

function writes(r: ProjectorRun, sink: SinkName): string {
  const m = r.metrics[sink];
  const s = r.caughtMs[sink]! / 1000;
  if (!m || !m.batches) return '';
  const paused = r.pauses > 0 ? `; PAUSED ${r.pauses}x: ${shortError(r.troubles)}` : '';
  return `${int(m.batches)} x ${int(m.events / m.batches)} ev, ${ms((m.seconds / m.batches) * 1000, 1)}/write, ${pct(m.seconds / s)} of time${paused}`;
}

/** The Kafka error code (e.g. MESSAGE_TOO_LARGE) or the first words of the first trouble seen. */
function shortError(troubles: string[]): string {
  const t = troubles[0] ?? '';
  return /\[([A-Z_]+)\]/.exec(t)?.[1] ?? t.slice(0, 60);
}

function printReport(wrkVersion: string, dir: string, res: Results): void {
  const header = [
    'measurement',
    'batch',
    'figure',
    'ceiling (same run)',
    'vs ceiling',
    'target',
    'met',
    'time (ready)',
    'RSS MiB ready/end/max',
    'cores proj/nodes/pg/kafka',
    'sink writes (n x size, mean, share)',
  ];
  const rows: string[][] = [];
  const perS = (r: ProjectorRun, sink: SinkName) => r.events / (r.caughtMs[sink]! / 1000);
  const time = (r: ProjectorRun, sink: SinkName) =>
    `${(r.caughtMs[sink]! / 1000).toFixed(1)} s (${(r.readyMs / 1000).toFixed(1)} s)`;
  if (res.fill) {
    const f = res.fill;
    rows.push([
      `fill: ${fillEventsPerRequest}-event batches, ${fillConnections} conn (wrk)`,
      '',
      `${int(f.events / f.seconds)} ev/s`,
      '',
      '',
      '',
      '',
      `${f.seconds.toFixed(1)} s`,
      '',
      '',
      wrkProblems(f.load) || 'no errors',
    ]);
  }
  if (res.pg) {
    const { run, ceiling } = res.pg;
    const v = perS(run, 'postgres');
    rows.push([
      `postgres alone, ${int(run.events)} events from 0`,
      String(run.batch),
      `${int(v)} ev/s`,
      `${int(ceiling.perS)} rows/s, ${ceiling.clientCores.toFixed(2)} cores`,
      pct(v / ceiling.perS),
      `>= ${int(target.postgresPerS)}/s, >= ${pct(target.ofCeiling)}`,
      met(v >= target.postgresPerS && v / ceiling.perS >= target.ofCeiling),
      time(run, 'postgres'),
      rss(run),
      cores(run.cores, run.sinks),
      writes(run, 'postgres') +
        (run.rows
          ? `; rows: ${int(run.rows.streamSummaries)} summaries, ${int(run.rows.orders)} orders`
          : ''),
    ]);
  }
  for (const k of res.kafka) {
    const run = k.run;
    const batch = run?.batch ?? NaN;
    if (!run) {
      rows.push([
        'kafka alone',
        '',
        'FAILED',
        k.ceiling ? `${int(k.ceiling.perS)} rec/s` : '-',
        '-',
        `>= ${int(target.kafkaPerS)}/s, >= ${pct(target.ofCeiling)}`,
        'NO',
        '',
        '',
        '',
        k.error ?? '',
      ]);
      continue;
    }
    const v = perS(run, 'kafka');
    const c = k.ceiling?.perS ?? NaN;
    rows.push([
      `kafka alone, ${int(run.events)} events from 0`,
      String(batch),
      `${int(v)} ev/s`,
      k.ceiling
        ? `${int(c)} rec/s, ${k.ceiling.clientCores.toFixed(2)} cores`
        : `FAILED: ${shortError([k.ceilingError ?? ''])}`,
      pct(v / c),
      `>= ${int(target.kafkaPerS)}/s, >= ${pct(target.ofCeiling)}`,
      met(v >= target.kafkaPerS && v / c >= target.ofCeiling),
      time(run, 'kafka'),
      rss(run),
      cores(run.cores, run.sinks),
      writes(run, 'kafka'),
    ]);
  }
  if (res.both) {
    const run = res.both;
    for (const sink of ['postgres', 'kafka'] as SinkName[]) {
      const v = perS(run, sink);
      const ceiling =
        sink === 'postgres'
          ? res.pg?.ceiling.perS
          : res.kafka.find((k) => k.run?.batch === run.batch)?.ceiling?.perS;
      rows.push([
        `both sinks, one projector: ${sink}`,
        String(run.batch),
        `${int(v)} ev/s`,
        ceiling ? `${int(ceiling)} /s (alone)` : '',
        ceiling ? pct(v / ceiling) : '',
        '',
        '',
        time(run, sink),
        sink === 'postgres' ? rss(run) : '',
        sink === 'postgres' ? cores(run.cores, run.sinks) : '',
        writes(run, sink),
      ]);
    }
  }
  if (res.lag) {
    const l = res.lag;
    const achieved = (l.load.eventsOk + l.probes) / l.load.seconds;
    const c = l.cores;
    for (const [sink, lags, missing] of [
      ['postgres', l.postgres, l.missingPostgres],
      ['kafka', l.kafka, l.missingKafka],
    ] as [SinkName, number[], number][]) {
      const p99 = percentile(lags, 99);
      rows.push([
        `e2e lag ${sink} @ ${int(lagRate)} ev/s offered, ${lagSeconds} s`,
        String(batchEvents),
        `p50 ${ms(percentile(lags, 50))}, p99 ${ms(p99)}, max ${ms(Math.max(...lags))}`,
        `achieved ${int(achieved)} ev/s`,
        '',
        `p99 <= ${target.lagP99Ms} ms`,
        met(p99 <= target.lagP99Ms && missing === 0),
        '',
        sink === 'postgres' ? `- / ${l.rssEnd.toFixed(0)} / -` : '',
        sink === 'postgres'
          ? `${c.projector.toFixed(2)} / ${c.nodes.toFixed(2)} / ${c.postgres.toFixed(2)} / ${c.kafka.toFixed(2)}`
          : '',
        `${lags.length} probes${missing ? `, ${missing} NOT VISIBLE` : ''}` +
          (sink === 'postgres'
            ? `; append ack p50 ${ms(l.load.ackP50Ms)} p99 ${ms(l.load.ackP99Ms)}, ${l.load.requestsFailed} failed, ${l.load.late} late`
            : ''),
      ]);
    }
  }
  const envs = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_') || k.startsWith('PROJECTOR_'))
    .map(([k, v]) => `${k}=${v}`);
  process.stdout.write(
    `\nbench:projector — projector from position 0 on a 3-node cluster; ${wrkVersion}; data under ${path.relative(repoRoot, dir)}\n` +
      `command: ${[...envs, 'npm run bench:projector'].join(' ')}\n` +
      `PROJECTOR_BATCH_EVENTS ${batchEvents} (extra Kafka rows: ${kafkaBatches.join(', ') || 'none'}), PROJECTOR_LINGER_MS ${process.env.PROJECTOR_LINGER_MS ?? 'default (5)'}, ` +
      `${kafkaPartitions} partitions; events ~${eventBytes} B in ${fillEventsPerRequest}-event appends over ${fillStreams} bench-<n> + ${orderStreams} order-<n> streams\n` +
      `time = spawn → /status position == last position (polled every ${statusPollMs} ms), (spawn → /ready); cores = CPU over that time ` +
      `(projector / the 3 nodes / all postgres processes / the broker JVM)\n` +
      `ceilings: postgres = pg multi-row INSERT (unnest) of one 8-column row per event + 1 checkpoint UPDATE per transaction of <batch> rows; ` +
      `kafka = kafkajs alone, the same records (key, envelope value, 5 headers) + 1 checkpoint record per transaction of <batch>; ` +
      `ceiling cores = CPU of the client (this process) during it\n` +
      `kafka broker: ${givenBrokers ? givenBrokers.join(',') : "the bench's own (scripts/kafka.sh, free port)"}; load average (1 min) ${res.loadBefore.toFixed(2)} before, ${res.loadAfter.toFixed(2)} after\n` +
      `lag = probe visible (postgres: stream_summaries checkpoint polled every ${checkpointPollMs} ms; kafka: read_committed consumer) − probe append acknowledged\n\n`,
  );
  process.stdout.write(table(header, rows) + '\n');
}

runBench('bench:projector', main);
