/**
 * `npm run bench:soak`: sustained single-event appends (~200 B, 1,000 streams) against a real 3-process
 * cluster with the default settings (snapshot policy included), in rows long enough that cuts, segment
 * rotation and compaction happen inside them. `npm run bench` keeps its 10-second windows; this one is about
 * what a user running the store for an hour sees.
 *
 * Per row (a number of keep-alive connections):
 *  - the trivial node:http server driven by the same wrk and script at the same concurrency (the ceiling);
 *  - the cluster: wrk with bench/soak.lua, which gives a per-second timeline (answers, p50/p99/max) besides
 *    wrk's own distribution over the row (p50/p99/p99.9/max);
 *  - every second, each node's GET /cluster (leader, term, snapshot index): cuts and leader changes in the
 *    timeline;
 *  - before and after, each node's GET /metrics: cuts taken and their parts (raft_snapshot_stage_seconds),
 *    the leader's append stages (eventstore_append_stage_seconds, raft_proposal_stage_seconds) over the row,
 *    and each node's longest event-loop delay (nodejs_eventloop_lag_max_seconds, reset by each scrape).
 *
 * Environment: SOAK_SECONDS (60: each row), SOAK_CONNECTIONS (1,32,256), SOAK_ONE_CONNECTION_SECONDS (20),
 * SOAK_CEILING_SECONDS (20: the trivial server's rows), SOAK_TIMELINE=0 (no per-second lines),
 * BENCH_CPU_PROF=1, BENCH_KEEP_DATA=1, and node tunables passed through (TICK_MS, ELECTION_TICKS,
 * SNAPSHOT_EVERY_ENTRIES, …).
 */
import * as path from 'node:path';
import { fsyncCeiling } from './support/fsync';
import { getJson } from './support/http';
import { coresNote, loadCluster, LoadResult } from './support/load';
import {
  benchDir,
  ClusterHarness,
  cpuSeconds,
  filesystemOf,
  repoRoot,
  startBenchCluster,
  stopBenchCluster,
  nodeEnvFromProcess,
} from './support/bench-run';
import { envInt, int, log, ms, ratio, runBench, table } from './support/report';
import { CeilingServer, requireWrk, runWrk, WrkResult, WrkRun, wrkProblems } from './support/wrk';

const rowSeconds = envInt('SOAK_SECONDS', 60);
const oneConnectionSeconds = envInt('SOAK_ONE_CONNECTION_SECONDS', 20);
const ceilingSeconds = envInt('SOAK_CEILING_SECONDS', 20);
const printTimeline = process.env.SOAK_TIMELINE !== '0';
/**
 * SOAK_WATCH_METRICS=1: every node's /metrics each second too (loop delay, merges, GC per second in the
 * timeline). Diagnostic: the scrapes cost the nodes a little, and each resets the loop-delay maximum, so the
 * row's "loop max" is then the largest per-second one.
 */
const watchMetrics = process.env.SOAK_WATCH_METRICS === '1';
const connections = (process.env.SOAK_CONNECTIONS ?? '1,32,256').split(',').map((c) => {
  const n = Number(c);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`bench: SOAK_CONNECTIONS must be positive integers joined by commas, got ${c}\n`);
    process.exit(2);
  }
  return n;
});
const soakLua = path.join(repoRoot, 'bench', 'soak.lua');
const eventBytes = 200;
const streams = 1000;
const warmupS = 5;
const pollMs = 1000;
const appendStages = ['http', 'batch', 'commit', 'answer', 'total'];
const raftStages = ['persist', 'quorum', 'apply'];
const snapshotStages = ['capture_sync', 'capture', 'write', 'compact'];

// ---------------------------------------------------------------------------------------------------------
// Prometheus text: the few series this benchmark reads.

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of every series of `name` (all label sets). */
function samples(all: Sample[], name: string): number {
  return all.filter((x) => x.name === name).reduce((n, x) => n + x.value, 0);
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const s = samples.find(
    (x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  return s ? s.value : NaN;
}

/** A histogram's cumulative buckets (le → count) for one label set, `after` minus `before`. */
function bucketDelta(
  before: Sample[],
  after: Sample[],
  name: string,
  labels: Record<string, string>,
): { le: number; count: number }[] {
  const pick = (samples: Sample[]) =>
    samples.filter(
      (s) => s.name === `${name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
  const old = new Map(pick(before).map((s) => [s.labels.le, s.value]));
  return pick(after)
    .map((s) => ({
      le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le),
      count: s.value - (old.get(s.labels.le) ?? 0),
    }))
    .sort((a, b) => a.le - b.le);
}

/** The upper bound (seconds) of the bucket holding quantile q; NaN when empty. */
function quantile(buckets: { le: number; count: number }[], q: number): number {
  const total = buckets.length > 0 ? buckets[buckets.length - 1].count : 0;
  if (total <= 0) return NaN;
  const want = Math.max(1, Math.ceil(q * total));
  for (const b of buckets) if (b.count >= want) return b.le;
  return Infinity;
}

function bucketMs(seconds: number): string {
  if (Number.isNaN(seconds)) return '-';
  if (seconds === Infinity) return '> 2.5 s';
  const v = seconds * 1000;
  return `≤ ${v < 1 ? v.toFixed(2) : v.toFixed(v < 10 ? 1 : 0)} ms`;
}

async function scrape(cluster: ClusterHarness): Promise<Record<string, Sample[]>> {
  const out: Record<string, Sample[]> = {};
  for (const n of cluster.running()) {
    const r = await getJson(`${n.url}/metrics`, 30_000);
    out[n.id] = parseMetrics(String(r.body));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// What the nodes say every second during a row.

interface ClusterSample {
  atMs: number;
  /** Per node: leader it knows, term, snapshot index; null when it did not answer. */
  nodes: Record<string, { leaderId: string | null; term: number; snapshotIndex: number } | null>;
  /** SOAK_WATCH_METRICS=1: per node, the longest event-loop delay since the previous sample (ms), merges and GC so far. */
  metrics?: Record<string, { loopMaxMs: number; merges: number; gcMs: number }>;
}

class ClusterWatch {
  readonly samples: ClusterSample[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly cluster: ClusterHarness,
    private readonly t0: number,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    // Bounded: the row's own length plus slack, whatever happens.
    const maxSamples = Math.ceil((rowSeconds * 1000) / pollMs) * 2 + 60;
    while (this.running && this.samples.length < maxSamples) {
      const started = performance.now();
      const nodes: ClusterSample['nodes'] = {};
      await Promise.all(
        this.cluster.running().map(async (n) => {
          try {
            const r = await getJson(`${n.url}/cluster`, 2000);
            const b = r.body as { leaderId: string | null; term: number; snapshot: { index: number } };
            nodes[n.id] =
              r.status === 200
                ? { leaderId: b.leaderId, term: b.term, snapshotIndex: b.snapshot.index }
                : null;
          } catch {
            nodes[n.id] = null;
          }
        }),
      );
      const sample: ClusterSample = { atMs: started - this.t0, nodes };
      if (watchMetrics) {
        sample.metrics = {};
        for (const [id, m] of Object.entries(await scrape(this.cluster)))
          sample.metrics[id] = {
            loopMaxMs: value(m, 'nodejs_eventloop_lag_max_seconds') * 1000,
            merges: value(m, 'eventstore_merge_thread_jobs_total'),
            gcMs: samples(m, 'nodejs_gc_duration_seconds_sum') * 1000,
          };
      }
      this.samples.push(sample);
      const wait = pollMs - (performance.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }

  async stop(): Promise<ClusterSample[]> {
    this.running = false;
    await this.loop;
    return this.samples;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Rows

interface Row {
  connections: number;
  seconds: number;
  ceiling: WrkResult;
  ceilingCores: number;
  cluster: LoadResult;
  watch: ClusterSample[];
  before: Record<string, Sample[]>;
  after: Record<string, Sample[]>;
}

function wrkRun(c: number, durationS: number): Omit<WrkRun, 'url'> {
  return {
    connections: c,
    durationS,
    eventsPerRequest: 1,
    eventBytes,
    streams,
    timeoutS: 30,
    script: soakLua,
  };
}

async function row(cluster: ClusterHarness, ceiling: CeilingServer, c: number): Promise<Row> {
  const seconds = c === 1 ? oneConnectionSeconds : rowSeconds;
  log(`${ceilingSeconds} s at ${c} connection(s) against the trivial server`);
  const cpu0 = cpuSeconds(ceiling.proc.pid);
  const tc = performance.now();
  const ceil = await runWrk({ ...wrkRun(c, ceilingSeconds), url: ceiling.url });
  const ceilingCores = (cpuSeconds(ceiling.proc.pid) - cpu0) / ((performance.now() - tc) / 1000);
  log(
    `  ${int(ceil.okPerS)}/s p50 ${us(ceil.latencyUs.p50)} p99 ${us(ceil.latencyUs.p99)} max ${us(ceil.latencyUs.max)}`,
  );
  log(`${seconds} s at ${c} connection(s) against the cluster`);
  const before = await scrape(cluster);
  const t0 = performance.now();
  const watch = new ClusterWatch(cluster, t0);
  const r = await loadCluster(cluster, wrkRun(c, seconds));
  const samples = await watch.stop();
  const after = await scrape(cluster);
  log(
    `  ${int(r.okPerS)}/s p50 ${us(r.latencyUs.p50)} p99 ${us(r.latencyUs.p99)} max ${us(r.latencyUs.max)} ${wrkProblems(r)}`,
  );
  return { connections: c, seconds, ceiling: ceil, ceilingCores, cluster: r, watch: samples, before, after };
}

function us(v: number): string {
  return ms(v / 1000, v < 10_000 ? 2 : 0);
}

/** Snapshot indexes that moved on some node between consecutive samples: [second, node ids]. */
function cutsBySecond(watch: ClusterSample[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (let i = 1; i < watch.length; i++) {
    for (const [id, s] of Object.entries(watch[i].nodes)) {
      const prev = watch[i - 1].nodes[id];
      if (s && prev && s.snapshotIndex > prev.snapshotIndex) {
        const sec = Math.floor(watch[i].atMs / 1000);
        out.set(sec, [...(out.get(sec) ?? []), id]);
      }
    }
  }
  return out;
}

/** Leaders seen, in order, by any node (changes of the agreed leader or of the term). */
function leaderChanges(row: Row): { changes: number; termsBefore: number; termsAfter: number } {
  const term = (set: Record<string, Sample[]>) =>
    Math.max(...Object.values(set).map((s) => value(s, 'raft_term')));
  let changes = 0;
  let last: string | null = null;
  for (const s of row.watch) {
    const leaders = Object.values(s.nodes)
      .map((n) => n?.leaderId ?? null)
      .filter((x): x is string => x !== null);
    const l = leaders[0] ?? null;
    if (l !== null && last !== null && l !== last) changes++;
    if (l !== null) last = l;
  }
  return { changes, termsBefore: term(row.before), termsAfter: term(row.after) };
}

function snapshotsTaken(row: Row): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of Object.keys(row.after))
    out[id] =
      value(row.after[id], 'raft_snapshot_seconds_count') -
      (value(row.before[id] ?? [], 'raft_snapshot_seconds_count') || 0);
  return out;
}

function loopDelayMaxMs(row: Row): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of Object.keys(row.after)) {
    out[id] = value(row.after[id], 'nodejs_eventloop_lag_max_seconds') * 1000;
    for (const w of row.watch) out[id] = Math.max(out[id], w.metrics?.[id]?.loopMaxMs ?? 0);
  }
  return out;
}

function printRow(row: Row): void {
  const r = row.cluster;
  const cuts = cutsBySecond(row.watch);
  if (printTimeline && r.timeline) {
    const rows = r.timeline.map((t) => {
      const watch = row.watch.find((w) => Math.floor(w.atMs / 1000) === t.s);
      const leader = watch ? (Object.values(watch.nodes).find((n) => n?.leaderId)?.leaderId ?? '?') : '';
      const cells = [
        String(t.s),
        int(t.ok),
        t.other > 0 ? int(t.other) : '',
        us(t.p50),
        us(t.p99),
        us(t.max),
        (cuts.get(t.s) ?? []).join(' '),
        leader,
      ];
      if (watchMetrics) {
        const i = row.watch.findIndex((w) => Math.floor(w.atMs / 1000) === t.s);
        const now = i >= 0 ? row.watch[i].metrics : undefined;
        const prev = i > 0 ? row.watch[i - 1].metrics : undefined;
        const ids = Object.keys(now ?? {}).sort();
        cells.push(
          ids.map((id) => (now![id].loopMaxMs || 0).toFixed(0)).join('/'),
          ids.map((id) => (prev?.[id] ? now![id].merges - prev[id].merges : 0)).join('/'),
          ids.map((id) => (prev?.[id] ? (now![id].gcMs - prev[id].gcMs).toFixed(0) : '-')).join('/'),
        );
      }
      return cells;
    });
    process.stdout.write(
      `\nTimeline at ${row.connections} connection(s) (per second; p50/p99 within 10%, from bench/soak.lua):\n` +
        table(
          [
            's',
            '201/s',
            'other',
            'p50',
            'p99',
            'max',
            'cut on',
            'leader',
            ...(watchMetrics ? ['loop max ms', 'merges', 'gc ms'] : []),
          ],
          rows,
        ) +
        '\n',
    );
  }
  const leader = r.leaderId;
  const b = row.before[leader] ?? [];
  const a = row.after[leader] ?? [];
  const stageRows = [
    ...appendStages.map((s) => [
      'append ' + s,
      bucketDelta(b, a, 'eventstore_append_stage_seconds', { stage: s }),
    ]),
    ...raftStages.map((s) => ['raft ' + s, bucketDelta(b, a, 'raft_proposal_stage_seconds', { stage: s })]),
  ].map(([name, buckets]) => {
    const bk = buckets as { le: number; count: number }[];
    const n = bk.length > 0 ? bk[bk.length - 1].count : 0;
    return [
      name as string,
      int(n),
      bucketMs(quantile(bk, 0.5)),
      bucketMs(quantile(bk, 0.99)),
      bucketMs(quantile(bk, 0.999)),
      bucketMs(quantile(bk, 1)),
    ];
  });
  process.stdout.write(
    `\nStages on the leader (${leader}) over the row, from its histograms (bucket upper bounds):\n` +
      table(['stage', 'count', 'p50', 'p99', 'p99.9', 'max'], stageRows) +
      '\n',
  );
  const snapRows: string[][] = [];
  for (const id of Object.keys(row.after)) {
    for (const s of snapshotStages) {
      const bk = bucketDelta(row.before[id] ?? [], row.after[id], 'raft_snapshot_stage_seconds', {
        stage: s,
      });
      const n = bk.length > 0 ? bk[bk.length - 1].count : 0;
      if (n > 0)
        snapRows.push([`${id} ${s}`, int(n), bucketMs(quantile(bk, 0.5)), bucketMs(quantile(bk, 1))]);
    }
  }
  if (snapRows.length > 0)
    process.stdout.write(
      `\nCuts during the row, by part:\n${table(['node part', 'count', 'p50', 'max'], snapRows)}\n`,
    );
}

function printSummary(rows: Row[], fsyncOps: number, fsyncP50: number): void {
  const out = rows.map((row) => {
    const c = row.ceiling;
    const r = row.cluster;
    const lc = leaderChanges(row);
    const snaps = snapshotsTaken(row);
    const loop = loopDelayMaxMs(row);
    return [
      String(row.connections),
      `${row.seconds} s`,
      `${int(c.okPerS)} / ${int(r.okPerS)}`,
      ratio(r.okPerS, c.okPerS),
      `${us(c.latencyUs.p50)} / ${us(r.latencyUs.p50)}`,
      `${us(c.latencyUs.p99)} / ${us(r.latencyUs.p99)}`,
      ratio(r.latencyUs.p99, c.latencyUs.p99),
      us(r.latencyUs.p999),
      `${us(r.latencyUs.max)} (${ratio(r.latencyUs.max, c.latencyUs.p99)})`,
      Object.values(snaps)
        .map((n) => int(n))
        .join('/'),
      `${lc.changes} (term ${lc.termsBefore}→${lc.termsAfter})`,
      Object.values(loop)
        .map((v) => v.toFixed(0))
        .join('/'),
      coresNote(r),
      wrkProblems(r) || 'none',
    ];
  });
  process.stdout.write(
    `\nSoak (single ~${eventBytes} B appends, ${streams} streams, 3 processes + wrk on this machine; trivial server / cluster; ratios are cluster ÷ trivial server's same figure; max's ratio is to the trivial server's p99):\n` +
      table(
        [
          'conns',
          'row',
          'ok/s',
          'thr ratio',
          'p50',
          'p99',
          'p99 ratio',
          'p99.9',
          'max',
          'cuts n1/n2/n3',
          'leader changes',
          'loop max ms',
          'cores leader/followers',
          'errors',
        ],
        out,
      ) +
      `\nPhysical limit on this disk: serial write+fdatasync of ${eventBytes} B: ${int(fsyncOps)}/s, p50 ${ms(fsyncP50, 3)}.\n`,
  );
  const targets: string[][] = [];
  for (const row of rows) {
    const c = row.ceiling.latencyUs;
    const r = row.cluster.latencyUs;
    if (row.connections === 1) {
      targets.push([
        '1 connection: p50 ≤ 0.5 ms, or ≤ 4× the trivial server p50',
        `${us(r.p50)} (${ratio(r.p50, c.p50)})`,
        r.p50 <= 500 || r.p50 <= 4 * c.p50 ? 'yes' : 'NO',
      ]);
    } else {
      const snaps = Object.values(snapshotsTaken(row)).reduce((x, y) => x + y, 0);
      targets.push(
        [
          `${row.connections} conns: p99 ≤ 2× trivial p99`,
          ratio(r.p99, c.p99),
          r.p99 <= 2 * c.p99 ? 'yes' : 'NO',
        ],
        [
          `${row.connections} conns: max ≤ 10× trivial p99`,
          ratio(r.max, c.p99),
          r.max <= 10 * c.p99 ? 'yes' : 'NO',
        ],
        [
          `${row.connections} conns: throughput ≥ 50% of trivial`,
          ratio(row.cluster.okPerS, row.ceiling.okPerS),
          row.cluster.okPerS >= 0.5 * row.ceiling.okPerS ? 'yes' : 'NO',
        ],
        [`${row.connections} conns: ≥ 1 cut in the row`, int(snaps), snaps >= 1 ? 'yes' : 'NO'],
        [
          `${row.connections} conns: no leader change`,
          String(leaderChanges(row).changes),
          leaderChanges(row).changes === 0 ? 'yes' : 'NO',
        ],
      );
    }
  }
  process.stdout.write(`\nTargets (issue 13):\n${table(['target', 'measured', 'met'], targets)}\n`);
}

async function main(): Promise<void> {
  const wrkVersion = requireWrk();
  const dir = benchDir('soak-ceiling');
  log(`fsync ceiling in ${dir} (${filesystemOf(dir)})`);
  const fsync = fsyncCeiling(dir, eventBytes);
  const ceiling = await CeilingServer.start(dir);
  const env = nodeEnvFromProcess();
  log(
    `starting a 3-node cluster (${Object.keys(env).length > 0 ? JSON.stringify(env) : 'default settings'})`,
  );
  const cluster = await startBenchCluster('soak', 3, env);
  const rows: Row[] = [];
  let failure: Error | null = null;
  try {
    log(`warm-up ${warmupS} s`);
    await loadCluster(cluster, { ...wrkRun(32, warmupS) });
    for (const c of connections) {
      const r = await row(cluster, ceiling, c);
      rows.push(r);
      printRow(r);
    }
  } catch (err) {
    failure = err as Error;
    process.stderr.write(`bench: row failed: ${failure.stack ?? failure.message}\n${cluster.tail(15)}\n`);
  } finally {
    await ceiling.stop();
    await stopBenchCluster(cluster);
  }
  process.stdout.write(`\n${wrkVersion}; data on ${filesystemOf(dir)}\n`);
  printSummary(rows, fsync.appendOpsPerS, fsync.appendP50Ms);
  if (failure) throw failure;
}

runBench('bench:soak', main);
