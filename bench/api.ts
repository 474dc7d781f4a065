/**
 * `npm run bench`: the event store's HTTP API on a real 3-process cluster on this machine, fsync on,
 * keep-alive connections. Prints one table with the targets of the issue next to the figures.
 *
 * Load: Debian's wrk (one thread, C, light) with bench/append.lua building bodies with unique event ids.
 * Ceilings measured in the same run: a trivial node:http server answering 201 at once, driven by the same
 * wrk at the same concurrency (the most any Node HTTP service can do on this box), and serial
 * write+fdatasync of 200 B on the same disk.
 *
 *  1. single-event appends (~200 B) at 1, 32, 256 connections: events/s, p50/p99 (wrk's distribution)
 *  2. 100-event batches at 32 connections: events/s
 *  3. a `$all` subscriber (SSE, on a follower) counting events while the cluster takes 100-event batches
 *  4. fill to BENCH_EVENTS (default 1,000,000) with 1000-event batches
 *  5. catch-up: a `$all` subscription from position 0 on a follower, until the last position
 *  6. replay: POST /projections/streams/reset on a follower, poll GET /projections until running
 *  7. restart-to-ready with the history: kill -9 + restart a follower, the leader, then all three
 *
 * Environment: BENCH_EVENTS (1000000), BENCH_DURATION_S (10), BENCH_FILL_CONNECTIONS (4),
 * BENCH_CPU_PROF=1, BENCH_KEEP_DATA=1, BENCH_ONLY (phases, e.g. `batch` or `singles,batch`), and node tunables passed through (TICK_MS, SNAPSHOT_EVERY_ENTRIES…).
 */
import * as os from 'node:os';
import { fsyncCeiling, FsyncCeiling } from './support/fsync';
import { waitFor } from '@app/consensus/testing';
import { getJson, postJson } from './support/http';
import { coresNote, loadCluster, LoadResult, rssNote } from './support/load';
import {
  benchDir,
  ClusterHarness,
  ClusterNode,
  cpuSeconds,
  filesystemOf,
  sleep,
  startBenchCluster,
  stopBenchCluster,
  nodeEnvFromProcess,
} from './support/bench-run';
import { envInt, int, log, ms, pct, ratio, runBench, table } from './support/report';
import { SseCounter } from './support/sse';
import { CeilingServer, requireWrk, runWrk, WrkResult, WrkRun, wrkProblems } from './support/wrk';

const durationS = envInt('BENCH_DURATION_S', 10);
const totalEvents = envInt('BENCH_EVENTS', 1_000_000);
const fillConnections = envInt('BENCH_FILL_CONNECTIONS', 4);
const concurrencies = (process.env.BENCH_CONCURRENCIES ?? '1,32,256').split(',').map(Number);
const eventBytes = 200;
const streams = 1000;
const batchEvents = 100;
const batchConnections = envInt('BENCH_BATCH_CONNECTIONS', 32);
const fillBatchEvents = 1000;
const warmupS = 3;
const catchUpTimeoutMs = 600_000;
const replayTimeoutMs = 600_000;
const replayPollMs = 20;
const readyTimeoutMs = 300_000;
const settleSamples = 3;
const settlePollMs = 200;
const settleTimeoutMs = 60_000;
/** BENCH_ONLY=singles,batch,subscriber,history: run only these phases (history = fill, catch-up, replay, restarts). */
const only = new Set(
  (process.env.BENCH_ONLY ?? 'singles,batch,subscriber,history').split(',').map((s) => s.trim()),
);

const target = {
  appendsPerS: 20_000,
  appendP99Ms: 50,
  batchEventsPerS: 150_000,
  replayEventsPerS: 300_000,
  restartMs: 3000,
};

interface Pair {
  concurrency: number;
  ceiling: WrkResult;
  /** CPU cores the trivial server used during its run. */
  ceilingCores: number;
  cluster: LoadResult;
}

/** wrk against the trivial server, with the CPU that server used (cores). */
async function ceilingRun(
  ceiling: CeilingServer,
  run: Omit<WrkRun, 'url'>,
): Promise<{ r: WrkResult; cores: number }> {
  const cpu0 = cpuSeconds(ceiling.proc.pid);
  const t0 = performance.now();
  const r = await runWrk({ ...run, url: ceiling.url });
  return { r, cores: (cpuSeconds(ceiling.proc.pid) - cpu0) / ((performance.now() - t0) / 1000) };
}

/** CPU microseconds per answered request: leader vs trivial server (robust to other load on the box). */
function cpuPerRequest(p: Pair): string {
  const leaderUs = (p.cluster.nodeCores[p.cluster.leaderId] / p.cluster.okPerS) * 1e6;
  const trivialUs = (p.ceilingCores / p.ceiling.okPerS) * 1e6;
  return `${int(leaderUs)} / ${int(trivialUs)} us`;
}

interface Subscriber {
  appendedPerS: number;
  deliveredPerS: number;
  lagAfterLoadMs: number;
  expected: number;
  delivered: number;
  firstId: number;
  wantFirstId: number;
  /** Positions skipped between delivered events (a lost event shows here). */
  skipped: number;
  /** Events delivered again or out of order. */
  repeats: number;
  load: LoadResult;
}

interface Restart {
  what: string;
  events: number;
  /** Spawn → GET /health 200 (the process serves HTTP), slowest node. */
  healthMs: number;
  /** Spawn → GET /ready 200, slowest node. */
  readyMs: number;
}

interface Results {
  fsync: FsyncCeiling;
  nodeStartFloorMs: number;
  singles: Pair[];
  batch?: Pair;
  subscriber?: Subscriber;
  fill?: { events: number; seconds: number; load: LoadResult };
  catchUp?: { events: number; seconds: number };
  replay?: { events: number; seconds: number; reportedPerS: number };
  restarts: Restart[];
}

function nodeEnv(): Record<string, string> {
  return nodeEnvFromProcess();
}

async function lastPosition(cluster: ClusterHarness): Promise<number> {
  const leader = await cluster.waitForLeader();
  const r = await getJson(`${leader.url}/streams/$all?direction=backward&limit=1`, 30_000);
  if (r.status !== 200)
    throw new Error(`bench: GET $all on ${leader.id} answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.lastPosition as number;
}

async function follower(cluster: ClusterHarness): Promise<ClusterNode> {
  const leader = await cluster.waitForLeader();
  return cluster.running().find((n) => n.id !== leader.id)!;
}

async function singleAppends(cluster: ClusterHarness, ceiling: CeilingServer, res: Results): Promise<void> {
  for (const c of concurrencies) {
    const run = { connections: c, durationS, eventsPerRequest: 1, eventBytes, streams, timeoutS: 30 };
    log(`${durationS} s single-event appends at ${c} connection(s): trivial server, then the cluster`);
    const { r: ceil, cores } = await ceilingRun(ceiling, run);
    const r = await loadCluster(cluster, run);
    log(
      `  ceiling ${int(ceil.okPerS)}/s; cluster ${int(r.okPerS)}/s p50 ${ms(r.latencyUs.p50 / 1000, 2)} p99 ${ms(r.latencyUs.p99 / 1000, 2)} ${wrkProblems(r)}`,
    );
    res.singles.push({ concurrency: c, ceiling: ceil, ceilingCores: cores, cluster: r });
  }
}

async function batchAppends(cluster: ClusterHarness, ceiling: CeilingServer, res: Results): Promise<void> {
  const run = {
    connections: batchConnections,
    durationS,
    eventsPerRequest: batchEvents,
    eventBytes,
    streams,
    timeoutS: 30,
  };
  log(
    `${durationS} s of ${batchEvents}-event batches at ${batchConnections} connections: trivial server, then the cluster`,
  );
  const { r: ceil, cores } = await ceilingRun(ceiling, run);
  const r = await loadCluster(cluster, run);
  log(
    `  ceiling ${int(ceil.okPerS * batchEvents)} events/s; cluster ${int(r.okPerS * batchEvents)} events/s ${wrkProblems(r)}`,
  );
  res.batch = { concurrency: batchConnections, ceiling: ceil, ceilingCores: cores, cluster: r };
}

/**
 * The last position once it stopped moving: wrk exits with its in-flight requests unanswered, and the
 * cluster still commits them afterwards (32 connections × 100 events), so a position read at once is early.
 */
async function settledLastPosition(cluster: ClusterHarness): Promise<number> {
  let last = await lastPosition(cluster);
  let same = 0;
  await waitFor(
    `the last position to stay put for ${settleSamples} reads ${settlePollMs} ms apart`,
    async () => {
      const p = await lastPosition(cluster);
      same = p === last ? same + 1 : 0;
      last = p;
      return same >= settleSamples;
    },
    { timeoutMs: settleTimeoutMs, intervalMs: settlePollMs, backoff: false },
  );
  return last;
}

async function liveSubscriber(cluster: ClusterHarness, res: Results): Promise<void> {
  const f = await follower(cluster);
  const start = await settledLastPosition(cluster);
  // From an explicit position (not "only new events", which is the follower's own applied end at connect
  // time): the count compares exactly with the events appended after `start`.
  const sub = await SseCounter.open(`${f.url}/streams/$all/subscribe?from=${start + 1}`);
  try {
    log(`$all subscriber on ${f.id} while the cluster takes ${batchEvents}-event batches for ${durationS} s`);
    const t0 = performance.now();
    const load = await loadCluster(cluster, {
      connections: batchConnections,
      durationS,
      eventsPerRequest: batchEvents,
      eventBytes,
      streams,
      timeoutS: 30,
    });
    const tEnd = performance.now();
    const deliveredDuringLoad = sub.count;
    const tCaught = await sub.waitFor(await lastPosition(cluster), catchUpTimeoutMs);
    const end = await settledLastPosition(cluster);
    await sub.waitFor(end, catchUpTimeoutMs);
    await sleep(200); // a duplicate after the last event would show in the count
    res.subscriber = {
      appendedPerS: (load.ok * batchEvents) / (load.durationUs / 1e6),
      deliveredPerS: deliveredDuringLoad / ((tEnd - t0) / 1000),
      lagAfterLoadMs: tCaught - tEnd,
      expected: end - start,
      delivered: sub.count,
      firstId: sub.firstId,
      wantFirstId: start + 1,
      skipped: sub.skipped,
      repeats: sub.repeats,
      load,
    };
    log(
      `  delivered ${int(res.subscriber.deliveredPerS)}/s during the load, caught up ${ms(res.subscriber.lagAfterLoadMs, 0)} after it; ${sub.count} events for ${end - start} appended (ids ${sub.firstId}..${sub.lastId}, ${sub.skipped} skipped, ${sub.repeats} repeated)`,
    );
  } finally {
    sub.close();
  }
}

async function fill(cluster: ClusterHarness, res: Results): Promise<void> {
  const have = (await lastPosition(cluster)) + 1;
  const missing = totalEvents - have;
  if (missing <= 0) return;
  const requests = Math.ceil(missing / fillBatchEvents);
  log(
    `filling to ${int(totalEvents)} events: ${int(requests)} requests of ${fillBatchEvents} events on ${fillConnections} connections`,
  );
  const t0 = performance.now();
  const load = await loadCluster(cluster, {
    connections: fillConnections,
    durationS: 36_000,
    eventsPerRequest: fillBatchEvents,
    eventBytes,
    streams,
    stopAfterOkPerThread: requests,
    timeoutS: 60,
  });
  const seconds = (performance.now() - t0) / 1000;
  const events = (await lastPosition(cluster)) + 1 - have;
  res.fill = { events, seconds, load };
  log(
    `  ${int(events)} events in ${seconds.toFixed(1)} s (${int(events / seconds)} events/s) ${wrkProblems(load)}`,
  );
  log('waiting until every node applied everything');
  await cluster.waitCaughtUp(catchUpTimeoutMs);
}

async function catchUp(cluster: ClusterHarness, res: Results): Promise<void> {
  const f = await follower(cluster);
  const end = await lastPosition(cluster);
  log(`catch-up: $all subscription from position 0 on ${f.id} up to ${int(end)}`);
  const t0 = performance.now();
  const sub = await SseCounter.open(`${f.url}/streams/$all/subscribe?from=0`);
  try {
    const t = await sub.waitFor(end, catchUpTimeoutMs);
    res.catchUp = { events: sub.count, seconds: (t - t0) / 1000 };
    log(
      `  ${int(sub.count)} events in ${res.catchUp.seconds.toFixed(2)} s (${int(sub.count / res.catchUp.seconds)}/s)`,
    );
  } finally {
    sub.close();
  }
}

interface ProjectionInfo {
  name: string;
  status: string;
  position: number;
  lag: number;
  eventsPerSecond?: number;
}

async function replay(cluster: ClusterHarness, res: Results): Promise<void> {
  const f = await follower(cluster);
  const events = (await lastPosition(cluster)) + 1;
  log(`replay: POST /projections/streams/reset on ${f.id} holding ${int(events)} events`);
  let reportedPerS = 0;
  const t0 = performance.now();
  const r = await postJson(`${f.url}/projections/streams/reset`, undefined, 30_000);
  if (r.status !== 202) throw new Error(`bench: reset answered ${r.status}: ${JSON.stringify(r.body)}`);
  await waitFor(
    'projection streams running again with lag 0',
    async () => {
      const list = (await getJson(`${f.url}/projections`, 30_000)).body as ProjectionInfo[];
      const p = list.find((x) => x.name === 'streams');
      if (!p) throw new Error(`bench: no projection named streams in ${JSON.stringify(list)}`);
      if (p.status === 'faulted') throw new Error(`bench: projection streams faulted: ${JSON.stringify(p)}`);
      if (p.status === 'rebuilding') reportedPerS = Math.max(reportedPerS, p.eventsPerSecond ?? 0);
      return p.status === 'running' && p.lag === 0;
    },
    { timeoutMs: replayTimeoutMs, intervalMs: replayPollMs, backoff: false },
  );
  const seconds = (performance.now() - t0) / 1000;
  res.replay = { events, seconds, reportedPerS };
  log(
    `  ${int(events)} events in ${seconds.toFixed(2)} s (${int(events / seconds)}/s; the node reported up to ${int(reportedPerS)}/s)`,
  );
}

/** kill -9 the given nodes, start them again together; ms from the spawn until each answers GET /ready 200. */
async function restart(cluster: ClusterHarness, ids: string[], what: string, res: Results): Promise<void> {
  const events = (await lastPosition(cluster)) + 1;
  const times = await cluster.restartTimed(ids, readyTimeoutMs);
  const readyMs = Math.max(...times.map((t) => t.ready));
  const healthMs = Math.max(...times.map((t) => t.health));
  res.restarts.push({ what, events, healthMs, readyMs });
  const each = times.map((t) => `${t.health.toFixed(0)}/${t.ready.toFixed(0)}`).join(', ');
  log(
    `restart-to-ready, ${what} with ${int(events)} events: ${ms(readyMs, 0)} (health/ready each: ${each} ms)`,
  );
  await cluster.waitCaughtUp(catchUpTimeoutMs);
}

async function restarts(cluster: ClusterHarness, res: Results, phase: string): Promise<void> {
  await restart(cluster, [(await follower(cluster)).id], `a follower${phase}`, res);
  if (phase) {
    await restart(cluster, [(await cluster.waitForLeader()).id], `the leader${phase}`, res);
    await restart(
      cluster,
      cluster.all().map((n) => n.id),
      `all three${phase}`,
      res,
    );
  }
}

async function nodeStartFloor(dir: string): Promise<{ ceiling: CeilingServer; ms: number }> {
  const t0 = performance.now();
  const ceiling = await CeilingServer.start(dir);
  return { ceiling, ms: performance.now() - t0 };
}

async function main(): Promise<void> {
  const wrkVersion = requireWrk();
  const dir = benchDir('api-ceiling');
  log(`fsync ceiling in ${dir} (${filesystemOf(dir)})`);
  const res: Results = {
    fsync: fsyncCeiling(dir, eventBytes),
    nodeStartFloorMs: NaN,
    singles: [],
    restarts: [],
  };
  const floor = await nodeStartFloor(dir);
  res.nodeStartFloorMs = floor.ms;
  log('starting a 3-node cluster');
  const cluster = await startBenchCluster('api', 3, nodeEnv());
  let failure: Error | null = null;
  try {
    if (only.has('history')) await restarts(cluster, res, '');
    log(`warm-up ${warmupS} s`);
    await loadCluster(cluster, {
      connections: 32,
      durationS: warmupS,
      eventsPerRequest: 1,
      eventBytes,
      streams,
    });
    if (only.has('singles')) await singleAppends(cluster, floor.ceiling, res);
    if (only.has('batch')) await batchAppends(cluster, floor.ceiling, res);
    await floor.ceiling.stop();
    if (only.has('subscriber')) await liveSubscriber(cluster, res);
    if (only.has('history')) {
      await fill(cluster, res);
      await catchUp(cluster, res);
      await replay(cluster, res);
      await restarts(cluster, res, ' (history)');
    }
  } catch (err) {
    failure = err as Error;
    process.stderr.write(`bench: stage failed: ${failure.stack ?? failure.message}\n${cluster.tail(15)}\n`);
  } finally {
    await floor.ceiling.stop();
    await stopBenchCluster(cluster);
  }
  printReport(wrkVersion, dir, res);
  if (failure) throw failure;
}

function met(ok: boolean | null): string {
  return ok === null ? '-' : ok ? 'yes' : 'NO';
}

function printReport(wrkVersion: string, dir: string, res: Results): void {
  const header = [
    'measurement',
    'figure',
    'p50',
    'p99',
    'ceiling (same run)',
    'vs ceiling',
    'target',
    'met',
    'CPU leader / followers',
    'RSS MiB leader / followers',
    'CPU/req leader / trivial',
    'non-201 / errors',
  ];
  const rows: string[][] = [];
  for (const p of res.singles) {
    const c = p.cluster;
    const isTarget = p.concurrency === 256;
    const p99Ms = c.latencyUs.p99 / 1000;
    rows.push([
      `append 1 event, ${p.concurrency} conn`,
      `${int(c.okPerS)} ev/s`,
      ms(c.latencyUs.p50 / 1000, 2),
      ms(p99Ms, 2),
      `${int(p.ceiling.okPerS)} req/s (p99 ${ms(p.ceiling.latencyUs.p99 / 1000, 2)})`,
      pct(c.okPerS / p.ceiling.okPerS),
      isTarget ? `>= ${int(target.appendsPerS)}/s, p99 <= ${target.appendP99Ms} ms` : '',
      isTarget ? met(c.okPerS >= target.appendsPerS && p99Ms <= target.appendP99Ms) : '',
      coresNote(c),
      rssNote(c),
      cpuPerRequest(p),
      wrkProblems(c) || 'none',
    ]);
  }
  if (res.batch) {
    const c = res.batch.cluster;
    const evPerS = c.okPerS * batchEvents;
    rows.push([
      `append ${batchEvents}-event batches, ${batchConnections} conn`,
      `${int(evPerS)} ev/s`,
      ms(c.latencyUs.p50 / 1000, 1),
      ms(c.latencyUs.p99 / 1000, 1),
      `${int(res.batch.ceiling.okPerS * batchEvents)} ev/s`,
      pct(c.okPerS / res.batch.ceiling.okPerS),
      `>= ${int(target.batchEventsPerS)}/s`,
      met(evPerS >= target.batchEventsPerS),
      coresNote(c),
      rssNote(c),
      cpuPerRequest(res.batch),
      wrkProblems(c) || 'none',
    ]);
  }
  if (res.subscriber) {
    const s = res.subscriber;
    const complete =
      s.delivered === s.expected && s.skipped === 0 && s.repeats === 0 && s.firstId === s.wantFirstId
        ? 'complete'
        : `MISMATCH: ${s.delivered} delivered for ${s.expected} appended (first id ${s.firstId}, wanted ${s.wantFirstId}; ${s.skipped} skipped, ${s.repeats} repeated)`;
    rows.push([
      '$all subscriber (SSE, follower) under batch load',
      `${int(s.deliveredPerS)} ev/s`,
      '',
      '',
      `${int(s.appendedPerS)} ev/s appended`,
      pct(s.deliveredPerS / s.appendedPerS),
      '',
      '',
      coresNote(s.load),
      rssNote(s.load),
      '',
      `${complete}; caught up ${ms(s.lagAfterLoadMs, 0)} after load`,
    ]);
  }
  if (res.fill) {
    const f = res.fill;
    rows.push([
      `fill: ${fillBatchEvents}-event batches, ${fillConnections} conn`,
      `${int(f.events / f.seconds)} ev/s`,
      ms(f.load.latencyUs.p50 / 1000, 0),
      ms(f.load.latencyUs.p99 / 1000, 0),
      '',
      '',
      '',
      '',
      coresNote(f.load),
      rssNote(f.load),
      '',
      wrkProblems(f.load) || 'none',
    ]);
  }
  if (res.catchUp) {
    const c = res.catchUp;
    rows.push([
      `$all catch-up from 0 (SSE, follower), ${int(c.events)} events`,
      `${int(c.events / c.seconds)} ev/s`,
      '',
      '',
      '',
      '',
      '',
      '',
      '',
      '',
      `${c.seconds.toFixed(2)} s`,
    ]);
  }
  if (res.replay) {
    const r = res.replay;
    const perS = r.events / r.seconds;
    rows.push([
      `replay: reset projection streams, ${int(r.events)} events`,
      `${int(perS)} ev/s`,
      '',
      '',
      '',
      '',
      `>= ${int(target.replayEventsPerS)}/s`,
      met(perS >= target.replayEventsPerS),
      '',
      '',
      `${r.seconds.toFixed(2)} s; node reported <= ${int(r.reportedPerS)}/s`,
    ]);
  }
  for (const r of res.restarts) {
    const withHistory = r.what.includes('history');
    rows.push([
      `restart-to-ready: ${r.what}, ${int(r.events)} events`,
      ms(r.readyMs, 0),
      '',
      '',
      `node process start ${ms(res.nodeStartFloorMs, 0)}`,
      ratio(r.readyMs, res.nodeStartFloorMs),
      withHistory ? `< ${target.restartMs} ms` : '',
      withHistory ? met(r.readyMs < target.restartMs) : '',
      '',
      '',
      `kill -9; spawn → /health ${ms(r.healthMs, 0)} → /ready`,
    ]);
  }
  // Rows without a load run have no memory figure: an empty RSS cell after the CPU one.
  for (const r of rows) if (r.length === header.length - 1) r.splice(9, 0, '');
  const out = [
    '',
    `bench (API) — 3 node processes on 127.0.0.1, fsync on, keep-alive; ${os.cpus().length} cores shared by nodes + load generator; ${new Date().toISOString()}`,
    `load: ${wrkVersion}, 1 thread, bench/append.lua (~${eventBytes}-byte events, unique ids, ${streams} streams), ${durationS} s per run; appends go to the leader`,
    `ceilings: a trivial node:http server answering 201 at once, same wrk, same concurrency, same run; disk ${filesystemOf(dir)}: serial write+fdatasync ${eventBytes} B ${int(res.fsync.preallocOpsPerS)} ops/s preallocated, ${int(res.fsync.appendOpsPerS)} ops/s appending`,
    `load average at the end: ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} (other work on the box skews every figure; compare with the same-run ceilings)`,
    '',
    table(header, rows),
    '',
  ];
  process.stdout.write(out.join('\n') + '\n');
}

runBench('bench', main);
