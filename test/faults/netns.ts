import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * The fault suite's network: one Linux network namespace per node, each with `lo` and a veth whose other
 * end is in a bridge in the root namespace. The bridge holds the gateway address; the runner's clients
 * (root namespace) reach every node through it, and nodes reach each other through it.
 *
 * Faults are iptables rules inside the receiving node's namespace, in a chain of our own (`FAULTS`, jumped
 * to from INPUT), so healing is one flush: a cut X↛Y is `-s X -j DROP` in Y's namespace, loss is the same
 * rule with the `statistic` match, and slowness is a `tbf` qdisc on the node's veth (this kernel has no
 * `netem`: delay comes from rate limiting, queueing, and TCP retransmissions after loss). Rules only ever
 * name peer node addresses, so the runner's own traffic (from the gateway address) is never dropped.
 *
 * Names derive from the runner's PID and a per-process run number (`esf<pid>-<k>-<node>` namespaces,
 * `esf<pid>k<k>…` links), so concurrent runs never clash, and `removeLeftovers` can tell which belong to
 * a run whose process is gone.
 */

export const namePrefix = 'esf';
const chain = 'FAULTS';
const commandTimeoutMs = 15_000;

export interface NetNode {
  id: string;
  ns: string;
  ip: string;
  /** The veth end in the root namespace (enslaved to the bridge). */
  hostLink: string;
}

function run(cmd: string, args: string[], timeoutMs = commandTimeoutMs): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin')
    .split(':')
    .concat(['/usr/sbin', '/sbin'])) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/**
 * What the suite needs and is missing on this machine: root, `ip` (iproute2), `iptables`, `tc`. Empty
 * when everything is there. Callers fail with these messages; the suite never passes without them.
 */
export function missingPrerequisites(): string[] {
  const missing: string[] = [];
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    missing.push(`root (network namespaces and iptables need uid 0; running as uid ${process.getuid()})`);
  if (!which('ip')) missing.push('`ip` (Debian package iproute2)');
  if (!which('iptables')) missing.push('`iptables` (Debian package iptables: apt-get install -y iptables)');
  if (!which('tc')) missing.push('`tc` (Debian package iproute2)');
  return missing;
}

export function assertPrerequisites(): void {
  const missing = missingPrerequisites();
  if (missing.length > 0)
    throw new Error(
      `the fault suite cannot run here: missing ${missing.join('; ')}. It cuts real network traffic between ` +
        'node processes with network namespaces and iptables; it never passes without them.',
    );
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Data directories of runs live here: `<tmp>/esf-<pid>-<k>`. */
export function runRootDir(pid: number, k: number): string {
  return path.join(os.tmpdir(), `${namePrefix}-${pid}-${k}`);
}

/**
 * Removes what earlier runs left when their process died without cleaning up (SIGKILL, a crash): processes
 * still inside their namespaces (killed by PID), the namespaces, their bridge and veths, their data
 * directories. Only names of this suite whose PID is no longer alive are touched. Returns what was removed.
 */
export async function removeLeftovers(): Promise<string[]> {
  const removed: string[] = [];
  const dead = (name: string, re: RegExp): boolean => {
    const m = re.exec(name);
    return m !== null && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]));
  };
  const nsRe = new RegExp(`^${namePrefix}(\\d+)-\\d+-`);
  const namespaces = (await run('ip', ['netns', 'list']).catch(() => ''))
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n) => n && dead(n, nsRe));
  for (const ns of namespaces) {
    const pids = (await run('ip', ['netns', 'pids', ns]).catch(() => ''))
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
    for (const pid of pids.slice(0, 100)) {
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
        removed.push(`process ${pid} in ${ns}`);
      } catch {
        /* gone */
      }
    }
    await run('ip', ['netns', 'delete', ns]).catch(() => undefined);
    removed.push(`namespace ${ns}`);
  }
  const linkRe = new RegExp(`^${namePrefix}(\\d+)k`);
  const links = (await run('ip', ['-o', 'link', 'show']).catch(() => ''))
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '')
    .filter((n) => n && dead(n, linkRe));
  for (const link of links) {
    await run('ip', ['link', 'delete', link]).catch(() => undefined);
    removed.push(`link ${link}`);
  }
  const dirRe = new RegExp(`^${namePrefix}-(\\d+)-\\d+$`);
  for (const name of fs.readdirSync(os.tmpdir())) {
    if (!dead(name, dirRe)) continue;
    fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
    removed.push(`directory ${path.join(os.tmpdir(), name)}`);
  }
  return removed;
}

/** The first 10.x.y.0/24 at or after the one this PID hashes to that no local interface uses. */
async function pickSubnet(pid: number, k: number): Promise<string> {
  const used = (await run('ip', ['-o', '-4', 'addr', 'show']))
    .split('\n')
    .map((l) => /inet (\d+\.\d+\.\d+)\.\d+\//.exec(l)?.[1])
    .filter((s): s is string => s !== undefined);
  const routes = await run('ip', ['-4', 'route', 'show']).catch(() => '');
  let h = (pid * 31 + k * 7919) % 25_000;
  for (let i = 0; i < 25_000; i++, h = (h + 1) % 25_000) {
    const prefix = `10.${150 + Math.floor(h / 250)}.${h % 250}`;
    if (!used.includes(prefix) && !routes.includes(`${prefix}.`)) return prefix;
  }
  throw new Error('no free 10.x.y.0/24 subnet for the fault network');
}

let runsInProcess = 0;

export class NetnsNetwork {
  readonly nodes = new Map<string, NetNode>();
  private readonly created: { namespaces: string[]; links: string[] } = { namespaces: [], links: [] };
  private slowed = new Set<string>();
  private destroyed = false;

  private constructor(
    readonly tag: string,
    readonly bridge: string,
    readonly gateway: string,
    readonly runNumber: number,
  ) {}

  /** Creates the bridge and one namespace per node id. Throws (after undoing what it made) on failure. */
  static async create(ids: string[]): Promise<NetnsNetwork> {
    assertPrerequisites();
    if (ids.length > 9) throw new Error('at most 9 nodes (interface names are bounded to 15 characters)');
    const k = ++runsInProcess;
    const tag = `${namePrefix}${process.pid}k${k}`;
    const subnet = await pickSubnet(process.pid, k);
    const net = new NetnsNetwork(tag, tag, `${subnet}.1`, k);
    try {
      await run('ip', ['link', 'add', net.bridge, 'type', 'bridge']);
      net.created.links.push(net.bridge);
      await run('ip', ['addr', 'add', `${net.gateway}/24`, 'dev', net.bridge]);
      await run('ip', ['link', 'set', net.bridge, 'up']);
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i];
        const ns = `${namePrefix}${process.pid}-${k}-${id}`;
        const hostLink = `${tag}v${i + 1}`;
        const peer = `${tag}p${i + 1}`;
        const ip = `${subnet}.${10 + i}`;
        await run('ip', ['netns', 'add', ns]);
        net.created.namespaces.push(ns);
        await run('ip', ['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', peer]);
        net.created.links.push(hostLink);
        await run('ip', ['link', 'set', peer, 'netns', ns]);
        await run('ip', ['-n', ns, 'link', 'set', peer, 'name', 'eth0']);
        await run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
        await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
        await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
        await run('ip', ['link', 'set', hostLink, 'master', net.bridge]);
        await run('ip', ['link', 'set', hostLink, 'up']);
        await run('ip', ['netns', 'exec', ns, 'iptables', '-N', chain]);
        await run('ip', ['netns', 'exec', ns, 'iptables', '-A', 'INPUT', '-j', chain]);
        net.nodes.set(id, { id, ns, ip, hostLink });
      }
    } catch (err) {
      await net.destroy();
      throw err;
    }
    return net;
  }

  node(id: string): NetNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id} in the fault network`);
    return n;
  }

  /** `ip netns exec <ns>` prefix for a command run inside a node's namespace. */
  execPrefix(id: string): string[] {
    return ['ip', 'netns', 'exec', this.node(id).ns];
  }

  private iptables(id: string, args: string[]): Promise<string> {
    return run('ip', ['netns', 'exec', this.node(id).ns, 'iptables', '-w', '5', ...args]);
  }

  /** Packets from `from` no longer reach `to` (one direction: X↛Y is a DROP in Y's namespace). */
  async cut(from: string, to: string): Promise<void> {
    await this.iptables(to, ['-A', chain, '-s', this.node(from).ip, '-j', 'DROP']);
  }

  /** Cuts both directions between every node of `a` and every node of `b`. */
  async partition(a: string[], b: string[]): Promise<void> {
    for (const x of a)
      for (const y of b) {
        await this.cut(x, y);
        await this.cut(y, x);
      }
  }

  /** Drops each packet from `from` to `to` with probability `p` (iptables `statistic` match). */
  async lossy(from: string, to: string, p: number): Promise<void> {
    await this.iptables(to, [
      '-A',
      chain,
      '-s',
      this.node(from).ip,
      '-m',
      'statistic',
      '--mode',
      'random',
      '--probability',
      p.toFixed(3),
      '-j',
      'DROP',
    ]);
  }

  /**
   * Rate-limits what node `id` sends (tbf on its veth): a small rate and a deep queue, so packets wait
   * (latency grows up to `latencyMs`) and then drop. Covers its traffic to peers and its answers to clients.
   */
  async slow(id: string, rateKbit: number, latencyMs: number): Promise<void> {
    await run('ip', [
      'netns',
      'exec',
      this.node(id).ns,
      'tc',
      'qdisc',
      'replace',
      'dev',
      'eth0',
      'root',
      'tbf',
      'rate',
      `${rateKbit}kbit`,
      'burst',
      '16kb',
      'latency',
      `${latencyMs}ms`,
    ]);
    this.slowed.add(id);
  }

  /** Every rule and qdisc of the fault chain removed: full connectivity again. */
  async heal(): Promise<void> {
    for (const n of this.nodes.values()) await this.iptables(n.id, ['-F', chain]);
    for (const id of this.slowed) {
      await run('ip', ['netns', 'exec', this.node(id).ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root']).catch(
        () => undefined,
      );
    }
    this.slowed.clear();
  }

  /** The rules in force (for the report and for tests). */
  async rules(id: string): Promise<string[]> {
    return (await this.iptables(id, ['-S', chain])).split('\n').filter((l) => l.startsWith('-A'));
  }

  /**
   * Whether a TCP connection from inside `from`'s namespace to `host:port` completes within `timeoutMs`
   * (a small node script run with `ip netns exec`): the direct proof that a cut stops traffic.
   */
  async tcpConnects(from: string, host: string, port: number, timeoutMs = 2000): Promise<boolean> {
    const script =
      `const s=require('net').connect(${port},${JSON.stringify(host)});` +
      `s.setTimeout(${timeoutMs},()=>process.exit(2));s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1));`;
    try {
      await run(
        'ip',
        ['netns', 'exec', this.node(from).ns, process.execPath, '-e', script],
        timeoutMs + 10_000,
      );
      return true;
    } catch {
      return false;
    }
  }

  /** Deletes the namespaces (their veth ends go with them) and the bridge. Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const ns of this.created.namespaces) await run('ip', ['netns', 'delete', ns]).catch(() => undefined);
    for (const link of this.created.links.reverse())
      await run('ip', ['link', 'delete', link]).catch(() => undefined);
  }

  /** Synchronous teardown for process exit hooks (no promises run there). */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const ns of this.created.namespaces) {
      try {
        execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore', timeout: commandTimeoutMs });
      } catch {
        /* gone */
      }
    }
    for (const link of this.created.links.reverse()) {
      try {
        execFileSync('ip', ['link', 'delete', link], { stdio: 'ignore', timeout: commandTimeoutMs });
      } catch {
        /* gone with its namespace */
      }
    }
  }
}
