import { ConfigState, NodeId } from '../core/types';
import { SumStateMachine, sumCommand } from './sum-state-machine';
import { LoopbackNetwork, LoopbackTransport } from './loopback-transport';
import { MemoryNodeStorage } from './memory-node-storage';
import { RaftNodeOptions } from '../node/api';
import { NodeStorage } from '../node/ports';
import { RaftNode } from '../node/raft-node';
import { waitFor } from './wait-for';

/** Test helper: RaftNodes on a LoopbackNetwork with in-memory storage and counter state machines. */

export function clusterConfig(voters: NodeId[], learners: NodeId[] = []): ConfigState {
  const addresses: ConfigState['addresses'] = {};
  for (const id of [...voters, ...learners])
    addresses[id] = { raftAddress: `loop:${id}`, httpUrl: `http://${id}.test` };
  return { voters, outgoing: [], learners, addresses };
}

export interface TestMember {
  id: NodeId;
  node: RaftNode;
  storage: MemoryNodeStorage;
  sm: SumStateMachine;
  transport: LoopbackTransport;
}

export type NodeOverrides = Partial<Omit<RaftNodeOptions, 'id' | 'storage' | 'transport' | 'stateMachine'>>;

export class TestCluster {
  readonly net = new LoopbackNetwork();
  readonly members = new Map<NodeId, TestMember>();
  readonly logLines: string[] = [];

  constructor(private readonly defaults: NodeOverrides = {}) {}

  static async start(ids: NodeId[], defaults: NodeOverrides = {}): Promise<TestCluster> {
    const c = new TestCluster(defaults);
    const bootstrap = clusterConfig(ids);
    for (const id of ids) await c.startNode(id, { bootstrap });
    return c;
  }

  async startNode(
    id: NodeId,
    opts: NodeOverrides & { storage?: NodeStorage; sm?: SumStateMachine } = {},
  ): Promise<TestMember> {
    if (this.members.has(id)) throw new Error(`test cluster: ${id} is already running`);
    // Members on another storage (DurableStorage) must not use the in-memory instrumentation.
    const storage = (opts.storage ?? new MemoryNodeStorage({ fsyncDelayMs: 1 })) as MemoryNodeStorage;
    const sm = opts.sm ?? new SumStateMachine();
    const transport = this.net.transport(id);
    const lines = this.logLines;
    const node = new RaftNode({
      tickMs: 10,
      snapshotEveryEntries: 1_000_000,
      snapshotEveryBytes: 1024 * 1024 * 1024,
      snapshotKeepEntries: 10,
      proposalTimeoutMs: 20_000,
      logger: {
        log: (m) => lines.push(m),
        warn: (m) => lines.push(`WARN ${m}`),
        error: (m) => lines.push(`ERROR ${m}`),
      },
      ...this.defaults,
      ...opts,
      raft: { electionTicks: 10, heartbeatTicks: 2, ...this.defaults.raft, ...opts.raft },
      id,
      storage,
      transport,
      stateMachine: sm,
    });
    await node.start();
    const member = { id, node, storage, sm, transport };
    this.members.set(id, member);
    return member;
  }

  get(id: NodeId): TestMember {
    const m = this.members.get(id);
    if (!m) throw new Error(`test cluster: no running node ${id}`);
    return m;
  }

  /** Stops a node as a crash would: what was not durable is lost. Returns the storage a restart finds. */
  async crash(id: NodeId): Promise<MemoryNodeStorage> {
    const m = this.get(id);
    const durable = m.storage.crashCopy();
    this.members.delete(id);
    await m.node.stop({ transferLeadership: false });
    return durable;
  }

  async stopNode(id: NodeId, transferLeadership = true): Promise<void> {
    const m = this.get(id);
    this.members.delete(id);
    await m.node.stop({ transferLeadership });
  }

  leaders(): TestMember[] {
    return [...this.members.values()].filter(
      (m) => m.node.status().role === 'leader' && m.node.status().storageFailed === null,
    );
  }

  /** Waits for one leader that every other running node in `among` follows. */
  async waitLeader(timeoutMs = 20_000, among: NodeId[] = [...this.members.keys()]): Promise<TestMember> {
    let leader: TestMember | undefined;
    await waitFor(
      `a leader followed by ${among.join(', ')}`,
      () => {
        const ls = this.leaders().filter((m) => among.includes(m.id));
        if (ls.length !== 1) return false;
        leader = ls[0];
        return among.every((id) => this.members.get(id)?.node.status().leaderId === leader!.id);
      },
      { timeoutMs },
    );
    return leader!;
  }

  /** Proposes on whichever node leads, retrying through elections (bounded). */
  async propose(
    amount: number,
    timeoutMs = 20_000,
    among?: NodeId[],
  ): Promise<{ index: number; result: unknown }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const leader = this.leaders().filter((m) => !among || among.includes(m.id))[0];
      if (leader) {
        try {
          return await leader.node.propose(sumCommand(amount));
        } catch (e) {
          const code = (e as { code?: string }).code;
          if (code !== 'not_leader' && code !== 'unavailable') throw e;
        }
      }
      if (Date.now() > deadline)
        throw new Error(`test cluster: no proposal committed within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async waitApplied(
    index: number,
    ids: NodeId[] = [...this.members.keys()],
    timeoutMs = 20_000,
  ): Promise<void> {
    await waitFor(
      `${ids.join(', ')} to apply ${index}`,
      () => ids.every((id) => this.get(id).sm.appliedIndex() >= index),
      { timeoutMs },
    );
  }

  async stopAll(): Promise<void> {
    const all = [...this.members.values()];
    this.members.clear();
    await Promise.all(all.map((m) => m.node.stop({ transferLeadership: false })));
  }
}
