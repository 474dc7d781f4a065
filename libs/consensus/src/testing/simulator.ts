import { promiseHooks } from 'node:v8';
import { MembershipChange } from '../core/api';
import { Message } from '../core/messages';
import {
  ConfigState,
  Entry,
  EntryType,
  MemberAddress,
  NodeId,
  decodeConfig,
  emptyConfig,
} from '../core/types';
import { ClusterChecker, Violation } from './checkers';
import { configText, encodeWrite } from './counter-state-machine';
import { RELIABLE_NETWORK, SimNetwork } from './network';
import { Prng } from './prng';
import { Scenario, describeScenario } from './scenario';
import { Scheduler } from './scheduler';
import { CoreFactory, NodeHost, SimNode, describeError } from './sim-node';
import { TraceRing } from './trace';

export interface SimOptions {
  scenario: Scenario;
  makeCore: CoreFactory;
  /** Print every event as it happens. */
  liveTrace?: (line: string) => void;
  /** Events kept for the failure report. */
  traceTail?: number;
  /** Events between two real event-loop turns (default MACROTASK_EVERY_EVENTS; 1 = a turn after every event). */
  macrotaskEveryEvents?: number;
}

export interface SimStats {
  virtualMs: number;
  events: number;
  leaders: number;
  committedEntries: number;
  acknowledgedWrites: number;
  reads: number;
  crashes: number;
  partitions: number;
  membershipChanges: number;
  transfers: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  messages: number;
  livenessMs: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  violation: Violation | null;
  stats: SimStats;
  /** The last events before the failure (empty when ok). */
  trace: string[];
  replay: string;
}

type SimEvent =
  /** The node's own work: a timer, deferred work (setImmediate), an fsync completing. */
  | { k: 'node'; id: NodeId; inc: number; fn: () => void }
  | { k: 'deliver'; m: Message }
  | { k: 'restart'; id: NodeId }
  | { k: 'stop'; id: NodeId }
  | { k: 'crash' }
  | { k: 'crashNode'; id: NodeId }
  /** `to`'s transport finds `about`'s Raft port refusing connections (RaftNode's fast-failover hint). */
  | { k: 'peerGone'; to: NodeId; about: NodeId }
  | { k: 'partition' }
  | { k: 'heal' }
  | { k: 'propose' }
  | { k: 'read' }
  | { k: 'membership' }
  | { k: 'transfer' }
  | { k: 'liveness' }
  | { k: 'livenessCheck' };

/** A hard cap on events per run, far above what a healthy run needs (a bug that loops must still end). */
const EVENTS_PER_RUN_MAX = 5_000_000;
const LIVENESS_CHECK_EVERY_MS = 10;
/** Share of crash events that take down every node at once. */
const POWER_OUTAGE_RATE = 0.05;
/**
 * How often a crash is noticed by a peer that can reach the crashed node's host (its port refuses the next
 * dial): drawn per seed from these, so some seeds never notice (a host that died takes its RST with it).
 */
const CRASH_NOTICE_RATES = [0, 0.5, 0.9, 1];
/** Per crash, the chance of a wrong hint too: a live node said to be gone (a port that refused once, say). */
const WRONG_HINT_RATE = 0.1;
const TRACE_TAIL_DEFAULT = 80;
/** Events between two real macrotask turns (the others settle with drainMicrotasks, ~15x cheaper). */
const MACROTASK_EVERY_EVENTS = 256;
/** Rounds of drainMicrotasks before it gives up (a promise chain this deep is a bug in itself). */
const DRAIN_ROUNDS_MAX = 100_000;

/** Promise reaction jobs run so far in this process (then callbacks and await continuations). */
let reactionJobs = 0;
promiseHooks.onBefore(() => {
  reactionJobs++;
});

/**
 * Runs every queued microtask, and those they queue, to the end: what a turn of the event loop does before
 * the next IO or timer callback, without the cost of a turn. The microtask queue is FIFO, so when our own
 * continuation is the only job that ran since the previous one, nothing was queued before it. Two such
 * quiet rounds in a row, because a job that resolves a promise with another (PromiseResolveThenableJob)
 * is not a reaction job and is not counted; the reaction it queues is, one round later.
 */
async function drainMicrotasks(): Promise<void> {
  let quiet = 0;
  for (let round = 0; round < DRAIN_ROUNDS_MAX; round++) {
    const before = reactionJobs;
    await null;
    if (reactionJobs - before <= 1) {
      if (++quiet === 2) return;
    } else quiet = 0;
  }
  throw new Error(`simulator: microtasks still queued after ${DRAIN_ROUNDS_MAX} rounds`);
}

/** Proposals, reads and membership changes not done within this time fail with a timeout (virtual ms). */
const PROPOSAL_TIMEOUT_MS = 3_000;

interface PendingWrite {
  node: NodeId;
  inc: number;
  /** The node's term when it was proposed. */
  term: number;
}

interface PendingRead {
  node: NodeId;
  inc: number;
  ackedCountAtStart: number;
  maxAckedIndexAtStart: number;
  startedMs: number;
}

/**
 * One seeded run: a cluster of SimNodes (the real RaftNode on virtual time) on a faulty network, simulated clients writing and reading,
 * a fault phase (crashes, partitions, membership changes, leadership transfers), then a liveness
 * phase with everything healed. Invariants are checked after every event; the first violation ends
 * the run.
 */
export class Simulation implements NodeHost {
  readonly scheduler = new Scheduler<SimEvent>();
  readonly checker = new ClusterChecker();
  readonly trace: TraceRing;
  readonly nodes = new Map<NodeId, SimNode>();
  private readonly network: SimNetwork;
  private readonly prng: Prng;
  private readonly s: Scenario;
  private nextNodeNumber = 1;
  private tickFactor = new Map<NodeId, number>();
  private everMember = new Set<NodeId>();
  private addedAt = new Map<NodeId, { index: number; term: number }>();
  private lastConfigIndex = 0;
  private phase: 'faults' | 'liveness' | 'done' = 'faults';
  private livenessDeadline = 0;
  private events = 0;
  // Clients.
  private nextWriteId = 1;
  private nextReadId = 1;
  private pendingWrites = new Map<number, PendingWrite>();
  private pendingReads = new Map<string, PendingRead>();
  private ackedCount = 0;
  private maxAckedIndex = 0;
  private markerWriteId = 0;
  private markerIndex = 0;
  private livenessReadCtx = '';
  private livenessReadServed = false;
  private finalMembers: NodeId[] = [];
  private counters = { reads: 0, crashes: 0, partitions: 0, membershipChanges: 0, transfers: 0 };
  /** The first violation seen inside a node during the current event (the node may have swallowed the throw). */
  private pendingViolation: Violation | null = null;
  private readonly touchedNodes = new Set<SimNode>();
  private sinceMacrotask = 0;
  /** Its own stream, so that the hints do not shift the other draws of a seed. */
  private readonly hints: Prng;
  private readonly crashNoticeRate: number;

  constructor(private readonly options: SimOptions) {
    this.s = options.scenario;
    this.prng = new Prng(this.s.seed);
    this.network = new SimNetwork(this.prng.derive('network'), this.s.network);
    this.hints = this.prng.derive('peer-gone hints');
    this.crashNoticeRate = this.hints.pick(CRASH_NOTICE_RATES);
    this.trace = new TraceRing(options.traceTail ?? TRACE_TAIL_DEFAULT, options.liveTrace ?? null);
  }

  now(): number {
    return this.scheduler.now();
  }

  async run(): Promise<SimResult> {
    let violation: Violation | null = null;
    try {
      this.setUp();
      await this.settle();
      await this.loop();
      this.finalChecks();
    } catch (err) {
      violation =
        err instanceof Violation
          ? err
          : new Violation('CoreContract', `simulator or core failed: ${describeError(err)}`);
      this.trace.note(this.now(), `VIOLATION ${violation.message}`);
    }
    return {
      seed: this.s.seed,
      ok: violation === null,
      violation,
      stats: this.stats(),
      trace: violation
        ? [`scenario: ${describeScenario(this.s)}`, ...this.trace.lines(), ...this.nodeSummary()]
        : [],
      replay: replayCommand(this.s),
    };
  }

  private setUp(): void {
    const ids: NodeId[] = [];
    for (let i = 0; i < this.s.initialVoters; i++) ids.push(this.newNodeId());
    const config: ConfigState = {
      voters: ids,
      outgoing: [],
      learners: [],
      addresses: Object.fromEntries(ids.map((id) => [id, addressOf(id)])),
    };
    for (const id of ids) this.everMember.add(id);
    this.trace.note(0, `cluster ${configText(config)}; ${describeScenario(this.s).replace(/\n\s*/g, '; ')}`);
    for (const id of ids) this.addNode(id, config);
    const p = this.prng;
    this.scheduler.at(p.range(0, this.s.proposeEveryMs), { k: 'propose' });
    this.scheduler.at(p.range(0, this.s.readEveryMs), { k: 'read' });
    if (this.s.crashEveryMs > 0) this.scheduler.at(p.range(0, 2 * this.s.crashEveryMs), { k: 'crash' });
    if (this.s.partitionEveryMs > 0)
      this.scheduler.at(p.range(0, 2 * this.s.partitionEveryMs), { k: 'partition' });
    if (this.s.membershipEveryMs > 0)
      this.scheduler.at(p.range(0, 2 * this.s.membershipEveryMs), { k: 'membership' });
    if (this.s.transferEveryMs > 0)
      this.scheduler.at(p.range(0, 2 * this.s.transferEveryMs), { k: 'transfer' });
    this.scheduler.at(this.s.faultPhaseMs, { k: 'liveness' });
    this.livenessDeadline = this.s.faultPhaseMs + this.s.livenessMsMax;
  }

  private async loop(): Promise<void> {
    while (this.phase !== 'done') {
      const item = this.scheduler.pop();
      if (item === undefined)
        throw new Violation('Liveness', 'no events left to run (the cluster went silent)');
      if (++this.events > EVENTS_PER_RUN_MAX)
        throw new Violation('Liveness', `more than ${EVENTS_PER_RUN_MAX} events in one run`);
      if (item.time > this.livenessDeadline) this.livenessFailed();
      this.handle(item.event);
      await this.settle();
    }
  }

  /**
   * Lets the event's promise chains run to the end (a macrotask turn drains every microtask), as the event
   * loop would before the next IO or timer; then checks the nodes that ran code.
   */
  private async settle(): Promise<void> {
    if (++this.sinceMacrotask >= (this.options.macrotaskEveryEvents ?? MACROTASK_EVERY_EVENTS)) {
      // Now and then a real turn of the event loop (nextTicks, GC finalizers, the test runner's timers).
      this.sinceMacrotask = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
    } else {
      await drainMicrotasks();
    }
    if (this.pendingViolation !== null) throw this.pendingViolation;
    if (this.touchedNodes.size === 0) return;
    const nodes = [...this.touchedNodes];
    this.touchedNodes.clear();
    for (const n of nodes) n.checkStatus();
  }

  violation(v: Violation): void {
    if (this.pendingViolation === null) this.pendingViolation = v;
  }

  touched(node: SimNode): void {
    this.touchedNodes.add(node);
  }

  schedule(node: SimNode, incarnation: number, atMs: number, fn: () => void): void {
    this.scheduler.at(atMs, { k: 'node', id: node.id, inc: incarnation, fn });
  }

  tickDelayMs(node: SimNode): number {
    return (
      this.s.tickMs * this.tickFactor.get(node.id)! +
      this.prng.range(-this.s.tickJitterMs, this.s.tickJitterMs)
    );
  }

  private handle(ev: SimEvent): void {
    switch (ev.k) {
      case 'node': {
        const n = this.nodes.get(ev.id)!;
        if (!n.up || n.incarnation !== ev.inc) return;
        ev.fn();
        return;
      }
      case 'deliver':
        return this.deliver(ev.m);
      case 'restart': {
        const n = this.nodes.get(ev.id)!;
        if (n.up || n.stopped) return;
        n.start();
        return;
      }
      case 'stop':
        return this.stop(ev.id);
      case 'crash':
        if (this.phase !== 'faults') return;
        this.crashSomeone();
        this.scheduler.after(this.prng.range(0.5, 1.5) * this.s.crashEveryMs, { k: 'crash' });
        return;
      case 'peerGone':
        return this.nodes.get(ev.to)?.peerGone(ev.about);
      case 'crashNode': {
        const n = this.nodes.get(ev.id)!;
        if (this.phase !== 'faults' || !n.up) return;
        n.crash();
        this.noticeCrash(n.id);
        this.counters.crashes++;
        this.scheduler.after(this.prng.range(this.s.downMsMin, this.s.downMsMax), { k: 'restart', id: n.id });
        return;
      }
      case 'partition':
        if (this.phase !== 'faults') return;
        this.partitionSomehow();
        this.scheduler.after(this.prng.range(0.5, 1.5) * this.s.partitionEveryMs, { k: 'partition' });
        return;
      case 'heal':
        if (this.phase !== 'faults' || !this.network.isPartitioned()) return;
        this.network.heal();
        this.trace.note(this.now(), 'network heals');
        return;
      case 'propose':
        // In the liveness phase only the marker write is proposed, so it covers every acknowledged write.
        if (this.phase !== 'faults') return;
        this.proposeSomewhere();
        this.scheduler.after(this.prng.range(0.5, 1.5) * this.s.proposeEveryMs, { k: 'propose' });
        return;
      case 'read':
        this.readSomewhere();
        this.scheduler.after(this.prng.range(0.5, 1.5) * this.s.readEveryMs, { k: 'read' });
        return;
      case 'membership':
        if (this.phase !== 'faults') return;
        this.changeMembership();
        this.scheduler.after(this.prng.range(0.5, 1.5) * this.s.membershipEveryMs, { k: 'membership' });
        return;
      case 'transfer':
        if (this.phase !== 'faults') return;
        this.transferLeadership();
        this.scheduler.after(this.prng.range(0.5, 1.5) * this.s.transferEveryMs, { k: 'transfer' });
        return;
      case 'liveness':
        return this.startLiveness();
      case 'livenessCheck':
        this.checkLiveness();
        if (this.phase === 'liveness') this.scheduler.after(LIVENESS_CHECK_EVERY_MS, { k: 'livenessCheck' });
        return;
    }
  }

  // ---- nodes, ticks, network ----

  private newNodeId(): NodeId {
    return `n${this.nextNodeNumber++}`;
  }

  private addNode(id: NodeId, bootstrap: ConfigState): SimNode {
    const np = this.prng.derive(`node:${id}`);
    const node = new SimNode(
      id,
      {
        bootstrapConfig: bootstrap,
        makeCore: this.options.makeCore,
        raft: this.s.raft,
        tickMs: this.s.tickMs,
        proposalTimeoutMs: PROPOSAL_TIMEOUT_MS,
        shell: this.s.shell,
      },
      np,
      this,
    );
    this.nodes.set(id, node);
    this.tickFactor.set(id, 1 + np.range(-this.s.tickDriftMax, this.s.tickDriftMax));
    node.start();
    return node;
  }

  send(messages: readonly Message[]): void {
    for (const m of messages) {
      const delays = this.network.route(m.from, m.to);
      this.trace.message(this.now(), delays.length === 0 ? 'drop' : 'send', m);
      for (const d of delays) this.scheduler.after(d, { k: 'deliver', m });
    }
  }

  private deliver(m: Message): void {
    const n = this.nodes.get(m.to);
    if (n === undefined || !n.up || !this.network.canReach(m.from, m.to)) return;
    this.trace.message(this.now(), 'recv', m);
    n.deliver(m);
  }

  private liveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.up);
  }

  /** Nodes that believe they lead (several may, in different terms). */
  private leaders(): SimNode[] {
    return this.liveNodes().filter((n) => n.lastStatus?.role === 'leader');
  }

  /** The leader of the highest term among live nodes that believe they lead. */
  private currentLeader(): SimNode | null {
    let best: SimNode | null = null;
    for (const n of this.leaders()) if (best === null || n.lastStatus!.term > best.lastStatus!.term) best = n;
    return best;
  }

  private stop(id: NodeId): void {
    const n = this.nodes.get(id)!;
    if (n.stopped) return;
    n.crash();
    n.stopped = true;
    this.trace.note(this.now(), `${id} is stopped for good (removed from the cluster)`);
  }

  // ---- faults ----

  /**
   * The peers that can reach a crashed node's host may find its port closed within a few ms (the shell then
   * fails over early); sometimes a live node is wrongly said to be gone. Hints only change timing: any
   * safety violation they lead to is a real bug.
   */
  private noticeCrash(id: NodeId): void {
    const h = this.hints;
    for (const n of this.liveNodes()) {
      if (n.id === id || !this.network.canReach(n.id, id) || !h.chance(this.crashNoticeRate)) continue;
      this.scheduler.after(h.range(0.05, 3), { k: 'peerGone', to: n.id, about: id });
    }
    const live = this.liveNodes();
    if (live.length >= 2 && h.chance(WRONG_HINT_RATE)) {
      const about = h.pick(live);
      const to = h.pick(live.filter((n) => n !== about));
      this.scheduler.after(h.range(0, 50), { k: 'peerGone', to: to.id, about: about.id });
    }
  }

  private crashSomeone(): void {
    const live = this.liveNodes();
    if (live.length === 0) return;
    if (this.prng.chance(POWER_OUTAGE_RATE)) {
      // Everyone at once: only what each node fsynced survives.
      this.trace.note(this.now(), 'POWER OUTAGE: every node crashes');
      for (const n of live) {
        n.crash();
        this.counters.crashes++;
        this.scheduler.after(this.prng.range(this.s.downMsMin, this.s.downMsMax), { k: 'restart', id: n.id });
      }
      return;
    }
    const leader = this.currentLeader();
    const victim =
      leader !== null && this.prng.chance(this.s.leaderCrashBias) ? leader : this.prng.pick(live);
    victim.crash();
    this.noticeCrash(victim.id);
    this.counters.crashes++;
    this.scheduler.after(this.prng.range(this.s.downMsMin, this.s.downMsMax), {
      k: 'restart',
      id: victim.id,
    });
  }

  onVoteDurable(node: SimNode): void {
    if (this.phase !== 'faults' || !this.prng.chance(this.s.crashAfterVoteRate)) return;
    const id = node.id;
    this.scheduler.after(this.prng.range(0, 3), { k: 'crashNode', id });
  }

  onNewLeader(node: SimNode): void {
    if (this.phase !== 'faults') return;
    if (this.prng.chance(this.s.muteAfterElectionRate)) {
      for (const o of this.nodes.keys()) if (o !== node.id) this.network.blockOneWay(node.id, o);
      this.counters.partitions++;
      this.trace.note(this.now(), `network: new leader ${node.id} is muted (its messages are lost)`);
      this.scheduler.after(this.prng.range(this.s.partitionMsMin, this.s.partitionMsMax), { k: 'heal' });
      // Often it dies too, keeping its unreplicated entries (Figure 8's S5) until it campaigns again.
      if (this.prng.chance(0.5))
        this.scheduler.after(this.prng.range(0, this.s.crashAfterElectionMsMax), {
          k: 'crashNode',
          id: node.id,
        });
    } else if (this.prng.chance(this.s.crashAfterElectionRate)) {
      this.scheduler.after(this.prng.range(0, this.s.crashAfterElectionMsMax), {
        k: 'crashNode',
        id: node.id,
      });
    }
  }

  onPersistStarted(node: SimNode, durableInMs: number): void {
    if (this.phase !== 'faults' || !this.prng.chance(this.s.crashDuringFsyncRate)) return;
    this.scheduler.after(this.prng.range(0, durableInMs), { k: 'crashNode', id: node.id });
  }

  onLeaderCommit(node: SimNode): void {
    if (this.phase !== 'faults' || !this.prng.chance(this.s.crashAfterCommitRate)) return;
    this.scheduler.after(this.prng.range(0, 1), { k: 'crashNode', id: node.id });
  }

  private partitionSomehow(): void {
    const ids = [...this.nodes.values()].filter((n) => !n.stopped).map((n) => n.id);
    if (ids.length < 2) return;
    const leader = this.currentLeader();
    const followers = leader === null ? [] : ids.filter((id) => id !== leader.id);
    if (leader !== null && followers.length > 0 && this.prng.chance(this.s.linkCutRate)) {
      this.network.partition([[leader.id], [this.prng.pick(followers)]]);
      this.counters.partitions++;
      this.trace.note(this.now(), `network partition: blocked ${this.network.describePartitions()}`);
      this.scheduler.after(this.prng.range(this.s.partitionMsMin, this.s.partitionMsMax), { k: 'heal' });
      return;
    }
    const kind = this.prng.int(0, 3);
    if (kind === 0) {
      const shuffled = shuffle(ids, this.prng);
      const cut = this.prng.int(1, shuffled.length - 1);
      this.network.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
    } else if (kind === 1 && leader !== null) {
      this.network.isolate(leader.id, ids);
    } else if (kind === 2 && leader !== null) {
      // The leader can send but not hear back, or hear but not be heard.
      const inbound = this.prng.chance(0.5);
      for (const o of ids) {
        if (o === leader.id) continue;
        if (inbound) this.network.blockOneWay(o, leader.id);
        else this.network.blockOneWay(leader.id, o);
      }
    } else {
      const links = this.prng.int(1, 3);
      for (let i = 0; i < links; i++) {
        const a = this.prng.pick(ids);
        const b = this.prng.pick(ids);
        if (a !== b) this.network.blockOneWay(a, b);
      }
    }
    this.counters.partitions++;
    this.trace.note(this.now(), `network partition: blocked ${this.network.describePartitions()}`);
    this.scheduler.after(this.prng.range(this.s.partitionMsMin, this.s.partitionMsMax), { k: 'heal' });
  }

  private changeMembership(): void {
    const leader = this.currentLeader();
    if (leader === null || leader.raft === null) return;
    this.stopOrphans();
    const cfg = leader.lastStatus!.config;
    const running = [...this.nodes.values()].filter((n) => !n.stopped).length;
    const options: (() => MembershipChange | null)[] = [];
    if (running < this.s.nodesMax && cfg.learners.length < 2)
      options.push(() => ({
        type: 'addLearner',
        id: `n${this.nextNodeNumber}`,
        address: addressOf(`n${this.nextNodeNumber}`),
      }));
    if (cfg.learners.length > 0 && cfg.voters.length < this.s.votersMax)
      options.push(() => ({ type: 'promote', id: this.prng.pick(cfg.learners) }));
    if (cfg.voters.length > this.s.votersMin)
      options.push(() => ({ type: 'remove', id: this.prng.pick(cfg.voters) }));
    if (cfg.learners.length > 0) options.push(() => ({ type: 'remove', id: this.prng.pick(cfg.learners) }));
    if (options.length === 0) return;
    const change = this.prng.pick(options)();
    if (change === null) return;
    const what = `changeMembership ${JSON.stringify({ type: change.type, id: change.id })}`;
    leader.lastChange = null;
    this.settleQuietly(leader, what, leader.raft.changeMembership(change));
    // The node's first synchronous step hands the change to the core; null = refused.
    const at = leader.lastChange as { index: number; term: number } | null;
    if (at === null) return;
    this.trace.note(this.now(), `${leader.id}: ${what} accepted at ${at.index}/${at.term}`);
    this.counters.membershipChanges++;
    if (change.type === 'addLearner') {
      this.nextNodeNumber++;
      this.addNode(change.id, emptyConfig());
      this.addedAt.set(change.id, at);
    }
  }

  /** Nodes started for an addLearner whose entry lost (another entry was committed at its index) are stopped. */
  private stopOrphans(): void {
    for (const [id, at] of this.addedAt) {
      const committed = this.checker.committedKeyAt(at.index);
      if (committed === undefined) continue;
      this.addedAt.delete(id);
      if (!committed.startsWith(`${at.term}:config`)) this.stop(id);
    }
  }

  private transferLeadership(): void {
    const leader = this.currentLeader();
    if (leader === null || leader.raft === null) return;
    const voters = leader.lastStatus!.config.voters.filter((v) => v !== leader.id);
    const to = voters.length > 0 && this.prng.chance(0.8) ? this.prng.pick(voters) : undefined;
    const before = leader.transfersAccepted;
    this.settleQuietly(leader, `transferLeadership(${to ?? 'any'})`, leader.raft.transferLeadership(to));
    if (leader.transfersAccepted > before) this.counters.transfers++;
  }

  /** A client call whose outcome only goes to the trace (refusals and timeouts are expected under faults). */
  private settleQuietly(n: SimNode, what: string, p: Promise<unknown>): void {
    p.then(
      (r) =>
        this.trace.note(
          this.now(),
          `${n.id}: ${what} done${r !== undefined ? ` -> ${JSON.stringify(r)}` : ''}`,
        ),
      (e: Error) => this.trace.note(this.now(), `${n.id}: ${what} failed: ${e.message}`),
    );
  }

  // ---- clients ----

  private proposeSomewhere(): void {
    const leaders = this.leaders();
    const live = this.liveNodes();
    if (live.length === 0) return;
    // Now and then a client asks a follower (and is refused); mostly it finds a node that believes it leads.
    if (leaders.length > 0 && this.prng.chance(0.95)) this.propose(this.prng.pick(leaders));
    else if (this.prng.chance(0.1)) this.propose(this.prng.pick(live));
  }

  /** Proposes a write; it counts as acknowledged when the node resolves the proposal (applied there). */
  private propose(n: SimNode): number {
    const writeId = this.nextWriteId++;
    if (n.raft === null) return writeId;
    const inc = n.incarnation;
    this.pendingWrites.set(writeId, { node: n.id, inc, term: n.lastStatus?.term ?? 0 });
    this.trace.note(this.now(), `${n.id}: propose w:${writeId}`);
    n.raft.propose(encodeWrite(writeId)).then(
      ({ index, result }) => this.onAcknowledged(n, inc, writeId, index, result),
      (e: Error) => {
        this.pendingWrites.delete(writeId);
        this.trace.note(this.now(), `${n.id}: w:${writeId} failed: ${e.message}`);
      },
    );
    return writeId;
  }

  private onAcknowledged(n: SimNode, inc: number, writeId: number, index: number, result: unknown): void {
    this.pendingWrites.delete(writeId);
    if (inc !== n.incarnation) {
      this.violation(
        new Violation('CoreContract', `${n.id}: w:${writeId} acknowledged by a life that crashed`),
      );
      return;
    }
    if (result !== writeId) {
      // The proposal settled with another entry's result: a client would be told the wrong thing was stored.
      this.violation(
        new Violation(
          'CoreContract',
          `${n.id}: w:${writeId} acknowledged at index ${index} with the result of ${JSON.stringify(result)}`,
        ),
      );
      return;
    }
    this.trace.note(this.now(), `${n.id}: w:${writeId} acknowledged at ${index}`);
    this.ackedCount++;
    if (index > this.maxAckedIndex) this.maxAckedIndex = index;
    if (writeId === this.markerWriteId) this.markerIndex = index;
  }

  onApplied(_node: SimNode, entry: Entry): void {
    if (entry.type === EntryType.Config) this.onConfigCommitted(entry);
  }

  private onConfigCommitted(entry: Entry): void {
    if (entry.index <= this.lastConfigIndex) return;
    this.lastConfigIndex = entry.index;
    const cfg = decodeConfig(entry.data);
    const members = new Set([...cfg.voters, ...cfg.outgoing, ...cfg.learners]);
    for (const id of members) this.everMember.add(id);
    for (const id of this.everMember) {
      const n = this.nodes.get(id);
      if (members.has(id) || n === undefined || n.removed) continue;
      n.removed = true;
      this.trace.note(this.now(), `${id} is no longer a member (config ${entry.index}: ${configText(cfg)})`);
      if (this.phase === 'faults') this.scheduler.after(this.prng.range(0, 500), { k: 'stop', id });
    }
  }

  private readSomewhere(): void {
    const leaders = this.leaders();
    if (leaders.length === 0) return;
    this.startRead(this.prng.pick(leaders));
  }

  private startRead(n: SimNode, ctx = `r${this.nextReadId++}`): string {
    if (n.raft === null) return ctx;
    const read: PendingRead = {
      node: n.id,
      inc: n.incarnation,
      ackedCountAtStart: this.ackedCount,
      maxAckedIndexAtStart: this.maxAckedIndex,
      startedMs: this.now(),
    };
    this.pendingReads.set(ctx, read);
    const lease = this.s.raft.leaseReads && this.prng.chance(0.5);
    this.trace.note(this.now(), `${n.id}: read ${ctx}${lease ? ' (lease)' : ''}`);
    n.raft.read(lease ? 'lease' : 'linearizable').then(
      (index) => this.onReadServed(n, ctx, index),
      (e: Error) => {
        this.pendingReads.delete(ctx);
        this.trace.note(this.now(), `read ${ctx} failed: ${e.message}`);
      },
    );
    return ctx;
  }

  private onReadServed(node: SimNode, ctx: string, index: number): void {
    const r = this.pendingReads.get(ctx);
    if (r === undefined || r.node !== node.id || r.inc !== node.incarnation) return;
    this.pendingReads.delete(ctx);
    this.counters.reads++;
    const sm = node.sm;
    if (
      sm.appliedIndex < index ||
      sm.appliedIndex < r.maxAckedIndexAtStart ||
      sm.count < r.ackedCountAtStart
    ) {
      this.violation(
        new Violation(
          'ReadLinearizability',
          `${node.id} served read ${ctx} (started at ${r.startedMs.toFixed(1)} ms, read index ${index}) from state at index ${sm.appliedIndex} with ${sm.count} writes, ` +
            `but ${r.ackedCountAtStart} writes up to index ${r.maxAckedIndexAtStart} were acknowledged before it started`,
        ),
      );
      return;
    }
    this.trace.note(
      this.now(),
      `${node.id} served read ${ctx} at index ${sm.appliedIndex} (count ${sm.count})`,
    );
    if (ctx === this.livenessReadCtx) this.livenessReadServed = true;
  }

  // ---- liveness ----

  private startLiveness(): void {
    this.phase = 'liveness';
    this.network.heal();
    this.network.setFaults(RELIABLE_NETWORK);
    for (const n of this.nodes.values()) {
      if (n.removed) this.stop(n.id);
      else if (!n.up && !n.stopped) n.start();
    }
    this.trace.note(this.now(), 'LIVENESS PHASE: network healed, every member up, no more faults');
    this.scheduler.after(LIVENESS_CHECK_EVERY_MS, { k: 'livenessCheck' });
  }

  /** Done when a leader committed a fresh write, every member applied it, and a read went through. */
  private checkLiveness(): void {
    const leader = this.currentLeader();
    if (leader === null) return;
    if (this.markerIndex === 0) {
      const p = this.pendingWrites.get(this.markerWriteId);
      if (
        p === undefined ||
        p.node !== leader.id ||
        p.inc !== leader.incarnation ||
        p.term !== leader.lastStatus!.term
      )
        this.markerWriteId = this.propose(leader);
      return;
    }
    const cfg = leader.lastStatus!.config;
    for (const id of [...cfg.voters, ...cfg.outgoing, ...cfg.learners]) {
      const n = this.nodes.get(id);
      if (n === undefined || !n.up || n.sm.appliedIndex < this.markerIndex) return;
    }
    if (!this.livenessReadServed) {
      const r = this.livenessReadCtx === '' ? undefined : this.pendingReads.get(this.livenessReadCtx);
      if (r === undefined || r.node !== leader.id || r.inc !== leader.incarnation) {
        // Named before the call: the read may be served within it.
        this.livenessReadCtx = `live${this.nextReadId++}`;
        this.startRead(leader, this.livenessReadCtx);
      }
      return;
    }
    this.phase = 'done';
    this.finalMembers = [...cfg.voters, ...cfg.outgoing, ...cfg.learners];
    this.trace.note(
      this.now(),
      `cluster converged: leader ${leader.id} term ${leader.lastStatus!.term}, marker at ${this.markerIndex} applied on all members`,
    );
  }

  private livenessFailed(): never {
    const leader = this.currentLeader();
    let what: string;
    if (leader === null) what = 'no leader';
    else if (this.markerIndex === 0)
      what = `leader ${leader.id} (term ${leader.lastStatus!.term}) did not commit a fresh write`;
    else {
      const cfg = leader.lastStatus!.config;
      const behind = [...cfg.voters, ...cfg.outgoing, ...cfg.learners].filter((id) => {
        const n = this.nodes.get(id);
        return n === undefined || !n.up || n.sm.appliedIndex < this.markerIndex;
      });
      what =
        behind.length > 0
          ? `members ${behind.join(', ')} did not apply the fresh write at index ${this.markerIndex} (leader ${leader.id})`
          : `leader ${leader.id} did not complete a ReadIndex read`;
    }
    throw new Violation('Liveness', `not converged ${this.s.livenessMsMax} ms after faults healed: ${what}`);
  }

  private finalChecks(): void {
    for (const id of this.finalMembers) {
      const n = this.nodes.get(id)!;
      if (n.sm.appliedIndex < this.maxAckedIndex || n.sm.count < this.ackedCount) {
        throw new Violation(
          'AckedWriteLost',
          `${n.id} ends at index ${n.sm.appliedIndex} with ${n.sm.count} writes, but ${this.ackedCount} writes up to index ${this.maxAckedIndex} were acknowledged`,
        );
      }
    }
  }

  private nodeSummary(): string[] {
    const out = ['nodes at the end:'];
    for (const n of this.nodes.values()) {
      const s = n.lastStatus;
      const state = !n.up
        ? n.stopped
          ? 'stopped'
          : 'down'
        : s
          ? `${s.role} term=${s.term} leader=${s.leaderId ?? '-'} commit=${s.commit} last=${s.lastIndex} config=${configText(s.config)}`
          : 'up';
      const hs = n.durableHardState();
      out.push(
        `  ${n.id}: ${state}; applied=${n.sm.appliedIndex}; durable term=${hs.term} vote=${hs.vote ?? '-'} commit=${hs.commit}`,
      );
    }
    return out;
  }

  private stats(): SimStats {
    let snapshotsTaken = 0;
    let snapshotsInstalled = 0;
    for (const n of this.nodes.values()) {
      snapshotsTaken += n.stats.snapshotsTaken;
      snapshotsInstalled += n.stats.snapshotsInstalled;
    }
    return {
      virtualMs: this.now(),
      events: this.events,
      leaders: this.checker.counts.leaders,
      committedEntries: this.checker.maxCommitted,
      acknowledgedWrites: this.ackedCount,
      reads: this.counters.reads,
      crashes: this.counters.crashes,
      partitions: this.counters.partitions,
      membershipChanges: this.counters.membershipChanges,
      transfers: this.counters.transfers,
      snapshotsTaken,
      snapshotsInstalled,
      messages: this.network.stats.sent,
      livenessMs: this.phase === 'done' ? this.now() - this.s.faultPhaseMs : -1,
    };
  }
}

export function addressOf(id: NodeId): MemberAddress {
  return { raftAddress: `sim://${id}`, httpUrl: `http://${id}.sim` };
}

export function replayCommand(s: Scenario): string {
  const profile = s.profile !== 'default' ? ` --profile ${s.profile}` : '';
  const bug = s.bug !== null ? ` --bug ${s.bug}` : '';
  const check = s.shell.checkPersistBeforeAck ? '' : ' --no-persist-check';
  return `npm run sim -- --seeds 1 --from ${s.seed}${profile}${bug}${check} --trace`;
}

function shuffle<T>(items: T[], p: Prng): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = p.int(0, i);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}
