import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { killAllTracked, nodeMain, repoRoot } from '../support/cluster-harness';
import { check } from './checker';
import { FaultCluster, sleep } from './cluster';
import type { History, Verdict } from './history';
import { FaultKind, faultKinds, Nemesis } from './nemesis';
import { assertPrerequisites, removeLeftovers } from './netns';
import { renderReport, RunInfo } from './report';
import { readAllLocal, Subscriber, Workload } from './workload';

/**
 * The fault suite's runner (test/faults/README.md):
 *   npm run test:faults -- --duration S --seed N [--nodes 3|5] [--faults kill,pause,...] [--clients C]
 *   npm run test:faults:ci       three seeds of 60 s with different fault mixes (one with 5 nodes)
 * Starts a cluster in network namespaces, runs the workload under the nemesis, heals, reads what the
 * cluster holds, checks the history (checker.ts) and writes history.json and report.md to
 * .faults/<seed>-<timestamp>/. Exit code 1 on any anomaly, 2 on a harness failure.
 */

interface RunConfig {
  durationS: number;
  seed: number;
  nodes: number;
  kinds: FaultKind[];
  clients: number;
}

/** The CI set: different fault mixes, one with 5 nodes; about 80-90 s of wall time each. */
const ciRuns: RunConfig[] = [
  { durationS: 60, seed: 101, nodes: 3, kinds: ['partition', 'kill', 'pause', 'torn'], clients: 8 },
  { durationS: 60, seed: 202, nodes: 3, kinds: ['oneway', 'bridge', 'loss', 'slow'], clients: 8 },
  {
    durationS: 60,
    seed: 303,
    nodes: 5,
    kinds: ['partition', 'bridge', 'kill', 'pause', 'oneway', 'loss'],
    clients: 8,
  },
];

const usage =
  'usage: npm run test:faults -- --duration S --seed N [--nodes 3|5] [--faults ' +
  faultKinds.join(',') +
  '] [--clients C]\n       npm run test:faults -- --ci';

function parseArgs(argv: string[]): { ci: boolean; config: RunConfig } {
  const config: RunConfig = { durationS: 60, seed: 1, nodes: 3, kinds: [...faultKinds], clients: 8 };
  let ci = false;
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${usage}`);
      return v;
    };
    const int = (lo: number, hi: number) => {
      const v = Number(value());
      if (!Number.isInteger(v) || v < lo || v > hi)
        throw new Error(`${flag}: an integer in [${lo}, ${hi}]\n${usage}`);
      return v;
    };
    switch (flag) {
      case '--duration':
        config.durationS = int(5, 24 * 3600);
        break;
      case '--seed':
        config.seed = int(0, 2 ** 31 - 1);
        break;
      case '--nodes':
        config.nodes = int(3, 5);
        if (config.nodes === 4) throw new Error(`--nodes: 3 or 5\n${usage}`);
        break;
      case '--clients':
        config.clients = int(1, 64);
        break;
      case '--faults': {
        const kinds = value()
          .split(',')
          .map((k) => k.trim())
          .filter(Boolean);
        for (const k of kinds)
          if (!(faultKinds as readonly string[]).includes(k))
            throw new Error(`--faults: unknown kind "${k}"\n${usage}`);
        config.kinds = kinds as FaultKind[];
        break;
      }
      case '--ci':
        ci = true;
        break;
      case '--help':
      case '-h':
        process.stdout.write(`${usage}\n`);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${argv[i]}\n${usage}`);
    }
  }
  return { ci, config };
}

let current: FaultCluster | null = null;

function log(line: string): void {
  process.stdout.write(`[faults] ${line}\n`);
}

interface RunResult {
  valid: boolean;
  harnessFailed: boolean;
  report: string;
  outDir: string;
}

async function runOnce(cfg: RunConfig): Promise<RunResult> {
  const wallStart = performance.now();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const outDir = path.join(repoRoot, '.faults', `${cfg.seed}-${stamp}`);
  fs.mkdirSync(outDir, { recursive: true });
  log(
    `seed ${cfg.seed}: ${cfg.nodes} nodes, ${cfg.durationS} s of ${cfg.kinds.join(',')}, ${cfg.clients} clients -> ${outDir}`,
  );
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const errors: string[] = [];
  const history: History = { ops: [], sentEventIds: [], finalAll: {}, subscribers: [] };
  let verdict: Verdict | null = null;
  let nemesis: Nemesis | null = null;
  const subscribers: Subscriber[] = [];
  let workload: Workload | null = null;
  const cluster = await FaultCluster.start({ nodes: cfg.nodes, logDir: path.join(outDir, 'logs') });
  current = cluster;
  try {
    const leader = await cluster.waitLeader(60_000);
    log(
      `cluster up in ${(now() / 1000).toFixed(1)} s, leader ${leader}; network ${cluster.net.tag} (gateway ${cluster.net.gateway})`,
    );
    const urls: Record<string, string> = {};
    for (const id of cluster.ids()) urls[id] = cluster.node(id).url;
    cluster.ids().forEach((id, i) => {
      const s = new Subscriber(i + 1, id, urls[id], cluster.token);
      subscribers.push(s);
      s.start();
    });
    workload = new Workload({ nodes: urls, token: cluster.token, clients: cfg.clients, seed: cfg.seed, now });
    nemesis = new Nemesis(cluster, { kinds: cfg.kinds, seed: cfg.seed, now });
    nemesis.startMonitor();
    workload.start();
    await nemesis.run(cfg.durationS * 1000, log);
    log(
      `fault phase over at ${(now() / 1000).toFixed(1)} s: ${nemesis.faults.length} faults; stopping the clients`,
    );
    await workload.stop();
    await nemesis.stop();
    nemesis.measure();
    await cluster.healAll();
    const finalLeader = await cluster.waitLeader(60_000);
    const applied = await cluster.waitConverged(120_000);
    log(`healed: leader ${finalLeader}, every node applied ${applied}`);
    // The final linearizable read of every stream, as ordinary operations (client 0).
    for (const stream of workload.streamsUsed) {
      for (let a = 0; a < 5; a++) {
        const op = await workload.read(0, finalLeader, stream);
        if (op.outcome === 'ok') break;
        await sleep(500);
      }
    }
    for (const id of cluster.ids()) history.finalAll[id] = await readAllLocal(urls[id], cluster.token);
    const lastPosition = Math.max(-1, ...Object.values(history.finalAll).map((evs) => evs.length - 1));
    const deadline = performance.now() + 60_000;
    while (performance.now() < deadline && subscribers.some((s) => s.lastPosition() < lastPosition))
      await sleep(200);
    for (const s of subscribers)
      if (s.lastPosition() < lastPosition)
        log(
          `subscriber on ${s.log.node} is at ${s.lastPosition()} of ${lastPosition} after 60 s (${s.errors.slice(-3).join('; ')})`,
        );
  } catch (err) {
    errors.push((err as Error).stack ?? String(err));
    log(`harness failure: ${(err as Error).message}`);
    await workload?.stop().catch(() => undefined);
    await nemesis?.stop().catch(() => undefined);
    nemesis?.measure();
  } finally {
    await Promise.all(subscribers.map((s) => s.stop()));
    await cluster.cleanup();
    current = null;
  }
  if (workload) {
    history.ops = workload.ops;
    history.sentEventIds = workload.sentEventIds;
  }
  history.subscribers = subscribers.map((s) => s.log);
  if (errors.length === 0) {
    const c0 = performance.now();
    verdict = check(history);
    log(`checked in ${((performance.now() - c0) / 1000).toFixed(1)} s`);
  }
  const info: RunInfo = {
    seed: cfg.seed,
    nodes: cfg.nodes,
    kinds: cfg.kinds,
    durationS: cfg.durationS,
    clients: cfg.clients,
    wallS: (performance.now() - wallStart) / 1000,
    outDir,
    errors,
    subscribers: subscribers.map((s) => ({
      node: s.log.node,
      received: s.log.received.length,
      connects: s.connects,
    })),
  };
  const faults = nemesis?.faults ?? [];
  const report = renderReport(info, history, faults, verdict);
  fs.writeFileSync(path.join(outDir, 'history.json'), JSON.stringify(history));
  fs.writeFileSync(
    path.join(outDir, 'run.json'),
    JSON.stringify({ config: cfg, faults, leaderSamples: nemesis?.samples ?? [], verdict, errors }, null, 1),
  );
  fs.writeFileSync(path.join(outDir, 'report.md'), report);
  process.stdout.write(`\n${report}\n`);
  return {
    valid: verdict?.valid === true && errors.length === 0,
    harnessFailed: errors.length > 0,
    report,
    outDir,
  };
}

function ensureBuilt(): void {
  if (fs.existsSync(nodeMain)) return;
  log(`${path.relative(repoRoot, nodeMain)} is missing: running npm run build`);
  const r = spawnSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: 'inherit' });
  if (r.status !== 0 || !fs.existsSync(nodeMain)) throw new Error('npm run build failed');
}

async function main(): Promise<number> {
  const { ci, config } = parseArgs(process.argv.slice(2));
  assertPrerequisites();
  ensureBuilt();
  const removed = await removeLeftovers();
  if (removed.length > 0) log(`removed leftovers of earlier runs: ${removed.join(', ')}`);
  const runs = ci ? ciRuns : [config];
  const started = performance.now();
  const results: RunResult[] = [];
  for (const cfg of runs) results.push(await runOnce(cfg));
  const wall = (performance.now() - started) / 1000;
  if (runs.length > 1) {
    log(`${runs.length} runs in ${wall.toFixed(0)} s:`);
    for (const r of results)
      log(
        `  ${r.valid ? 'PASS' : r.harnessFailed ? 'HARNESS FAILURE' : 'ANOMALIES'} ${path.relative(repoRoot, r.outDir)}`,
      );
  }
  if (results.some((r) => r.harnessFailed)) return 2;
  return results.every((r) => r.valid) ? 0 : 1;
}

// Cleanup on every way out: processes by PID, namespaces, bridge, data directories.
process.on('exit', () => {
  current?.cleanupSync();
  killAllTracked();
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    const c = current;
    current = null;
    void (c ? c.cleanup() : Promise.resolve()).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`[faults] ${err.message}\n`);
    process.exit(2);
  },
);
