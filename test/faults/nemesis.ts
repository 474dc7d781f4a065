import { FaultCluster, sleep } from './cluster';
import { Prng } from './prng';

/**
 * The nemesis: on a seeded schedule, healthy periods alternate with faults (each 3-8 s by default); every
 * fault is healed at the end of its period and everything is healed at the end. A leader monitor polls
 * GET /cluster on every reachable node meanwhile, so each fault gets the time until a new leader.
 */

export const faultKinds = ['kill', 'pause', 'partition', 'oneway', 'bridge', 'loss', 'slow', 'torn'] as const;
export type FaultKind = (typeof faultKinds)[number];

export interface FaultRecord {
  n: number;
  kind: FaultKind;
  /** What exactly was done (targets, halves, rates). */
  detail: string;
  targets: string[];
  /** When the fault was fully in effect (every rule in place, the process killed or stopped): measures start here. */
  startMs: number;
  /** When injecting it began (a partition of 5 nodes takes a dozen iptables commands). */
  injectStartMs: number;
  /** When the heal began (ms since the run started); null if it never was (harness error). */
  healMs: number | null;
  /** When the heal was done (restarted nodes answer /health). */
  healedMs: number | null;
  leaderBefore: string | null;
  termBefore: number;
  /**
   * ms from injectStartMs (a kill takes effect at once; followers see the leader's Raft port refuse and
   * campaign early) until a poll, started after it, saw a leader other than leaderBefore or of a higher
   * term; null: none.
   */
  newLeaderAfterMs: number | null;
  newLeader: string | null;
  error?: string;
}

export interface LeaderSample {
  t: number;
  leader: string | null;
  term: number;
}

export interface NemesisOptions {
  kinds: FaultKind[];
  seed: number;
  now: () => number;
  healthyMs?: [number, number];
  faultMs?: [number, number];
}

export class Nemesis {
  readonly faults: FaultRecord[] = [];
  readonly samples: LeaderSample[] = [];
  private readonly prng: Prng;
  private stopMonitor = false;
  private monitor: Promise<void> | null = null;

  constructor(
    private readonly cluster: FaultCluster,
    private readonly opts: NemesisOptions,
  ) {
    if (opts.kinds.length === 0) throw new Error('the nemesis needs at least one fault kind');
    this.prng = new Prng(opts.seed);
  }

  /** The leader now: the highest-term node that says it leads, if no node knows a higher term. */
  async currentLeader(): Promise<{ leader: string | null; term: number }> {
    const views = await this.cluster.views(700);
    let maxTerm = 0;
    for (const v of views.values()) maxTerm = Math.max(maxTerm, v.term);
    const leaders = [...views.values()].filter((v) => v.role === 'leader' && v.term === maxTerm);
    return { leader: leaders.length === 1 ? leaders[0].nodeId : null, term: maxTerm };
  }

  startMonitor(): void {
    this.monitor = (async () => {
      for (let i = 0; i < 1_000_000 && !this.stopMonitor; i++) {
        // Stamped when the poll starts: a view asked for before a fault must not count as seen after it.
        const t = this.opts.now();
        const { leader, term } = await this.currentLeader();
        this.samples.push({ t, leader, term });
        await sleep(150);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopMonitor = true;
    await this.monitor;
  }

  /** Runs the schedule for `durationMs` of the run's clock, then heals everything. */
  async run(durationMs: number, log: (line: string) => void): Promise<void> {
    const [hLo, hHi] = this.opts.healthyMs ?? [3000, 8000];
    const [fLo, fHi] = this.opts.faultMs ?? [3000, 8000];
    const end = this.opts.now() + durationMs;
    for (let n = 1; n <= 10_000; n++) {
      const healthy = this.prng.int(hLo, hHi);
      if (this.opts.now() + healthy + 1000 >= end) break;
      await sleep(healthy);
      const kind = this.prng.pick(this.opts.kinds);
      const length = Math.min(this.prng.int(fLo, fHi), end - this.opts.now());
      if (length < fLo) break; // a shortened pause would not outlast the election timeout
      const before = await this.currentLeader();
      const rec: FaultRecord = {
        n,
        kind,
        detail: '',
        targets: [],
        startMs: this.opts.now(),
        injectStartMs: this.opts.now(),
        healMs: null,
        healedMs: null,
        leaderBefore: before.leader,
        termBefore: before.term,
        newLeaderAfterMs: null,
        newLeader: null,
      };
      this.faults.push(rec);
      let heal: () => Promise<void> = async () => undefined;
      try {
        heal = await this.inject(rec, before.leader);
        rec.startMs = this.opts.now();
        log(`fault ${n} at ${(rec.startMs / 1000).toFixed(1)} s: ${kind}: ${rec.detail}`);
        await sleep(length);
      } catch (err) {
        rec.error = (err as Error).message;
        log(`fault ${n} (${kind}) could not be injected: ${rec.error}`);
      }
      rec.healMs = this.opts.now();
      try {
        await heal();
        await this.cluster.net.heal();
      } catch (err) {
        rec.error = `${rec.error ? `${rec.error}; ` : ''}heal: ${(err as Error).message}`;
        log(`fault ${n} (${kind}) heal failed: ${(err as Error).message}`);
      }
      rec.healedMs = this.opts.now();
    }
    await this.cluster.healAll();
  }

  /** Fills in each fault's time to a new leader from the monitor's samples (call after the run). */
  measure(): void {
    for (let k = 0; k < this.faults.length; k++) {
      const f = this.faults[k];
      const until = k + 1 < this.faults.length ? this.faults[k + 1].startMs : Infinity;
      const s = this.samples.find(
        (x) =>
          x.t >= f.injectStartMs &&
          x.t < until &&
          x.leader !== null &&
          (x.leader !== f.leaderBefore || x.term > f.termBefore),
      );
      if (s) {
        f.newLeaderAfterMs = s.t - f.injectStartMs;
        f.newLeader = s.leader;
      }
    }
  }

  private pickTarget(leader: string | null): string {
    const ids = this.cluster.ids();
    return leader !== null && this.prng.next() < 0.5 ? leader : this.prng.pick(ids);
  }

  /** Applies one fault; returns what heals it. */
  private async inject(rec: FaultRecord, leader: string | null): Promise<() => Promise<void>> {
    const c = this.cluster;
    const ids = c.ids();
    const lead = leader ?? this.prng.pick(ids);
    const others = (xs: string[]) => ids.filter((id) => !xs.includes(id));
    switch (rec.kind) {
      case 'kill': {
        const t = this.pickTarget(leader);
        rec.targets = [t];
        rec.detail = `kill -9 ${t}${t === leader ? ' (leader)' : ''}, restart at heal`;
        await c.kill(t);
        return () => c.restart(t);
      }
      case 'torn': {
        const t = this.pickTarget(leader);
        rec.targets = [t];
        const tear = await c.killAndTear(t, this.prng.int(1, 1_000_000));
        rec.detail =
          `kill -9 ${t}${t === leader ? ' (leader)' : ''}, then a torn write at the log tail: ${tear.how}` +
          ` at offset ${tear.offset} of ${tear.segment?.split('/').pop() ?? '-'} (claims index ${tear.index}); restart at heal`;
        return () => c.restart(t);
      }
      case 'pause': {
        const t = this.pickTarget(leader);
        rec.targets = [t];
        rec.detail = `SIGSTOP ${t}${t === leader ? ' (leader)' : ''}, SIGCONT at heal`;
        c.pause(t);
        return async () => c.resume(t);
      }
      case 'partition': {
        if (this.prng.next() < 0.5) {
          rec.targets = [lead];
          rec.detail = `isolate ${lead}${lead === leader ? ' (leader)' : ''} from ${others([lead]).join(',')}`;
          await c.net.partition([lead], others([lead]));
        } else {
          const shuffled = this.prng.shuffle(ids);
          const minority = shuffled.slice(0, this.prng.int(1, Math.floor((ids.length - 1) / 2)));
          rec.targets = minority;
          rec.detail = `halves: minority ${minority.join(',')} | majority ${others(minority).join(',')}`;
          await c.net.partition(minority, others(minority));
        }
        return async () => undefined;
      }
      case 'bridge': {
        // Two halves that cannot see each other but both see the middle node (3 nodes: 1 | middle | 1).
        const shuffled = this.prng.shuffle(ids);
        const middle = shuffled[0];
        const rest = shuffled.slice(1);
        const a = rest.slice(0, Math.floor(rest.length / 2));
        const b = rest.slice(Math.floor(rest.length / 2));
        rec.targets = [middle];
        rec.detail = `bridge: ${a.join(',')} | ${b.join(',')} cut apart, both see ${middle}`;
        await c.net.partition(a, b);
        return async () => undefined;
      }
      case 'oneway': {
        rec.targets = [lead];
        if (this.prng.next() < 0.5) {
          rec.detail = `one-way: ${lead}${lead === leader ? ' (leader)' : ''} → others dropped (its outbound cut)`;
          for (const o of others([lead])) await c.net.cut(lead, o);
        } else {
          rec.detail = `one-way: others → ${lead}${lead === leader ? ' (leader)' : ''} dropped (its inbound cut)`;
          for (const o of others([lead])) await c.net.cut(o, lead);
        }
        return async () => undefined;
      }
      case 'loss': {
        const p = 0.2 + this.prng.next() * 0.2;
        rec.targets = ids;
        rec.detail = `${Math.round(p * 100)}% packet loss on every peer link`;
        for (const x of ids) for (const y of ids) if (x !== y) await c.net.lossy(x, y, p);
        return async () => undefined;
      }
      case 'slow': {
        const n = this.prng.int(1, ids.length);
        const targets = this.prng.shuffle(ids).slice(0, n);
        const rate = this.prng.pick([64, 128, 256, 512]);
        const latency = this.prng.int(200, 1000);
        rec.targets = targets;
        rec.detail = `slow links: ${targets.join(',')} send at ${rate} kbit/s (tbf, queue up to ${latency} ms)`;
        for (const t of targets) await c.net.slow(t, rate, latency);
        return async () => undefined;
      }
    }
  }
}
