/**
 * What a benchmark run adds to the shared process harness (test/support/cluster-harness.ts): directories
 * on the real disk under `.bench-tmp/` in the repository (gitignored), removed afterwards unless
 * BENCH_KEEP_DATA=1; every tracked child killed by PID when the benchmark exits, fails or is interrupted;
 * and the benchmarks' settings for a cluster of real event-store nodes (the node's own segment size, output
 * straight into log files, BENCH_CPU_PROF=1 / BENCH_NODE_ARGS node flags).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClusterHarness, killAllTracked, repoRoot } from '../../test/support/cluster-harness';

export {
  ClusterHarness,
  ClusterNode,
  cpuSeconds,
  freePorts,
  killProc,
  Proc,
  repoRoot,
  rssMiB,
  spawnTracked,
  trackChild,
} from '../../test/support/cluster-harness';
export { sleep } from '../../test/support/e2e-client';

const keepData = process.env.BENCH_KEEP_DATA === '1';
const dirs = new Set<string>();

function removeDirs(): void {
  if (!keepData) for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
}

process.on('exit', () => {
  killAllTracked();
  removeDirs();
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    const n = killAllTracked();
    process.stderr.write(`\nbench: ${sig}: killed ${n} child process(es), removing data\n`);
    removeDirs();
    process.exit(130);
  });
}

/** `.bench-tmp/<name>-<pid>` in the repository, on the real disk; removed at exit unless BENCH_KEEP_DATA=1. */
export function benchDir(name: string): string {
  const dir = path.join(repoRoot, '.bench-tmp', `${name}-${process.pid}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  dirs.add(dir);
  const fsType = filesystemOf(dir);
  if (/tmpfs|ramfs/.test(fsType))
    process.stderr.write(`bench: WARNING ${dir} is on ${fsType}: fsync figures mean nothing\n`);
  return dir;
}

/** `df -T` line for a directory: device, type, sizes, mount point. */
export function filesystemOf(dir: string): string {
  try {
    const line = execFileSync('df', ['-T', dir], { encoding: 'utf8' }).trim().split('\n').pop() ?? '?';
    const cols = line.split(/\s+/);
    return `${cols[1]} on ${cols[0]} (${cols[6] ?? '?'})`;
  } catch {
    return '?';
  }
}

/** Node flags of the benchmarks: a CPU profile per process with BENCH_CPU_PROF=1, and BENCH_NODE_ARGS. */
function nodeArgs(id: string): string[] {
  const args: string[] = [];
  if (process.env.BENCH_CPU_PROF === '1') {
    // One directory per process; Node's own file names tell the threads apart (CPU.<date>.<time>.<pid>.<thread
    // id>.<n>.cpuprofile; the main thread is 0): with one --cpu-prof-name, the merge thread's profile overwrote
    // the main thread's.
    const dir = path.join(repoRoot, '.bench-tmp', 'profiles', `${id}-${Date.now()}`);
    fs.mkdirSync(dir, { recursive: true });
    args.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
  }
  // BENCH_NODE_ARGS: extra node flags for every node process (e.g. --perf-basic-prof for `perf record`).
  if (process.env.BENCH_NODE_ARGS) args.push(...process.env.BENCH_NODE_ARGS.split(' ').filter(Boolean));
  return args;
}

/**
 * Starts `size` voters n1..nN with data in `.bench-tmp/<name>-<pid>` and waits until they agree on a
 * leader. End it with `stopBenchCluster`.
 */
export async function startBenchCluster(
  name: string,
  size: number,
  env: Record<string, string> = {},
): Promise<ClusterHarness> {
  const cluster = await ClusterHarness.start({
    nodes: size,
    env,
    root: benchDir(name),
    segmentBytes: null,
    output: 'file',
    nodeArgs,
    keepData,
  });
  await cluster.waitForLeader();
  return cluster;
}

/**
 * Stops every node (SIGTERM with BENCH_CPU_PROF=1, so that the profiles get written; else SIGKILL), keeps
 * the nodes' logs in `.bench-tmp/logs-<name>/` (replacing the previous run's) and removes the data
 * (unless BENCH_KEEP_DATA=1).
 */
export async function stopBenchCluster(cluster: ClusterHarness): Promise<void> {
  await cluster.cleanup({
    signal: process.env.BENCH_CPU_PROF === '1' ? 'SIGTERM' : 'SIGKILL',
    keepLogsIn: path.join(repoRoot, '.bench-tmp', `logs-${path.basename(cluster.root).replace(/-\d+$/, '')}`),
  });
}

/** The node settings a benchmark passes through from its own environment to every node it starts. */
const nodeTunables = [
  'TICK_MS',
  'ELECTION_TICKS',
  'SNAPSHOT_EVERY_ENTRIES',
  'SNAPSHOT_EVERY_BYTES',
  'SNAPSHOT_KEEP_ENTRIES',
  'PROPOSAL_TIMEOUT_MS',
  'LOG_LEVEL',
  'RAFT_SEGMENT_BYTES',
];

/** Those of `nodeTunables` (and `extra`) set in this process's environment. */
export function nodeEnvFromProcess(extra: string[] = []): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of [...nodeTunables, ...extra]) if (process.env[k]) env[k] = process.env[k]!;
  return env;
}
