/** One wrk run against the cluster with the CPU each node process used during it. */
import { ClusterHarness, cpuSeconds, rssMiB } from './bench-run';
import { runWrk, WrkResult, WrkRun } from './wrk';

export interface LoadResult extends WrkResult {
  /** CPU cores used during the run, per node id (1.0 = one core busy all the time). */
  nodeCores: Record<string, number>;
  /** Resident memory of each node process right after the run (MiB). */
  nodeRssMiB: Record<string, number>;
  leaderId: string;
}

export async function loadCluster(cluster: ClusterHarness, run: Omit<WrkRun, 'url'>): Promise<LoadResult> {
  const leader = await cluster.waitForLeader();
  const nodes = cluster.running();
  const before = nodes.map((n) => cpuSeconds(n.proc!.pid));
  const t0 = process.hrtime.bigint();
  const r = await runWrk({ ...run, url: leader.url });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const nodeCores: Record<string, number> = {};
  nodes.forEach((n, i) => (nodeCores[n.id] = (cpuSeconds(n.proc!.pid) - before[i]) / seconds));
  const nodeRssMiB: Record<string, number> = {};
  for (const n of nodes) nodeRssMiB[n.id] = rssMiB(n.proc!.pid);
  return { ...r, nodeCores, nodeRssMiB, leaderId: leader.id };
}

/** "leader 250 / followers 240, 238" (MiB) */
export function rssNote(r: LoadResult): string {
  const followers = Object.entries(r.nodeRssMiB)
    .filter(([id]) => id !== r.leaderId)
    .map(([, m]) => m.toFixed(0));
  return `${(r.nodeRssMiB[r.leaderId] ?? NaN).toFixed(0)} / ${followers.join(', ')}`;
}

/** "leader 0.97 / followers 0.41, 0.40" */
export function coresNote(r: LoadResult): string {
  const followers = Object.entries(r.nodeCores)
    .filter(([id]) => id !== r.leaderId)
    .map(([, c]) => c.toFixed(2));
  return `${(r.nodeCores[r.leaderId] ?? NaN).toFixed(2)} / ${followers.join(', ')}`;
}
