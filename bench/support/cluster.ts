/**
 * A cluster of real event-store node processes for the benchmarks (`dist/apps/event-store/src/main.js`,
 * configured by environment variables as API.md "Running a node" says). Data directories under
 * `.bench-tmp/` on the real disk; every process is ended by its PID. With BENCH_CPU_PROF=1 each node runs
 * under `node --cpu-prof` and writes its profile into `.bench-tmp/profiles/` on a graceful stop.
 *
 * (test/support/cluster-harness.ts does much the same for the tests, but it resolves `dist/` relative to
 * its source file and keeps its data in os.tmpdir(): it does not run from `dist/bench`.)
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { getJson } from './http';
import { benchDir, killProc, Proc, repoRoot, sleep, spawnTracked, waitUntil } from './procs';

export const nodeMain = path.join(repoRoot, 'dist', 'apps', 'event-store', 'src', 'main.js');
const healthTimeoutMs = 60_000;
const leaderTimeoutMs = 60_000;

export interface BenchNode {
  id: string;
  url: string;
  raftAddress: string;
  dataDir: string;
  env: Record<string, string>;
  proc: Proc | null;
}

export interface ClusterView {
  nodeId: string;
  role: string;
  term: number;
  leaderId: string | null;
  commitIndex: number;
  appliedIndex: number;
  lastLogIndex: number;
}

/** Ports free right now (held together so they are distinct). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

export class BenchCluster {
  readonly nodes: BenchNode[] = [];
  private constructor(readonly root: string) {}

  /** Starts `size` voters n1..nN and waits until every one answers /health and they agree on a leader. */
  static async start(name: string, size: number, env: Record<string, string> = {}): Promise<BenchCluster> {
    if (!fs.existsSync(nodeMain))
      throw new Error(`bench: ${nodeMain} is missing: run \`npm run build\` first`);
    const c = new BenchCluster(benchDir(name));
    const ports = await freePorts(size * 2);
    for (let i = 0; i < size; i++) {
      const id = `n${i + 1}`;
      const dataDir = path.join(c.root, id);
      c.nodes.push({
        id,
        url: `http://127.0.0.1:${ports[2 * i]}`,
        raftAddress: `127.0.0.1:${ports[2 * i + 1]}`,
        dataDir,
        proc: null,
        env: {
          ...env,
          NODE_ID: id,
          DATA_DIR: dataDir,
          HTTP_ADDR: `127.0.0.1:${ports[2 * i]}`,
          RAFT_ADDR: `127.0.0.1:${ports[2 * i + 1]}`,
        },
      });
    }
    const initial = c.nodes.map((n) => `${n.id}=${n.raftAddress}/${n.url}`).join(',');
    for (const n of c.nodes) n.env.INITIAL_CLUSTER = initial;
    await Promise.all(c.nodes.map((n) => c.spawn(n.id)));
    await c.waitLeader();
    return c;
  }

  node(id: string): BenchNode {
    const n = this.nodes.find((m) => m.id === id);
    if (!n) throw new Error(`bench: no node ${id}`);
    return n;
  }

  running(): BenchNode[] {
    return this.nodes.filter((n) => n.proc && !n.proc.exited);
  }

  /** Starts the node's process (same DATA_DIR and ports as before); resolves when it answers /health. */
  async spawn(id: string): Promise<void> {
    const n = this.node(id);
    if (n.proc && !n.proc.exited) throw new Error(`bench: ${id} is already running (pid ${n.proc.pid})`);
    const args = [process.execPath];
    if (process.env.BENCH_CPU_PROF === '1') {
      const dir = path.join(repoRoot, '.bench-tmp', 'profiles');
      fs.mkdirSync(dir, { recursive: true });
      args.push('--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${id}-${Date.now()}.cpuprofile`);
    }
    // BENCH_NODE_ARGS: extra node flags for every node process (e.g. --perf-basic-prof for `perf record`).
    if (process.env.BENCH_NODE_ARGS) args.push(...process.env.BENCH_NODE_ARGS.split(' ').filter(Boolean));
    args.push(nodeMain);
    const proc = spawnTracked(id, args, n.env, path.join(this.root, `${id}.log`));
    n.proc = proc;
    await waitUntil(
      `${id} to answer GET /health`,
      async () => {
        if (proc.exited) throw new Error(`bench: ${id} exited during start-up:\n${this.tail(id)}`);
        return (await getJson(`${n.url}/health`, 2000)).status === 200;
      },
      healthTimeoutMs,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.tail(id)}`);
    });
  }

  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.node(id).proc;
    if (p) await killProc(p, signal);
  }

  async view(id: string, timeoutMs = 3000): Promise<ClusterView | null> {
    try {
      const r = await getJson(`${this.node(id).url}/cluster`, timeoutMs);
      return r.status === 200 ? (r.body as ClusterView) : null;
    } catch {
      return null;
    }
  }

  /** Waits until every running node names the same running leader, which says it leads. */
  async waitLeader(timeoutMs = leaderTimeoutMs): Promise<BenchNode> {
    let leader: BenchNode | null = null;
    await waitUntil(
      'one leader agreed by all running nodes',
      async () => {
        const views = await Promise.all(this.running().map((n) => this.view(n.id)));
        if (views.length === 0 || views.some((v) => v === null)) return false;
        const ids = new Set(views.map((v) => v!.leaderId));
        const id = views[0]!.leaderId;
        const lv = views.find((v) => v!.nodeId === id);
        if (ids.size !== 1 || !id || !lv || lv.role !== 'leader') return false;
        leader = this.node(id);
        return true;
      },
      timeoutMs,
      50,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.nodes.map((n) => this.tail(n.id, 10)).join('\n')}`);
    });
    return leader!;
  }

  /** Polls GET /ready every `intervalMs` until 200. */
  async waitReady(id: string, timeoutMs = 120_000, intervalMs = 10): Promise<void> {
    const n = this.node(id);
    await waitUntil(
      `${id} GET /ready = 200`,
      async () => (await getJson(`${n.url}/ready`, 2000)).status === 200,
      timeoutMs,
      intervalMs,
    );
  }

  /**
   * kill -9 the given nodes, then start them again together; for each, ms from the spawn until its process
   * was started (the spawn answers on GET /health) and until GET /ready answered 200.
   */
  async restartTimed(ids: string[], readyTimeoutMs: number): Promise<{ health: number; ready: number }[]> {
    await Promise.all(ids.map((id) => this.kill(id, 'SIGKILL')));
    const t0 = performance.now();
    return Promise.all(
      ids.map(async (id) => {
        await this.spawn(id);
        const health = performance.now() - t0;
        await this.waitReady(id, readyTimeoutMs);
        return { health, ready: performance.now() - t0 };
      }),
    );
  }

  /** Waits until every running node has applied at least what the leader had committed when this was called. */
  async waitCaughtUp(timeoutMs = 300_000): Promise<void> {
    const leader = await this.waitLeader();
    const lv = await this.view(leader.id);
    const target = lv?.commitIndex ?? 0;
    await waitUntil(
      `all nodes applied >= ${target}`,
      async () =>
        (await Promise.all(this.running().map((n) => this.view(n.id)))).every(
          (v) => v !== null && v.appliedIndex >= target,
        ),
      timeoutMs,
      100,
    );
  }

  tail(id: string, lines = 30): string {
    try {
      const text = fs
        .readFileSync(path.join(this.root, `${id}.log`), 'utf8')
        .trimEnd()
        .split('\n');
      return `--- ${id} log (last ${lines} lines) ---\n${text.slice(-lines).join('\n')}`;
    } catch {
      return `--- ${id}: no log ---`;
    }
  }

  /** SIGTERM (graceful: profiles get written) or SIGKILL every running node. */
  async stopAll(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await Promise.all(this.running().map((n) => this.kill(n.id, signal)));
    await sleep(10);
  }

  /**
   * Kills every node by PID, keeps the nodes' logs in `.bench-tmp/logs-<name>/` (replacing the previous
   * run's) and removes the data directory (unless BENCH_KEEP_DATA=1).
   */
  async cleanup(): Promise<void> {
    await this.stopAll(process.env.BENCH_CPU_PROF === '1' ? 'SIGTERM' : 'SIGKILL');
    const logsDir = path.join(
      repoRoot,
      '.bench-tmp',
      `logs-${path.basename(this.root).replace(/-\d+$/, '')}`,
    );
    fs.rmSync(logsDir, { recursive: true, force: true });
    fs.mkdirSync(logsDir, { recursive: true });
    for (const n of this.nodes) {
      const log = path.join(this.root, `${n.id}.log`);
      if (fs.existsSync(log)) fs.copyFileSync(log, path.join(logsDir, `${n.id}.log`));
    }
    if (process.env.BENCH_KEEP_DATA !== '1') fs.rmSync(this.root, { recursive: true, force: true });
  }
}
