/**
 * `npm run build && node --require ./tools/swc-register.js bench/startup.ts`: restart-to-ready of the event store with a history, on
 * its own (the last stage of `npm run bench` without the rest). Starts a 3-node cluster, fills it to
 * BENCH_EVENTS (1,000,000) with 1000-event batches, then BENCH_ROUNDS (3) times kills -9 and restarts a
 * follower, then all three together, printing spawn → /health and → /ready and each node's start-up
 * phases (the `started in … ms` line every node logs once it listens).
 *
 * Environment: BENCH_EVENTS, BENCH_ROUNDS, BENCH_FILL_CONNECTIONS (4), BENCH_KEEP_DATA=1, BENCH_CPU_PROF=1.
 */
import { ClusterHarness, startBenchCluster, stopBenchCluster } from './support/bench-run';
import { getJson } from './support/http';
import { loadCluster } from './support/load';
import { envInt, int, log, ms, percentile, runBench } from './support/report';

const totalEvents = envInt('BENCH_EVENTS', 1_000_000);
const rounds = envInt('BENCH_ROUNDS', 3);
const fillConnections = envInt('BENCH_FILL_CONNECTIONS', 4);
const fillBatchEvents = 1000;
const readyTimeoutMs = 300_000;
const catchUpTimeoutMs = 600_000;

async function lastPosition(cluster: ClusterHarness): Promise<number> {
  const leader = await cluster.waitForLeader();
  const r = await getJson(`${leader.url}/streams/$all?direction=backward&limit=1`, 30_000);
  if (r.status !== 200) throw new Error(`bench: GET $all on ${leader.id} answered ${r.status}`);
  return r.body.lastPosition as number;
}

/** The last `started in` message of the node's log (its start-up phases), or ''. */
function phasesLine(cluster: ClusterHarness, id: string): string {
  const l = [...cluster.logLines(id)].reverse().find((x) => x.includes(' started in '));
  if (!l) return '';
  let msg = l;
  try {
    msg = String(JSON.parse(l).msg); // a JSON log line (the node's stdout is not a terminal)
  } catch {
    /* a plain line */
  }
  return msg.slice(msg.indexOf(' started in ') + 1);
}

async function restart(cluster: ClusterHarness, ids: string[]): Promise<{ health: number; ready: number }> {
  const times = await cluster.restartTimed(ids, readyTimeoutMs);
  const health = Math.max(...times.map((t) => t.health));
  const ready = Math.max(...times.map((t) => t.ready));
  log(`  ${ids.join('+')}: /health ${ms(health, 0)}, /ready ${ms(ready, 0)}`);
  for (const id of ids) log(`    ${id} ${phasesLine(cluster, id)}`);
  await cluster.waitCaughtUp(catchUpTimeoutMs);
  return { health, ready };
}

async function main(): Promise<void> {
  const cluster = await startBenchCluster('startup', 3, {});
  try {
    const missing = totalEvents - ((await lastPosition(cluster)) + 1);
    const requests = Math.ceil(missing / fillBatchEvents);
    log(`filling to ${int(totalEvents)} events (${int(requests)} requests of ${fillBatchEvents})`);
    const t0 = performance.now();
    await loadCluster(cluster, {
      connections: fillConnections,
      durationS: 36_000,
      eventsPerRequest: fillBatchEvents,
      eventBytes: 200,
      streams: 1000,
      stopAfterOkPerThread: requests,
      timeoutS: 60,
    });
    await cluster.waitCaughtUp(catchUpTimeoutMs);
    const events = (await lastPosition(cluster)) + 1;
    log(`  ${int(events)} events in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const one: number[] = [];
    const all: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const leader = await cluster.waitForLeader();
      const f = cluster.running().find((n) => n.id !== leader.id)!;
      log(`round ${r + 1}: a follower, then all three`);
      one.push((await restart(cluster, [f.id])).ready);
      all.push(
        (
          await restart(
            cluster,
            cluster.all().map((n) => n.id),
          )
        ).ready,
      );
    }
    const fmt = (xs: number[]) =>
      `median ${ms(percentile(xs, 50), 0)} (${xs.map((x) => x.toFixed(0)).join(', ')})`;
    process.stdout.write(
      `\nrestart-to-ready with ${int(events)} events, ${rounds} rounds:\n  one follower: ${fmt(one)}\n  all three:    ${fmt(all)}\n`,
    );
  } finally {
    await stopBenchCluster(cluster);
  }
}

runBench('bench:startup', main);
