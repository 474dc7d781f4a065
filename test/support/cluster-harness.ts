import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { getJson, sleep } from './e2e-client';

/**
 * Real event-store node processes on 127.0.0.1 for the cluster and e2e suites. Runs the built app
 * (`dist/apps/event-store/src/main.js`: `npm test` builds first). Every process is ended by its PID
 * in `cleanup()`, and on process exit as a last resort.
 */

export const repoRoot = path.resolve(__dirname, '..', '..');
export const nodeMain = path.join(repoRoot, 'dist', 'apps', 'event-store', 'src', 'main.js');

const logLinesKept = 4000;
const startTimeoutMs = 60_000;
const exitTimeoutMs = 30_000;
export const leaderTimeoutMsDefault = 60_000;

export type NodeState = 'running' | 'paused' | 'exited';

export interface ClusterNode {
  id: string;
  httpPort: number;
  raftPort: number;
  url: string;
  raftAddress: string;
  dataDir: string;
  /** Environment the process was (or will be) started with. */
  env: Record<string, string>;
  child: ChildProcess | null;
  state: NodeState;
  logs: string[];
  exitCodes: (number | string | null)[];
}

export interface ClusterOptions {
  nodes: number;
  /** Extra environment for every node (TICK_MS, SNAPSHOT_EVERY_ENTRIES, …). */
  env?: Record<string, string>;
  /** Print node logs live to stderr (debugging). */
  echoLogs?: boolean;
}

export interface ClusterView {
  nodeId: string;
  role: string;
  term: number;
  leaderId: string | null;
  leaderUrl: string | null;
  commitIndex: number;
  appliedIndex: number;
  lastLogIndex: number;
  snapshot: { index: number; term: number };
  members: { id: string; httpUrl: string; raftAddress: string; voter: boolean; matchIndex?: number }[];
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) {
      try {
        if (c.pid) process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

/** Ports the OS reports free right now (held open together so they are distinct). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
      ports.push((s.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
}

/** Polls `check` until it returns a value other than undefined/false, or fails naming `what`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  opts: WaitOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  for (let attempt = 0; ; attempt++) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError ? `; last error: ${(lastError as Error).message ?? String(lastError)}` : '';
      throw new Error(`timed out after ${timeoutMs} ms (${attempt + 1} attempts) waiting for ${what}${why}`);
    }
    await sleep(Math.min(intervalMs * (1 + Math.floor(attempt / 20)), 1000));
  }
}

export class ClusterHarness {
  readonly nodes = new Map<string, ClusterNode>();
  readonly root: string;
  private readonly echo: boolean;

  private constructor(
    root: string,
    private readonly commonEnv: Record<string, string>,
    echo: boolean,
  ) {
    this.root = root;
    this.echo = echo;
  }

  /** Creates and starts `nodes` voters (n1…nN), waiting until each answers /health. */
  static async start(opts: ClusterOptions): Promise<ClusterHarness> {
    if (!fs.existsSync(nodeMain)) throw new Error(`${nodeMain} is missing: run \`npm run build\` first`);
    installExitHook();
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'es-cluster-'));
    const h = new ClusterHarness(root, opts.env ?? {}, opts.echoLogs ?? process.env.E2E_ECHO_LOGS === '1');
    const ports = await freePorts(opts.nodes * 2);
    for (let i = 0; i < opts.nodes; i++) h.define(`n${i + 1}`, ports[2 * i], ports[2 * i + 1]);
    const initial = h.initialCluster([...h.nodes.keys()]);
    for (const n of h.nodes.values()) n.env.INITIAL_CLUSTER = initial;
    try {
      await Promise.all([...h.nodes.values()].map((n) => h.spawnNode(n)));
    } catch (err) {
      await h.cleanup();
      throw err;
    }
    return h;
  }

  /** `id=raftHost:port/httpUrl,…` for the given nodes. */
  initialCluster(ids: string[]): string {
    return ids
      .map((id) => this.node(id))
      .map((n) => `${n.id}=${n.raftAddress}/${n.url}`)
      .join(',');
  }

  /** Starts a node in join mode (INITIAL_CLUSTER empty): it waits to be added with POST /cluster/members. */
  async addJoiningNode(id: string, env: Record<string, string> = {}): Promise<ClusterNode> {
    if (this.nodes.has(id)) throw new Error(`node ${id} already exists`);
    const [httpPort, raftPort] = await freePorts(2);
    const n = this.define(id, httpPort, raftPort);
    Object.assign(n.env, { INITIAL_CLUSTER: '' }, env);
    await this.spawnNode(n);
    return n;
  }

  node(id: string): ClusterNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id} in this cluster (have ${[...this.nodes.keys()].join(', ')})`);
    return n;
  }

  running(): ClusterNode[] {
    return [...this.nodes.values()].filter((n) => n.state === 'running');
  }

  urls(): string[] {
    return this.running().map((n) => n.url);
  }

  /** kill -9 (default) or another signal; waits for the exit unless the signal is SIGSTOP. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const n = this.node(id);
    if (!n.child || n.state === 'exited') return;
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') throw new Error(`use pause()/resume() for ${signal}`);
    const child = n.child;
    if (n.state === 'paused' && signal !== 'SIGKILL') child.kill('SIGCONT'); // a stopped process cannot handle SIGTERM
    const exited = this.waitExit(n);
    child.kill(signal);
    await exited;
  }

  /** SIGTERM and wait for the graceful exit (the leader hands over first). */
  async stop(id: string): Promise<number | string | null> {
    await this.kill(id, 'SIGTERM');
    return this.node(id).exitCodes.at(-1) ?? null;
  }

  pause(id: string): void {
    const n = this.node(id);
    if (n.state !== 'running' || !n.child) throw new Error(`cannot pause ${id}: it is ${n.state}`);
    n.child.kill('SIGSTOP');
    n.state = 'paused';
  }

  resume(id: string): void {
    const n = this.node(id);
    if (n.state !== 'paused' || !n.child) throw new Error(`cannot resume ${id}: it is ${n.state}`);
    n.child.kill('SIGCONT');
    n.state = 'running';
  }

  /** Starts an exited node again with the same DATA_DIR and ports. */
  async restart(id: string, env: Record<string, string> = {}): Promise<void> {
    const n = this.node(id);
    if (n.state !== 'exited') await this.kill(id);
    Object.assign(n.env, env);
    await this.spawnNode(n);
  }

  async clusterView(id: string, timeoutMs = 5000): Promise<ClusterView | null> {
    const n = this.node(id);
    if (n.state !== 'running') return null;
    try {
      const r = await getJson(`${n.url}/cluster`, timeoutMs);
      return r.status === 200 ? (r.body as ClusterView) : null;
    } catch {
      return null;
    }
  }

  /**
   * Waits until every running node (or those in `among`) names the same leader and that leader says it
   * leads. Elections under CPU load take a while: the default bound is generous.
   */
  async waitForLeader(opts: WaitOptions & { among?: string[]; not?: string } = {}): Promise<ClusterNode> {
    const leaderId = await waitFor(
      'one leader agreed by all running nodes',
      async () => {
        const ids = opts.among ?? this.running().map((n) => n.id);
        const views = await Promise.all(ids.map((id) => this.clusterView(id)));
        if (views.some((v) => v === null)) return undefined;
        const leaders = new Set(views.map((v) => v!.leaderId));
        if (leaders.size !== 1) return undefined;
        const id = views[0]!.leaderId;
        if (!id || id === opts.not || !this.nodes.has(id) || this.node(id).state !== 'running')
          return undefined;
        const lv = views.find((v) => v!.nodeId === id) ?? (await this.clusterView(id));
        return lv && lv.role === 'leader' ? id : undefined;
      },
      { timeoutMs: opts.timeoutMs ?? leaderTimeoutMsDefault, intervalMs: opts.intervalMs ?? 100 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.tail(15)}`);
    });
    return this.node(leaderId);
  }

  /** Waits until every running node has applied at least `index`. */
  async waitForApplied(index: number, opts: WaitOptions & { among?: string[] } = {}): Promise<void> {
    await waitFor(
      `applied index >= ${index} on ${opts.among?.join(',') ?? 'all running nodes'}`,
      async () => {
        const ids = opts.among ?? this.running().map((n) => n.id);
        const views = await Promise.all(ids.map((id) => this.clusterView(id)));
        return views.every((v) => v !== null && v.appliedIndex >= index);
      },
      { timeoutMs: opts.timeoutMs ?? 60_000 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.tail(15)}`);
    });
  }

  /** Log lines of `id` since its latest (re)start. */
  logsSinceStart(id: string): string[] {
    const logs = this.node(id).logs;
    for (let i = logs.length - 1; i >= 0; i--)
      if (logs[i].startsWith(`[harness] ${id} started`)) return logs.slice(i + 1);
    return logs;
  }

  /** The last lines of every node's log, for failure messages. */
  tail(lines = 30): string {
    return [...this.nodes.values()]
      .map((n) => `--- ${n.id} (${n.state}) ---\n${n.logs.slice(-lines).join('\n')}`)
      .join('\n');
  }

  /** Ends every process by PID (SIGKILL) and removes the data directories. Safe to call twice. */
  async cleanup(): Promise<void> {
    await Promise.all(
      [...this.nodes.values()].map(async (n) => {
        if (!n.child || n.state === 'exited') return;
        const exited = this.waitExit(n);
        try {
          n.child.kill('SIGCONT');
          n.child.kill('SIGKILL');
        } catch {
          /* already gone */
        }
        await exited;
      }),
    );
    if (process.env.E2E_KEEP_DATA !== '1') fs.rmSync(this.root, { recursive: true, force: true });
  }

  private define(id: string, httpPort: number, raftPort: number): ClusterNode {
    const dataDir = path.join(this.root, id);
    const n: ClusterNode = {
      id,
      httpPort,
      raftPort,
      url: `http://127.0.0.1:${httpPort}`,
      raftAddress: `127.0.0.1:${raftPort}`,
      dataDir,
      env: {
        // Small segments: each new log zero-fills its first segment and a spare (64 MiB each by default),
        // which across the suites' dozens of processes would be gigabytes of writes. Tests may override.
        RAFT_SEGMENT_BYTES: String(4 * 1024 * 1024),
        ...this.commonEnv,
        NODE_ID: id,
        DATA_DIR: dataDir,
        HTTP_ADDR: `127.0.0.1:${httpPort}`,
        RAFT_ADDR: `127.0.0.1:${raftPort}`,
      },
      child: null,
      state: 'exited',
      logs: [],
      exitCodes: [],
    };
    this.nodes.set(id, n);
    return n;
  }

  private async spawnNode(n: ClusterNode): Promise<void> {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', ...n.env };
    const child = spawn(process.execPath, [nodeMain], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (!child.pid) throw new Error(`could not start node ${n.id}`);
    live.add(child);
    n.child = child;
    n.state = 'running';
    const logFile = path.join(this.root, `${n.id}.log`);
    this.record(n, `[harness] ${n.id} started with pid ${child.pid}`, logFile);
    const onData = (stream: string) => {
      let partial = '';
      return (chunk: Buffer) => {
        const text = partial + chunk.toString('utf8');
        const lines = text.split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) this.record(n, `${stream === 'err' ? '!' : ' '}${line}`, logFile);
      };
    };
    child.stdout!.on('data', onData('out'));
    child.stderr!.on('data', onData('err'));
    child.once('exit', (code, signal) => {
      live.delete(child);
      n.exitCodes.push(code ?? signal);
      if (n.child === child) n.state = 'exited';
      this.record(n, `[harness] ${n.id} exited with ${code ?? signal}`, logFile);
    });
    await waitFor(
      `node ${n.id} to answer GET /health`,
      async () => {
        if (n.child !== child || n.state === 'exited')
          throw new Error(`node ${n.id} exited during start-up (${n.exitCodes.at(-1)})`);
        const r = await getJson(`${n.url}/health`, 2000).catch(() => null);
        return r?.status === 200;
      },
      { timeoutMs: startTimeoutMs, intervalMs: 50 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- ${n.id} log ---\n${n.logs.slice(-40).join('\n')}`);
    });
  }

  private record(n: ClusterNode, line: string, logFile: string): void {
    n.logs.push(line);
    if (n.logs.length > logLinesKept) n.logs.splice(0, n.logs.length - logLinesKept);
    if (this.echo) process.stderr.write(`[${n.id}] ${line}\n`);
    try {
      fs.appendFileSync(logFile, line + '\n');
    } catch {
      /* the root may already be removed */
    }
  }

  private waitExit(n: ClusterNode): Promise<void> {
    const child = n.child;
    if (!child || n.state === 'exited' || child.exitCode !== null || child.signalCode !== null)
      return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`node ${n.id} (pid ${child.pid}) did not exit within ${exitTimeoutMs} ms`)),
        exitTimeoutMs,
      );
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
