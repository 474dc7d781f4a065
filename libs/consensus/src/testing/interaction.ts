import { AppendRequest, AppendResponse, Message } from '../core/messages';
import { DEFAULT_RAFT_OPTIONS, RaftOptions } from '../core/options';
import { RaftCore } from '../core/raft';
import { RaftError, ReadState, Ready } from '../core/ready';
import { ConfigState, Entry, NodeId, emptyConfig } from '../core/types';
import { MemoryStorage } from './memory-storage';
import { Prng } from './prng';

/** Rounds of (process every Ready, deliver every message) before stabilize() gives up. */
const STABILIZE_ROUNDS_MAX = 10_000;

export interface ClusterNode {
  id: NodeId;
  core: RaftCore;
  storage: MemoryStorage;
  /** Every committed entry handed to this node for applying, in order (reset on restart). */
  applied: Entry[];
  readStates: ReadState[];
  failedReads: { ctx: string; error: RaftError }[];
  bootstrap: ConfigState;
}

export function configOf(voters: NodeId[], learners: NodeId[] = []): ConfigState {
  const addresses: ConfigState['addresses'] = {};
  for (const id of [...voters, ...learners])
    addresses[id] = { raftAddress: `${id}:7000`, httpUrl: `http://${id}` };
  return { voters: [...voters], outgoing: [], learners: [...learners], addresses };
}

/**
 * A hand-driven cluster of cores on MemoryStorage, for scenario tests. Messages travel only when deliver() is
 * called; persistedMessages enter the network only after their Ready was applied to storage.
 */
export class InteractionCluster {
  readonly nodes = new Map<NodeId, ClusterNode>();
  /** Sent, not yet delivered. */
  network: Message[] = [];
  readonly logLines: string[] = [];
  private readonly cutLinks = new Set<string>();
  private seed: number;

  constructor(
    voters: NodeId[],
    readonly options: Partial<RaftOptions> = {},
    opts: { learners?: NodeId[]; seed?: number } = {},
  ) {
    this.seed = opts.seed ?? 1;
    const config = configOf(voters, opts.learners ?? []);
    for (const id of [...voters, ...(opts.learners ?? [])]) this.addNode(id, config);
  }

  /** Starts a node on `storage` (empty by default) with `bootstrap` as its configuration if the log has none. */
  addNode(id: NodeId, bootstrap: ConfigState = emptyConfig(), storage = new MemoryStorage()): ClusterNode {
    const node: ClusterNode = {
      id,
      storage,
      core: this.newCore(id, storage, bootstrap),
      applied: [],
      readStates: [],
      failedReads: [],
      bootstrap,
    };
    this.nodes.set(id, node);
    return node;
  }

  node(id: NodeId): ClusterNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`interaction: no node ${id}`);
    return n;
  }

  core(id: NodeId): RaftCore {
    return this.node(id).core;
  }

  /** Crash and restart: the node keeps only what its storage made durable. */
  restart(id: NodeId): void {
    const n = this.node(id);
    n.storage = n.storage.clone();
    n.core = this.newCore(id, n.storage, n.bootstrap);
    n.applied = [];
    this.network = this.network.filter((m) => m.to !== id);
  }

  /** Takes one Ready from `id`, sends `messages`, persists, sends `persistedMessages`, applies, advances. */
  processReady(id: NodeId): Ready | null {
    const n = this.node(id);
    if (!n.core.hasReady()) return null;
    const rd = n.core.ready();
    this.network.push(...rd.messages);
    n.storage.applyReady(rd);
    this.network.push(...rd.persistedMessages);
    n.applied.push(...rd.committedEntries);
    n.readStates.push(...rd.readStates);
    n.failedReads.push(...rd.failedReads);
    n.core.advance(rd);
    return rd;
  }

  /** Delivers every message in the network (those on cut links are lost); returns how many were delivered. */
  deliver(filter: (m: Message) => boolean = () => true): number {
    const batch = this.network;
    this.network = [];
    let delivered = 0;
    for (const m of batch) {
      if (!filter(m)) {
        this.network.push(m);
        continue;
      }
      if (this.cutLinks.has(`${m.from}>${m.to}`) || !this.nodes.has(m.to)) continue;
      this.node(m.to).core.step(m);
      delivered++;
    }
    return delivered;
  }

  /** Processes readies and delivers messages until nothing moves. */
  stabilize(): void {
    for (let round = 0; round < STABILIZE_ROUNDS_MAX; round++) {
      let moved = false;
      for (const id of this.nodes.keys()) while (this.processReady(id)) moved = true;
      if (this.deliver() > 0) moved = true;
      if (!moved && this.network.length === 0) return;
    }
    throw new Error(`interaction: not stable after ${STABILIZE_ROUNDS_MAX} rounds`);
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.core(id).tick();
  }

  /** Ticks every node `times` times, stabilizing after each tick. */
  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const n of this.nodes.values()) n.core.tick();
      this.stabilize();
    }
  }

  /**
   * Lets the election timeout since the last leader contact pass at these nodes (all by default), so they
   * no longer ignore vote requests (the removed-server guard, armed at start-up too).
   */
  expireLeaderLease(...ids: NodeId[]): void {
    for (const id of ids.length > 0 ? ids : [...this.nodes.keys()]) {
      const core = this.core(id);
      if (core.state !== 'leader') core.ticksSinceHeardLeader = Number.MAX_SAFE_INTEGER;
    }
  }

  /** Campaigns at `id` and runs the election to its end (nodes that know no leader accept vote requests). */
  elect(id: NodeId): void {
    for (const n of this.nodes.values()) if (n.core.leaderId === null) this.expireLeaderLease(n.id);
    this.core(id).campaign();
    this.stabilize();
    const role = this.core(id).status().role;
    if (role !== 'leader')
      throw new Error(
        `interaction: ${id} did not become leader (role ${role})\n${this.logLines.slice(-30).join('\n')}`,
      );
  }

  propose(id: NodeId, text: string): { index: number; term: number } {
    return this.core(id).propose(new TextEncoder().encode(text));
  }

  cut(a: NodeId, b: NodeId): void {
    this.cutLinks.add(`${a}>${b}`);
    this.cutLinks.add(`${b}>${a}`);
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other);
  }

  heal(): void {
    this.cutLinks.clear();
  }

  /** Texts of the Normal entries a node applied, in order. */
  appliedTexts(id: NodeId): string[] {
    return this.node(id)
      .applied.filter((e) => e.type === 0)
      .map((e) => new TextDecoder().decode(e.data));
  }

  private newCore(id: NodeId, storage: MemoryStorage, bootstrap: ConfigState): RaftCore {
    const options: RaftOptions = {
      ...DEFAULT_RAFT_OPTIONS,
      id,
      random: new Prng(this.seed++ * 7919).asFunction(),
      logger: (line) => this.logLines.push(line),
      ...this.options,
    };
    return new RaftCore(options, storage, storage.initialState(bootstrap));
  }
}

/** Entries 1..n (or from `first`) with the given terms, payload "e<index>". */
export function entriesWithTerms(terms: number[], first = 1): Entry[] {
  return terms.map((term, i) => ({
    index: first + i,
    term,
    type: 0,
    data: new TextEncoder().encode(`e${first + i}`),
  }));
}

export interface SoloCore {
  core: RaftCore;
  storage: MemoryStorage;
  /** Takes a Ready, makes it durable, advances; returns it. */
  persist(): Ready;
}

/**
 * One core on its own storage, driven by hand with synthetic messages (for rule-by-rule tests).
 * The removed-server guard is expired unless `keepStartupGuard` is set.
 */
export function soloCore(
  id: NodeId,
  voters: NodeId[],
  init: { terms?: number[]; term?: number; vote?: NodeId | null; commit?: number; learners?: NodeId[] } = {},
  options: Partial<RaftOptions> & { keepStartupGuard?: boolean } = {},
): SoloCore {
  const storage = new MemoryStorage({
    entries: entriesWithTerms(init.terms ?? []),
    hardState: {
      term: init.term ?? Math.max(0, ...(init.terms ?? [0])),
      vote: init.vote ?? null,
      commit: init.commit ?? 0,
    },
  });
  const { keepStartupGuard, ...rest } = options;
  const core = new RaftCore(
    { ...DEFAULT_RAFT_OPTIONS, id, random: () => 0, ...rest },
    storage,
    storage.initialState(configOf(voters, init.learners ?? [])),
  );
  if (!keepStartupGuard) core.ticksSinceHeardLeader = Number.MAX_SAFE_INTEGER;
  const persist = () => {
    const rd = core.ready();
    storage.applyReady(rd);
    core.advance(rd);
    return rd;
  };
  return { core, storage, persist };
}

/** Makes a solo core leader by granting it every vote by hand; its first Ready (the no-op) is persisted. */
export function electSolo(s: SoloCore): void {
  const { core } = s;
  const others = [...core.config().voters, ...core.config().outgoing].filter((v) => v !== core.id);
  core.campaign();
  if (core.state === 'pre-candidate') {
    for (const from of others)
      core.step({
        type: 'VoteResponse',
        from,
        to: core.id,
        term: core.term + 1,
        preVote: true,
        granted: true,
      });
  }
  s.persist();
  for (const from of others)
    core.step({ type: 'VoteResponse', from, to: core.id, term: core.term, preVote: false, granted: true });
  if (core.state !== 'leader') throw new Error(`electSolo: ${core.id} is ${core.state}`);
  s.persist();
}

/** Message builders shared by the core's rule tests. */
export const appendsTo = (msgs: Message[], to: string): AppendRequest[] =>
  msgs.filter((m): m is AppendRequest => m.type === 'AppendRequest' && m.to === to);

/** A successful AppendResponse from `from` to the leader n1. */
export const ackFrom = (from: string, term: number, matchIndex: number, seq = 0): AppendResponse => ({
  type: 'AppendResponse',
  from,
  to: 'n1',
  term,
  success: true,
  matchIndex,
  conflictTerm: 0,
  conflictIndex: 0,
  lastLogIndex: matchIndex,
  seq,
});

/** An AppendRequest from n1 to n2 carrying entries of the given terms after (prevLogIndex, prevLogTerm). */
export const appendFromLeader = (
  prevLogIndex: number,
  prevLogTerm: number,
  terms: number[],
  term: number,
  leaderCommit = 0,
): AppendRequest => ({
  type: 'AppendRequest',
  from: 'n1',
  to: 'n2',
  term,
  prevLogIndex,
  prevLogTerm,
  entries: entriesWithTerms(terms, prevLogIndex + 1),
  leaderCommit,
  seq: 1,
});
