import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mintToken, tokenLine } from '@app/config';
import { killProc, nodeMain, nodeRuntime, Proc, spawnTracked } from '../support/cluster-harness';
import { rawRequest } from './http';
import { NetnsNetwork, runRootDir } from './netns';
import { tearLogTail, TearResult } from './torn';

/**
 * Real event-store node processes, each in its own network namespace (netns.ts), started as API.md's
 * "Running a node" says through `ip netns exec <ns> node <flags from tools/node-runtime.json> main.js`
 * (`ip netns exec` execs, so the tracked PID is the node's own). Nodes listen on their namespace address
 * (HTTP :2113, Raft :2114); that is off loopback, so they get a CLUSTER_SECRET and an API token the
 * runner's clients send. Every process is tracked and ended by PID (test/support/cluster-harness.ts).
 */

export const httpPort = 2113;
export const raftPort = 2114;

export type FaultNodeState = 'running' | 'paused' | 'exited';

export interface FaultNode {
  id: string;
  ip: string;
  url: string;
  dataDir: string;
  logFile: string;
  env: Record<string, string>;
  proc: Proc | null;
  state: FaultNodeState;
  starts: number;
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

export interface FaultClusterOptions {
  nodes: number;
  /** Node logs go here (`<id>.log`), kept after the run. */
  logDir: string;
  /** Extra environment for every node. */
  env?: Record<string, string>;
}

const startTimeoutMs = 60_000;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class FaultCluster {
  readonly nodes = new Map<string, FaultNode>();
  /** The bearer token the runner's clients send (an admin token: /cluster and writes). */
  readonly token = mintToken();
  private cleaned = false;

  private constructor(
    readonly net: NetnsNetwork,
    readonly root: string,
  ) {}

  static async start(opts: FaultClusterOptions): Promise<FaultCluster> {
    if (!fs.existsSync(nodeMain)) throw new Error(`${nodeMain} is missing: run \`npm run build\` first`);
    const ids = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
    const net = await NetnsNetwork.create(ids);
    const root = runRootDir(process.pid, net.runNumber);
    fs.rmSync(root, { recursive: true, force: true });
    fs.mkdirSync(root, { recursive: true });
    fs.mkdirSync(opts.logDir, { recursive: true });
    const c = new FaultCluster(net, root);
    const secret = randomBytes(24).toString('hex');
    const initial = ids
      .map((id) => `${id}=${net.node(id).ip}:${raftPort}/http://${net.node(id).ip}:${httpPort}`)
      .join(',');
    for (const id of ids) {
      const ip = net.node(id).ip;
      const dataDir = path.join(root, id);
      c.nodes.set(id, {
        id,
        ip,
        url: `http://${ip}:${httpPort}`,
        dataDir,
        logFile: path.join(opts.logDir, `${id}.log`),
        env: {
          ...nodeRuntime.env,
          // Small segments: every new log zero-fills its first segment and a spare (64 MiB each by default).
          RAFT_SEGMENT_BYTES: String(4 * 1024 * 1024),
          // Proposals give up (504, unknown) before the clients' own timeout, so most unknowns are answered ones.
          PROPOSAL_TIMEOUT_MS: '2500',
          LOG_FORMAT: 'json',
          ...opts.env,
          NODE_ID: id,
          DATA_DIR: dataDir,
          HTTP_ADDR: `${ip}:${httpPort}`,
          RAFT_ADDR: `${ip}:${raftPort}`,
          INITIAL_CLUSTER: initial,
          CLUSTER_SECRET: secret,
          API_TOKENS: tokenLine('faults', 'admin', c.token),
        },
        proc: null,
        state: 'exited',
        starts: 0,
      });
    }
    try {
      await Promise.all(ids.map((id) => c.spawn(id)));
    } catch (err) {
      await c.cleanup();
      throw err;
    }
    return c;
  }

  node(id: string): FaultNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  ids(): string[] {
    return [...this.nodes.keys()];
  }

  private async spawn(id: string): Promise<void> {
    const n = this.node(id);
    const args = [...this.net.execPrefix(id), process.execPath, ...nodeRuntime.execArgv, nodeMain];
    fs.appendFileSync(n.logFile, `[faults] starting ${id} (start ${n.starts + 1})\n`);
    const proc = spawnTracked(id, args, n.env, n.logFile);
    n.proc = proc;
    n.state = 'running';
    n.starts++;
    void proc.exit.then(() => {
      if (n.proc === proc) n.state = 'exited';
    });
    const deadline = performance.now() + startTimeoutMs;
    for (let i = 0; i < 10_000 && performance.now() < deadline; i++) {
      if (proc.exited)
        throw new Error(`node ${id} exited during start-up; its log: ${n.logFile}\n${this.tail(id, 20)}`);
      const r = await rawRequest({
        method: 'GET',
        url: `${n.url}/health`,
        token: this.token,
        timeoutMs: 1000,
      });
      if (r.kind === 'response' && r.status === 200) return;
      await sleep(50);
    }
    throw new Error(`node ${id} did not answer /health within ${startTimeoutMs} ms; log ${n.logFile}`);
  }

  tail(id: string, lines: number): string {
    try {
      return fs.readFileSync(this.node(id).logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** kill -9 by PID; waits for the exit. */
  async kill(id: string): Promise<void> {
    const n = this.node(id);
    if (!n.proc || n.state === 'exited') return;
    await killProc(n.proc, 'SIGKILL');
    n.state = 'exited';
  }

  pause(id: string): void {
    const n = this.node(id);
    if (n.state !== 'running' || !n.proc) return;
    process.kill(n.proc.pid, 'SIGSTOP');
    n.state = 'paused';
  }

  resume(id: string): void {
    const n = this.node(id);
    if (n.state !== 'paused' || !n.proc) return;
    process.kill(n.proc.pid, 'SIGCONT');
    n.state = 'running';
  }

  /** Starts an exited node again on its DATA_DIR. */
  async restart(id: string): Promise<void> {
    const n = this.node(id);
    if (n.state !== 'exited') await this.kill(id);
    await this.spawn(id);
  }

  /** kill -9, then a torn write after the last record of the Raft log (torn.ts). The node stays down. */
  async killAndTear(id: string, seed: number): Promise<TearResult> {
    await this.kill(id);
    return tearLogTail(path.join(this.node(id).dataDir, 'raft', 'log'), seed);
  }

  /** Every node back: SIGCONT the paused, restart the dead, network healed. */
  async healAll(): Promise<void> {
    await this.net.heal();
    for (const n of this.nodes.values()) if (n.state === 'paused') this.resume(n.id);
    for (const n of this.nodes.values()) if (n.state === 'exited') await this.restart(n.id);
  }

  async view(id: string, timeoutMs = 1000): Promise<ClusterView | null> {
    const n = this.node(id);
    if (n.state !== 'running') return null;
    const r = await rawRequest({ method: 'GET', url: `${n.url}/cluster`, token: this.token, timeoutMs });
    return r.kind === 'response' && r.status === 200 ? (r.json as ClusterView) : null;
  }

  async views(timeoutMs = 1000): Promise<Map<string, ClusterView>> {
    const out = new Map<string, ClusterView>();
    const all = await Promise.all(
      this.ids().map(async (id) => [id, await this.view(id, timeoutMs)] as const),
    );
    for (const [id, v] of all) if (v) out.set(id, v);
    return out;
  }

  /** A leader every running node agrees on, within `timeoutMs`. */
  async waitLeader(timeoutMs: number): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    for (let i = 0; i < 100_000 && performance.now() < deadline; i++) {
      const views = await this.views();
      const running = this.ids().filter((id) => this.node(id).state === 'running');
      if (views.size === running.length && running.length > 0) {
        const leaders = new Set([...views.values()].map((v) => v.leaderId));
        const [leader] = [...leaders];
        if (leaders.size === 1 && leader && views.get(leader)?.role === 'leader') return leader;
      }
      await sleep(100);
    }
    throw new Error(`no leader agreed by every node within ${timeoutMs} ms`);
  }

  /**
   * Waits until every node runs and has applied the leader's commit index, and that index held still
   * across two polls (nothing in flight).
   */
  async waitConverged(timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    let previous = -1;
    for (let i = 0; i < 100_000 && performance.now() < deadline; i++) {
      const views = await this.views(2000);
      if (views.size === this.nodes.size) {
        const leader = [...views.values()].find((v) => v.role === 'leader');
        if (leader) {
          const target = leader.commitIndex;
          const all = [...views.values()].every((v) => v.appliedIndex === target && v.commitIndex === target);
          if (all && target === previous) return target;
          previous = all ? target : -1;
        }
      }
      await sleep(250);
    }
    throw new Error(`the nodes did not converge on one applied index within ${timeoutMs} ms`);
  }

  /** Ends every node by PID, removes the network and the data directories. Safe to call twice. */
  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    await Promise.all(
      [...this.nodes.values()].map(async (n) => {
        if (n.proc && !n.proc.exited) await killProc(n.proc, 'SIGKILL');
        n.state = 'exited';
      }),
    );
    await this.net.destroy();
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  /** For exit hooks: the same, synchronously (tracked processes are killed by the harness's own hook). */
  cleanupSync(): void {
    for (const n of this.nodes.values()) {
      if (n.proc && !n.proc.exited) {
        try {
          process.kill(n.proc.pid, 'SIGCONT');
          process.kill(n.proc.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    this.net.destroySync();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
