import { Message } from '../core/messages';
import { sumCommand } from '../testing/sum-state-machine';
import { MemoryNodeStorage } from '../testing/memory-node-storage';
import { AppliedEntry, NodeError } from './api';
import { TestCluster, clusterConfig } from '../testing/node-test-cluster';
import { waitFor } from '../testing/wait-for';

jest.setTimeout(90_000);

describe('RaftNode', () => {
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    await cluster?.stopAll();
    cluster = null;
  });

  it('a single node elects itself, applies a proposal and reports it to onApplied listeners', async () => {
    cluster = await TestCluster.start(['n1']);
    const { node, sm } = await cluster.waitLeader();
    const seen: AppliedEntry[] = [];
    const unsubscribe = node.onApplied((a) => seen.push(a));
    const out = await node.propose(sumCommand(5));
    expect(out.result).toBe(5);
    expect(sm.value).toBe(5);
    expect(seen.map((a) => a.entry.index)).toContain(out.index);
    expect(seen.find((a) => a.entry.index === out.index)!.result).toBe(5);
    unsubscribe();
    expect(node.status().caughtUp).toBe(true);
    const roles: string[] = [];
    node.onSoftState((ss) => roles.push(`${ss.role}/${ss.leaderId}`))();
    expect(roles).toEqual(['leader/n1']);
  });

  it('three nodes elect a leader, and every proposal is applied on all of them in the same order', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3']);
    const leader = await cluster.waitLeader();
    let last = 0;
    for (let i = 1; i <= 20; i++) {
      const out = await leader.node.propose(sumCommand(i));
      expect(out.result).toBe((i * (i + 1)) / 2);
      last = out.index;
    }
    await cluster.waitApplied(last);
    const [a, b, c] = ['n1', 'n2', 'n3'].map((id) => cluster!.get(id).sm);
    expect(a.value).toBe(210);
    expect(b.value).toBe(210);
    expect(c.value).toBe(210);
    expect(b.commandIndexes).toEqual(a.commandIndexes);
    expect(c.commandIndexes).toEqual(a.commandIndexes);
  });

  it('a follower still acknowledges appends (and votes) while its state machine is busy applying earlier entries', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3']);
    const leader = await cluster.waitLeader();
    const slow = [...cluster.members.values()].find((m) => m.id !== leader.id)!;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const apply = slow.sm.apply.bind(slow.sm);
    slow.sm.apply = (e) => gate.then(() => apply(e));
    try {
      const first = await leader.node.propose(sumCommand(1));
      for (let i = 0; i < 5; i++) await leader.node.propose(sumCommand(1));
      // Its apply of `first` is stuck, yet its log acknowledges what came after.
      await waitFor(
        'the busy follower to acknowledge later appends',
        () => (leader.node.status().progress[slow.id]?.match ?? 0) >= first.index + 5,
        { timeoutMs: 20_000 },
      );
      expect(slow.node.status().applied).toBeLessThan(first.index);
    } finally {
      release();
    }
    await cluster.waitApplied(leader.node.status().commit);
  });

  it('batches proposals from many concurrent callers into fewer persists than proposals', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3']);
    const leader = await cluster.waitLeader();
    await leader.node.propose(sumCommand(0));
    const callers = 200;
    const persistsBefore = leader.storage.persistCalls;
    const outs = await Promise.all(Array.from({ length: callers }, () => leader.node.propose(sumCommand(1))));
    const persists = leader.storage.persistCalls - persistsBefore;
    expect(new Set(outs.map((o) => o.index)).size).toBe(callers);
    expect(outs.map((o) => o.result).sort((x, y) => (x as number) - (y as number))).toEqual(
      Array.from({ length: callers }, (_, i) => i + 1),
    );
    expect(persists).toBeLessThan(callers / 4);
  });

  /** Runs a cluster on slow disks and checks, at every send, that what a vote or an ack promises is durable. */
  async function checkPromisesAtSend(
    ackBeforePersist: boolean,
  ): Promise<{ checked: number; violations: string[] }> {
    cluster = new TestCluster({ raft: { unsafe: { ackBeforePersist } } });
    const storages = new Map<string, MemoryNodeStorage>();
    let checked = 0;
    const violations: string[] = [];
    cluster.net.sendListeners.push((m: Message) => {
      const storage = storages.get(m.from);
      if (!storage) return;
      const hs = storage.durableHardState();
      if (m.type === 'VoteResponse' && m.granted && !m.preVote) {
        checked++;
        if (!(hs.term > m.term || (hs.term === m.term && hs.vote === m.to))) {
          violations.push(
            `${m.from} granted its vote to ${m.to} at term ${m.term} with durable ${JSON.stringify(hs)}`,
          );
        }
      }
      if (m.type === 'AppendResponse' && m.success) {
        checked++;
        if (hs.term < m.term || (hs.term === m.term && storage.lastIndex() < m.matchIndex)) {
          violations.push(
            `${m.from} acknowledged ${m.matchIndex} at term ${m.term} with durable last index ${storage.lastIndex()}`,
          );
        }
      }
    });
    const bootstrap = clusterConfig(['n1', 'n2', 'n3']);
    for (const id of ['n1', 'n2', 'n3']) {
      // A slow disk makes an early acknowledgement visible.
      const storage = new MemoryNodeStorage({ fsyncDelayMs: 15 });
      storages.set(id, storage);
      await cluster.startNode(id, { bootstrap, storage });
    }
    const leader = await cluster.waitLeader();
    for (let i = 0; i < 10; i++) await leader.node.propose(sumCommand(i));
    await Promise.all(Array.from({ length: 50 }, (_, i) => leader.node.propose(sumCommand(i))));
    return { checked, violations };
  }

  it('never sends a vote or an append acknowledgement before what it promises is durable', async () => {
    const { checked, violations } = await checkPromisesAtSend(false);
    expect(violations).toEqual([]);
    expect(checked).toBeGreaterThan(10);
  });

  it('the durability check above catches acknowledgements sent before persisting (self-test with a deliberate bug)', async () => {
    const { violations } = await checkPromisesAtSend(true);
    expect(violations.length).toBeGreaterThan(0);
  });

  it('serves a linearizable read after a write that sees the write; lease and local reads resolve too', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3']);
    const leader = await cluster.waitLeader();
    const w = await leader.node.propose(sumCommand(7));
    const readIndex = await leader.node.read('linearizable');
    expect(readIndex).toBeGreaterThanOrEqual(w.index);
    expect(leader.sm.appliedIndex()).toBeGreaterThanOrEqual(readIndex);
    expect(leader.sm.value).toBe(7);
    const reads = await Promise.all(Array.from({ length: 20 }, () => leader.node.read('linearizable')));
    for (const r of reads) expect(r).toBeGreaterThanOrEqual(w.index);
    expect(await leader.node.read('lease')).toBeGreaterThanOrEqual(w.index);
    const follower = [...cluster.members.values()].find((m) => m.id !== leader.id)!;
    await expect(follower.node.read('local')).resolves.toBe(follower.node.status().applied);
  });

  it('serves lease reads on a leader with leaseReads enabled, after the write', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3'], { raft: { leaseReads: true } });
    const leader = await cluster.waitLeader();
    const w = await leader.node.propose(sumCommand(3));
    const index = await leader.node.read('lease');
    expect(index).toBeGreaterThanOrEqual(w.index);
    expect(leader.sm.value).toBe(3);
  });

  it('a follower refuses linearizable reads and proposals with not_leader naming the leader', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3']);
    const leader = await cluster.waitLeader();
    const follower = [...cluster.members.values()].find((m) => m.id !== leader.id)!;
    await expect(follower.node.read('linearizable')).rejects.toMatchObject({
      code: 'not_leader',
      leaderId: leader.id,
    });
    await expect(follower.node.propose(sumCommand(1))).rejects.toMatchObject({
      code: 'not_leader',
      leaderId: leader.id,
    });
  });

  it('a leader that stops hands over: another node leads and commits resume', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3']);
    const first = await cluster.waitLeader();
    await first.node.propose(sumCommand(1));
    await cluster.stopNode(first.id, true);
    const rest = [...cluster.members.keys()];
    const next = await cluster.waitLeader(20_000, rest);
    expect(next.id).not.toBe(first.id);
    const out = await cluster.propose(2);
    await cluster.waitApplied(out.index, rest);
    for (const id of rest) expect(cluster.get(id).sm.value).toBe(3);
  });

  it('a crashed leader is replaced, and on restart it catches up without applying anything twice', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3']);
    const first = await cluster.waitLeader();
    for (let i = 0; i < 10; i++) await first.node.propose(sumCommand(1));
    const durable = await cluster.crash(first.id);
    await cluster.waitLeader(20_000, [...cluster.members.keys()]);
    let last = 0;
    for (let i = 0; i < 10; i++) last = (await cluster.propose(1)).index;
    await cluster.startNode(first.id, { storage: durable });
    await cluster.waitApplied(last);
    const sms = [...cluster.members.values()].map((m) => m.sm);
    for (const sm of sms) {
      expect(sm.value).toBe(20);
      expect(sm.commandIndexes).toEqual(sms[0].commandIndexes);
    }
  });

  it('a storage failure makes the node refuse writes with storage_failed (in-flight ones end unknown), and nothing is acknowledged', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3']);
    const leader = await cluster.waitLeader();
    await leader.node.propose(sumCommand(1));
    leader.storage.failWrites(new Error('EIO: simulated disk failure'));
    const pending = leader.node.propose(sumCommand(100));
    // It was in the log (maybe on the followers too): its outcome is unknown, not refused.
    await expect(pending).rejects.toMatchObject({
      code: 'timeout',
      message: expect.stringMatching(/EIO.*unknown/),
    });
    expect(leader.node.status().storageFailed).toMatch(/EIO/);
    await expect(leader.node.propose(sumCommand(1))).rejects.toBeInstanceOf(NodeError);
    await expect(leader.node.propose(sumCommand(1))).rejects.toMatchObject({ code: 'storage_failed' });
    const rest = [...cluster.members.keys()].filter((id) => id !== leader.id);
    const next = await cluster.waitLeader(30_000, rest);
    expect(next.id).not.toBe(leader.id);
    expect(leader.sm.value).toBe(1);
  });

  it('a proposal that cannot commit fails with timeout after proposalTimeoutMs, and stop() ends the in-flight ones unknown (timeout) and refuses new ones with stopped', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3'], { proposalTimeoutMs: 1_000 });
    const leader = await cluster.waitLeader();
    await leader.node.propose(sumCommand(1));
    cluster.net.isolate(leader.id);
    const cutOff = leader.node.propose(sumCommand(1));
    await expect(cutOff).rejects.toMatchObject({ code: 'timeout' });
    cluster.net.heal();
    const second = await cluster.waitLeader(30_000);
    cluster.net.isolate(second.id);
    const stranded = second.node.propose(sumCommand(1000));
    await cluster.stopNode(second.id, false);
    await expect(stranded).rejects.toMatchObject({
      code: 'timeout',
      message: expect.stringMatching(/stopping.*unknown/),
    });
    await expect(second.node.propose(sumCommand(1))).rejects.toMatchObject({ code: 'stopped' });
    expect(second.sm.value).toBeLessThan(1000);
  });

  it('rejects a proposal whose index was taken by another leader’s entry instead of resolving it', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3']);
    const old = await cluster.waitLeader();
    await old.node.propose(sumCommand(1));
    // Cut the leader off: its next proposal can never commit.
    cluster.net.isolate(old.id);
    const doomed = old.node.propose(sumCommand(1000));
    doomed.catch(() => {});
    const rest = [...cluster.members.keys()].filter((id) => id !== old.id);
    await cluster.waitLeader(30_000, rest);
    let last = 0;
    for (let i = 0; i < 5; i++) last = (await cluster.propose(1, 20_000, rest)).index;
    cluster.net.heal();
    await cluster.waitApplied(last);
    // Never resolved: refused at once if leadership was already gone, otherwise rejected when index and term disagree.
    await expect(doomed).rejects.toMatchObject({
      code: expect.stringMatching(/^(unavailable|timeout|not_leader)$/),
    });
    for (const m of cluster.members.values()) expect(m.sm.value).toBe(6);
  });
});
