/**
 * `npm run bench:raft`: the Raft node on a real 3-process cluster on this machine, fsync on. Prints a table.
 *
 * - Committed proposals per second and p50/p99 commit latency for 200-byte commands at 1, 32 and 256
 *   concurrent proposers. From outside a node the only way to propose is the API, so a proposal here is
 *   `POST /streams/{id}/events` with one ~200-byte event sent by wrk (bench/append.lua) to the leader on
 *   keep-alive connections: the 201 comes after the command is committed (fsynced on a majority) and
 *   applied. The figures therefore include HTTP, JSON validation and the state machine's apply.
 * - Failover: kill -9 of the leader → the next successful commit, seen by a light client that sends one
 *   append every ~10 ms to every node and follows 307 to the leader; the killed node is restarted
 *   between trials. p50 and max over BENCH_FAILOVER_TRIALS (default 20) trials.
 * - The physical limits in the same run: serial write + fdatasync of 200 B on the same disk (ops/s),
 *   and the CPU the node processes used (cores; the machine has 2 shared by everything).
 *
 * Environment: BENCH_DURATION_S (default 10 per concurrency), BENCH_FAILOVER_TRIALS (20),
 * BENCH_CPU_PROF=1 (profiles of every node in .bench-tmp/profiles), BENCH_KEEP_DATA=1, and node tunables
 * passed through (TICK_MS, ELECTION_TICKS, …).
 */
import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as os from 'node:os';
import { fsyncCeiling } from './support/fsync';
import { coresNote, loadCluster, LoadResult } from './support/load';
import {
  benchDir,
  ClusterHarness,
  ClusterNode,
  filesystemOf,
  startBenchCluster,
  stopBenchCluster,
  nodeEnvFromProcess,
} from './support/bench-run';
import { envInt, int, log, ms, percentile, ratio, runBench, table } from './support/report';
import { requireWrk, wrkProblems } from './support/wrk';

const durationS = envInt('BENCH_DURATION_S', 10);
const failoverTrials = envInt('BENCH_FAILOVER_TRIALS', 20, 0);
const concurrencies = [1, 32, 256];
const commandBytes = 200;
const streams = 1000;
const probeIntervalMs = 10;
const probeTimeoutMs = 3000;
const probeInFlightPerNodeMax = 3;
const failoverGiveUpMs = 60_000;
const warmupS = 3;

function nodeEnv(): Record<string, string> {
  return nodeEnvFromProcess();
}

const probeAgent = new http.Agent({ keepAlive: true, maxSockets: probeInFlightPerNodeMax * 2 });
const probeData = { pad: 'x'.repeat(commandBytes - 90) };

/** One append; follows one 307. Resolves with the status of the final answer (0 on a network error). */
function probe(url: string, redirectsLeft = 1): Promise<number> {
  const body = Buffer.from(
    JSON.stringify({ events: [{ id: randomUUID(), type: 'FailoverProbe', data: probeData }] }),
  );
  return new Promise((resolve) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent: probeAgent,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          const location = res.headers.location;
          if (res.statusCode === 307 && location && redirectsLeft > 0)
            resolve(probe(location, redirectsLeft - 1));
          else resolve(res.statusCode ?? 0);
        });
        res.on('error', () => resolve(0));
      },
    );
    req.setTimeout(probeTimeoutMs, () => req.destroy());
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

/** Sends a probe to every node every ~10 ms until one is committed (201); resolves with that moment. */
function firstCommit(nodes: ClusterNode[], giveUpMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const inFlight = new Map<string, number>(nodes.map((n) => [n.id, 0]));
    let done = false;
    const started = performance.now();
    const timer = setInterval(() => {
      if (performance.now() - started > giveUpMs) {
        done = true;
        clearInterval(timer);
        reject(new Error(`bench: no append committed within ${giveUpMs} ms`));
        return;
      }
      for (const n of nodes) {
        if (inFlight.get(n.id)! >= probeInFlightPerNodeMax) continue;
        inFlight.set(n.id, inFlight.get(n.id)! + 1);
        const path = `${n.url}/streams/failover-probe/events`;
        void probe(path).then((status) => {
          const at = performance.now();
          inFlight.set(n.id, inFlight.get(n.id)! - 1);
          if (status === 201 && !done) {
            done = true;
            clearInterval(timer);
            resolve(at);
          }
        });
      }
    }, probeIntervalMs);
  });
}

interface Trial {
  ms: number;
  killed: string;
  newLeader: string;
}

async function failoverTrial(cluster: ClusterHarness, trial: number): Promise<Trial> {
  const leader = await cluster.waitForLeader();
  await firstCommit(cluster.running(), failoverGiveUpMs); // the cluster commits before the kill
  const proc = leader.proc!;
  const killedAt = performance.now();
  process.kill(proc.pid, 'SIGKILL');
  const committedAt = await firstCommit(cluster.all(), failoverGiveUpMs);
  await proc.exit;
  const newLeader = await cluster.waitForLeader();
  const t: Trial = { ms: committedAt - killedAt, killed: leader.id, newLeader: newLeader.id };
  log(
    `failover ${trial + 1}/${failoverTrials}: killed leader ${t.killed}, next commit after ${t.ms.toFixed(0)} ms (new leader ${t.newLeader})`,
  );
  await cluster.restart(leader.id);
  await cluster.waitReady(leader.id);
  await cluster.waitCaughtUp();
  return t;
}

async function main(): Promise<void> {
  const wrkVersion = requireWrk();
  const dir = benchDir('raft-fsync');
  log(`fsync ceiling in ${dir} (${filesystemOf(dir)})`);
  const fsync = fsyncCeiling(dir, commandBytes);
  log('starting a 3-node cluster');
  const cluster = await startBenchCluster('raft', 3, nodeEnv());
  const loads: LoadResult[] = [];
  const trials: Trial[] = [];
  try {
    log(`warm-up ${warmupS} s at 32 connections`);
    await loadCluster(cluster, {
      connections: 32,
      durationS: warmupS,
      eventsPerRequest: 1,
      eventBytes: commandBytes,
      streams,
    });
    for (const c of concurrencies) {
      log(`${durationS} s of single-command proposals at ${c} concurrent proposer(s)`);
      const r = await loadCluster(cluster, {
        connections: c,
        durationS,
        eventsPerRequest: 1,
        eventBytes: commandBytes,
        streams,
        timeoutS: 30,
      });
      log(
        `  ${int(r.okPerS)} commits/s, p50 ${ms(r.latencyUs.p50 / 1000, 2)}, p99 ${ms(r.latencyUs.p99 / 1000, 2)} ${wrkProblems(r)}`,
      );
      loads.push(r);
    }
    for (let i = 0; i < failoverTrials; i++) trials.push(await failoverTrial(cluster, i));
  } finally {
    await stopBenchCluster(cluster);
  }
  printReport(wrkVersion, dir, fsync, loads, trials);
}

function printReport(
  wrkVersion: string,
  dir: string,
  fsync: ReturnType<typeof fsyncCeiling>,
  loads: LoadResult[],
  trials: Trial[],
): void {
  const rows = loads.map((r, i) => [
    String(concurrencies[i]),
    int(r.okPerS),
    ms(r.latencyUs.p50 / 1000, 2),
    ms(r.latencyUs.p99 / 1000, 2),
    ms(r.latencyUs.max / 1000, 1),
    ratio(r.okPerS, fsync.preallocOpsPerS),
    coresNote(r),
    `${int((r.nodeCores[r.leaderId] / r.okPerS) * 1e6)} us`,
    r.wrkCores.toFixed(2),
    wrkProblems(r) || 'none',
  ]);
  const fo = trials.map((t) => t.ms);
  const out = [
    '',
    `bench:raft — 3 node processes on 127.0.0.1, fsync on, ${os.cpus().length} cores shared by nodes + load generator; ${new Date().toISOString()}`,
    `proposals = POST /streams/{id}/events with one ${commandBytes}-byte event (the only way to propose from outside), ${wrkVersion}, 1 thread, keep-alive, ${durationS} s each; latency = wrk's, commit+apply+HTTP`,
    `disk: ${filesystemOf(dir)}; load average at the end ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} (other work on the box skews every figure; ratios are same-run)`,
    '',
    `raw fsync ceiling (serial write+fdatasync ${commandBytes} B, same disk): ${int(fsync.preallocOpsPerS)} ops/s preallocated (p50 ${ms(fsync.preallocP50Ms, 3)}), ${int(fsync.appendOpsPerS)} ops/s appending (p50 ${ms(fsync.appendP50Ms, 3)})`,
    '',
    table(
      [
        'proposers',
        'commits/s',
        'p50',
        'p99',
        'max',
        'vs fsync/s',
        'CPU cores leader / followers',
        'leader CPU/commit',
        'wrk CPU',
        'non-201 / errors',
      ],
      rows,
    ),
    '',
    table(
      ['failover (kill -9 leader → next commit)', 'trials', 'p50', 'max', 'min'],
      [
        [
          'probe every 10 ms to every node, 307 followed',
          String(trials.length),
          ms(percentile(fo, 50), 0),
          ms(fo.length ? Math.max(...fo) : NaN, 0),
          ms(fo.length ? Math.min(...fo) : NaN, 0),
        ],
      ],
    ),
    `trials (ms): ${fo.map((x) => x.toFixed(0)).join(' ')}`,
    '',
  ];
  process.stdout.write(out.join('\n') + '\n');
}

runBench('bench:raft', main);
