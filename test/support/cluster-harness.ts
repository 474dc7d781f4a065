import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { waitFor, WaitOptions } from '@app/consensus/testing';
import { getJson, HttpResult, requestTls } from './e2e-client';

/**
 * Real event-store node processes on 127.0.0.1: the one process-cluster harness of the e2e suites (test/)
 * and the benchmarks (bench/, through bench/support/bench-run.ts). Runs the built app
 * (`dist/apps/event-store/src/main.js`: `npm test` and the `bench*` scripts build first). Every child
 * process is tracked and ended by its PID: in `cleanup()`, and on process exit as a last resort.
 *
 * It lives in test/support because it drives the product as processes (it is not a library's test
 * tooling): the benchmarks run from TypeScript too and import it from here; no library may.
 */

export const repoRoot = path.resolve(__dirname, '..', '..');
export const nodeMain = path.join(repoRoot, 'dist', 'apps', 'event-store', 'src', 'main.js');

/** Node flags and environment a node starts with, as `npm run node` and `npm start` do (tools/node-runtime.json). */
export const nodeRuntime = JSON.parse(
  fs.readFileSync(path.join(repoRoot, 'tools', 'node-runtime.json'), 'utf8'),
) as { execArgv: string[]; env: Record<string, string> };

const logLinesKept = 4000;
const startTimeoutMs = 60_000;
const exitTimeoutMs = 30_000;
export const leaderTimeoutMsDefault = 60_000;
/** Small segments: each new log zero-fills its first segment and a spare (64 MiB each by default). */
const testSegmentBytes = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------------------
// Processes

/** A child process tracked by PID: killed (SIGKILL) when this process exits, whatever happened. */
export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  /** Resolves with the exit code (or the signal's name). */
  exit: Promise<number | string | null>;
  exited: boolean;
  logFile: string;
}

const live = new Set<Proc>();
let exitHookInstalled = false;

/** SIGKILL (after SIGCONT, for a paused one) every tracked process that is still running. */
export function killAllTracked(): number {
  const n = live.size;
  for (const p of live) {
    try {
      process.kill(p.pid, 'SIGCONT');
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  return n;
}

/** Registers a child started elsewhere so that it is killed by PID when this process ends. */
export function trackChild(name: string, child: ChildProcess, logFile = ''): Proc {
  if (!child.pid) throw new Error(`could not start ${name} (${child.spawnargs.join(' ')})`);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', killAllTracked);
  }
  const p: Proc = { name, pid: child.pid, child, exited: false, logFile, exit: Promise.resolve(null) };
  p.exit = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      p.exited = true;
      live.delete(p);
      resolve(code ?? signal);
    });
  });
  live.add(p);
  return p;
}

/** Starts a tracked process (`args[0]` is the executable); stdout and stderr are appended to `logFile`. */
export function spawnTracked(
  name: string,
  args: string[],
  env: Record<string, string>,
  logFile: string,
): Proc {
  const out = fs.openSync(logFile, 'a');
  const child = spawn(args[0], args.slice(1), {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  return trackChild(name, child, logFile);
}

/** Sends `signal` by PID and waits for the exit; SIGKILL if it has not exited within `timeoutMs`. */
export async function killProc(
  p: Proc,
  signal: NodeJS.Signals = 'SIGKILL',
  timeoutMs = exitTimeoutMs,
): Promise<void> {
  if (p.exited) return;
  try {
    process.kill(p.pid, signal);
  } catch {
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
  const outcome = await Promise.race([p.exit, timeout]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    try {
      process.kill(p.pid, 'SIGCONT');
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
    await p.exit;
  }
}

/** User + system CPU seconds a live process has used so far (Linux /proc), or NaN. */
export function cpuSeconds(pid: number): number {
  const clockTicksPerS = 100;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicksPerS;
  } catch {
    return NaN;
  }
}

/** Resident set size of a process in MiB (NaN once it is gone). */
export function rssMiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
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

// ---------------------------------------------------------------------------------------------------------
// The cluster

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
  /** The current (or last) process. */
  proc: Proc | null;
  state: NodeState;
  /** Output lines (output 'pipe' only; with 'file' read `logLines(id)`). */
  logs: string[];
  exitCodes: (number | string | null)[];
}

export interface ClusterOptions {
  nodes: number;
  /** Extra environment for every node (TICK_MS, SNAPSHOT_EVERY_ENTRIES, …). */
  env?: Record<string, string>;
  /** Print node logs live to stderr (debugging; output 'pipe' only). Also with E2E_ECHO_LOGS=1. */
  echoLogs?: boolean;
  /** Data directories and `<id>.log` files go here (default: a fresh directory in os.tmpdir()). */
  root?: string;
  /**
   * RAFT_SEGMENT_BYTES for every node unless `env` sets it. Default 4 MiB: across the suites' dozens of
   * processes the default 64 MiB segments would be gigabytes of zero-fill. null: the node's own default.
   */
  segmentBytes?: number | null;
  /** Node flags before main.js (e.g. --cpu-prof), per node id. */
  nodeArgs?: (id: string) => string[];
  /**
   * 'pipe' (default): output read line by line into `logs` and `<root>/<id>.log`, stderr lines marked
   * with '!'. 'file': written by the node straight into `<root>/<id>.log` (never read by this process,
   * so a busy benchmark cannot stall a node on a full pipe).
   */
  output?: 'pipe' | 'file';
  /** Keep the data directories after `cleanup()` (default: E2E_KEEP_DATA=1). */
  keepData?: boolean;
  /** Bearer token the harness itself sends (/cluster, /ready) to nodes started with tokens (`env.TOKENS_FILE`…). */
  token?: string;
  /**
   * Nodes serve HTTPS (and Raft over TLS): TLS_CERT_FILE/TLS_KEY_FILE/TLS_CA_FILE are set from these files,
   * node URLs are https://, and the harness trusts `ca` (PEM) for its own requests.
   */
  tls?: { certFile: string; keyFile: string; caFile: string; ca: Buffer };
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

export interface CleanupOptions {
  /** SIGKILL (default), or SIGTERM for a graceful stop (CPU profiles get written); SIGKILL after 30 s. */
  signal?: NodeJS.Signals;
  /** Copy every node's `<id>.log` into this directory (replacing what it held) before removing the root. */
  keepLogsIn?: string;
}

export class ClusterHarness {
  readonly nodes = new Map<string, ClusterNode>();
  readonly root: string;
  private readonly echo: boolean;

  private constructor(
    root: string,
    private readonly opts: ClusterOptions,
  ) {
    this.root = root;
    this.echo = opts.output !== 'file' && (opts.echoLogs ?? process.env.E2E_ECHO_LOGS === '1');
  }

  /** Creates and starts `nodes` voters (n1…nN), waiting until each answers /health. */
  static async start(opts: ClusterOptions): Promise<ClusterHarness> {
    if (!fs.existsSync(nodeMain)) throw new Error(`${nodeMain} is missing: run \`npm run build\` first`);
    const root = opts.root ?? fs.mkdtempSync(path.join(os.tmpdir(), 'es-cluster-'));
    fs.mkdirSync(root, { recursive: true });
    const h = new ClusterHarness(root, opts);
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

  /** Every node, running or not, in the order they were defined. */
  all(): ClusterNode[] {
    return [...this.nodes.values()];
  }

  running(): ClusterNode[] {
    return this.all().filter((n) => n.state === 'running');
  }

  urls(): string[] {
    return this.running().map((n) => n.url);
  }

  /** kill -9 (default) or another signal; waits for the exit. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const n = this.node(id);
    const p = n.proc;
    if (!p || n.state === 'exited' || p.exited) return;
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') throw new Error(`use pause()/resume() for ${signal}`);
    if (n.state === 'paused' && signal !== 'SIGKILL') p.child.kill('SIGCONT'); // a stopped process cannot handle SIGTERM
    const exited = this.waitExit(n);
    p.child.kill(signal);
    await exited;
  }

  /** SIGTERM and wait for the graceful exit (the leader hands over first). */
  async stop(id: string): Promise<number | string | null> {
    await this.kill(id, 'SIGTERM');
    return this.node(id).exitCodes.at(-1) ?? null;
  }

  pause(id: string): void {
    const n = this.node(id);
    if (n.state !== 'running' || !n.proc) throw new Error(`cannot pause ${id}: it is ${n.state}`);
    n.proc.child.kill('SIGSTOP');
    n.state = 'paused';
  }

  resume(id: string): void {
    const n = this.node(id);
    if (n.state !== 'paused' || !n.proc) throw new Error(`cannot resume ${id}: it is ${n.state}`);
    n.proc.child.kill('SIGCONT');
    n.state = 'running';
  }

  /** Starts an exited node again (kill -9 first if it runs) with the same DATA_DIR and ports. */
  async restart(id: string, env: Record<string, string> = {}): Promise<void> {
    const n = this.node(id);
    if (n.state !== 'exited') await this.kill(id);
    Object.assign(n.env, env);
    await this.spawnNode(n);
  }

  /**
   * kill -9 the given nodes, then starts them again together; for each, ms from the kill until it
   * answered GET /health and until GET /ready answered 200.
   */
  async restartTimed(ids: string[], readyTimeoutMs: number): Promise<{ health: number; ready: number }[]> {
    await Promise.all(ids.map((id) => this.kill(id, 'SIGKILL')));
    const t0 = performance.now();
    return Promise.all(
      ids.map(async (id) => {
        await this.restart(id);
        const health = performance.now() - t0;
        await this.waitReady(id, readyTimeoutMs);
        return { health, ready: performance.now() - t0 };
      }),
    );
  }

  async clusterView(id: string, timeoutMs = 5000): Promise<ClusterView | null> {
    const n = this.node(id);
    if (n.state !== 'running') return null;
    try {
      const r = await this.get(`${n.url}/cluster`, timeoutMs);
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
        if (ids.length === 0) return undefined;
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
      { ...opts, timeoutMs: opts.timeoutMs ?? leaderTimeoutMsDefault },
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
      { ...opts, timeoutMs: opts.timeoutMs ?? 60_000 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.tail(15)}`);
    });
  }

  /** Waits until every running node has applied what the leader had committed when this was called. */
  async waitCaughtUp(timeoutMs = 300_000): Promise<void> {
    const leader = await this.waitForLeader();
    const target = (await this.clusterView(leader.id))?.commitIndex ?? 0;
    await this.waitForApplied(target, { timeoutMs });
  }

  /** Polls GET /ready every `intervalMs` (no backoff: restart times are measured with it) until 200. */
  async waitReady(id: string, timeoutMs = 120_000, intervalMs = 10): Promise<void> {
    const n = this.node(id);
    await waitFor(
      `${id} GET /ready = 200`,
      async () => (await this.get(`${n.url}/ready`, 2000)).status === 200,
      {
        timeoutMs,
        intervalMs,
        backoff: false,
      },
    );
  }

  /** Every output line of `id` kept so far (from memory, or from its log file with output 'file'). */
  logLines(id: string): string[] {
    const n = this.node(id);
    if (this.opts.output !== 'file') return n.logs;
    try {
      return fs.readFileSync(this.logFile(n), 'utf8').trimEnd().split('\n');
    } catch {
      return [];
    }
  }

  /** Log lines of `id` since its latest (re)start. */
  logsSinceStart(id: string): string[] {
    const logs = this.logLines(id);
    for (let i = logs.length - 1; i >= 0; i--)
      if (logs[i].startsWith(`[harness] ${id} started`)) return logs.slice(i + 1);
    return logs;
  }

  /** The last lines of every node's log (or of `only`), for failure messages. */
  tail(lines = 30, only?: string): string {
    return this.all()
      .filter((n) => only === undefined || n.id === only)
      .map((n) => `--- ${n.id} (${n.state}) ---\n${this.logLines(n.id).slice(-lines).join('\n')}`)
      .join('\n');
  }

  /**
   * Ends every process by PID and removes the root with the data directories (unless `keepData`).
   * Safe to call twice.
   */
  async cleanup(opts: CleanupOptions = {}): Promise<void> {
    const signal = opts.signal ?? 'SIGKILL';
    await Promise.all(
      this.all().map(async (n) => {
        const p = n.proc;
        if (!p || n.state === 'exited' || p.exited) return;
        if (signal !== 'SIGKILL') p.child.kill('SIGCONT');
        await killProc(p, signal);
      }),
    );
    if (opts.keepLogsIn) {
      fs.rmSync(opts.keepLogsIn, { recursive: true, force: true });
      fs.mkdirSync(opts.keepLogsIn, { recursive: true });
      for (const n of this.nodes.values())
        if (fs.existsSync(this.logFile(n)))
          fs.copyFileSync(this.logFile(n), path.join(opts.keepLogsIn, `${n.id}.log`));
    }
    if (!(this.opts.keepData ?? process.env.E2E_KEEP_DATA === '1'))
      fs.rmSync(this.root, { recursive: true, force: true });
  }

  /** GET with the harness's token and CA (plain fetch when it has neither). */
  get(url: string, timeoutMs: number): Promise<HttpResult> {
    if (!this.opts.token && !this.opts.tls) return getJson(url, timeoutMs);
    return requestTls('GET', url, {
      timeoutMs,
      ca: this.opts.tls?.ca,
      headers: this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {},
    });
  }

  private define(id: string, httpPort: number, raftPort: number): ClusterNode {
    const dataDir = path.join(this.root, id);
    const segmentBytes = this.opts.segmentBytes === undefined ? testSegmentBytes : this.opts.segmentBytes;
    const n: ClusterNode = {
      id,
      httpPort,
      raftPort,
      url: `${this.opts.tls ? 'https' : 'http'}://127.0.0.1:${httpPort}`,
      raftAddress: `127.0.0.1:${raftPort}`,
      dataDir,
      env: {
        ...(segmentBytes === null ? {} : { RAFT_SEGMENT_BYTES: String(segmentBytes) }),
        ...(this.opts.tls
          ? {
              TLS_CERT_FILE: this.opts.tls.certFile,
              TLS_KEY_FILE: this.opts.tls.keyFile,
              TLS_CA_FILE: this.opts.tls.caFile,
            }
          : {}),
        ...this.opts.env,
        NODE_ID: id,
        DATA_DIR: dataDir,
        HTTP_ADDR: `127.0.0.1:${httpPort}`,
        RAFT_ADDR: `127.0.0.1:${raftPort}`,
      },
      proc: null,
      state: 'exited',
      logs: [],
      exitCodes: [],
    };
    this.nodes.set(id, n);
    return n;
  }

  private logFile(n: ClusterNode): string {
    return path.join(this.root, `${n.id}.log`);
  }

  private async spawnNode(n: ClusterNode): Promise<void> {
    const args = [process.execPath, ...nodeRuntime.execArgv, ...(this.opts.nodeArgs?.(n.id) ?? []), nodeMain];
    const env = { ...nodeRuntime.env, ...n.env };
    const logFile = this.logFile(n);
    let proc: Proc;
    if (this.opts.output === 'file') {
      proc = spawnTracked(n.id, args, env, logFile);
    } else {
      const child = spawn(args[0], args.slice(1), {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      proc = trackChild(n.id, child, logFile);
    }
    n.proc = proc;
    n.state = 'running';
    this.record(n, `[harness] ${n.id} started with pid ${proc.pid}`);
    if (this.opts.output !== 'file') {
      const onData = (stream: string) => {
        let partial = '';
        return (chunk: Buffer) => {
          const text = partial + chunk.toString('utf8');
          const lines = text.split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) this.record(n, `${stream === 'err' ? '!' : ' '}${line}`);
        };
      };
      proc.child.stdout!.on('data', onData('out'));
      proc.child.stderr!.on('data', onData('err'));
    }
    void proc.exit.then((codeOrSignal) => {
      n.exitCodes.push(codeOrSignal);
      if (n.proc === proc) n.state = 'exited';
      this.record(n, `[harness] ${n.id} exited with ${codeOrSignal}`);
    });
    await waitFor(
      `node ${n.id} to answer GET /health`,
      async () => {
        if (n.proc !== proc || proc.exited)
          throw new Error(`node ${n.id} exited during start-up (${n.exitCodes.at(-1)})`);
        const r = await this.get(`${n.url}/health`, 2000).catch(() => null);
        return r?.status === 200;
      },
      { timeoutMs: startTimeoutMs, intervalMs: 20, backoff: false },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- ${n.id} log ---\n${this.logLines(n.id).slice(-40).join('\n')}`);
    });
  }

  private record(n: ClusterNode, line: string): void {
    if (this.opts.output !== 'file') {
      n.logs.push(line);
      if (n.logs.length > logLinesKept) n.logs.splice(0, n.logs.length - logLinesKept);
      if (this.echo) process.stderr.write(`[${n.id}] ${line}\n`);
    }
    try {
      fs.appendFileSync(this.logFile(n), line + '\n');
    } catch {
      /* the root may already be removed */
    }
  }

  private waitExit(n: ClusterNode): Promise<void> {
    const p = n.proc;
    if (!p || n.state === 'exited' || p.exited) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`node ${n.id} (pid ${p.pid}) did not exit within ${exitTimeoutMs} ms`)),
        exitTimeoutMs,
      );
      void p.exit.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
