import { sumCommand } from '../testing/sum-state-machine';
import { TestCluster, clusterConfig } from '../testing/node-test-cluster';
import { waitFor } from '../testing/wait-for';

jest.setTimeout(120_000);

describe('RaftNode membership and leadership', () => {
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    await cluster?.stopAll();
    cluster = null;
  });

  it('adds a node in join mode as learner, promotes it once caught up, then removes another voter', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3']);
    const leader = await cluster.waitLeader();
    for (let i = 0; i < 30; i++) await leader.node.propose(sumCommand(1));

    const joinPeers: Record<string, string> = {};
    for (const [id, a] of Object.entries(clusterConfig(['n1', 'n2', 'n3']).addresses))
      joinPeers[id] = a.raftAddress;
    const n4 = await cluster.startNode('n4', { joinPeers });
    expect(n4.node.status().config.voters).toEqual([]);

    await leader.node.addMember(
      'n4',
      { raftAddress: 'loop:n4', httpUrl: 'http://n4.test' },
      { catchUpTimeoutMs: 30_000 },
    );
    const config = leader.node.status().config;
    expect(config.voters.sort()).toEqual(['n1', 'n2', 'n3', 'n4']);
    expect(config.outgoing).toEqual([]);
    expect(config.learners).toEqual([]);

    const out = await leader.node.propose(sumCommand(1));
    await cluster.waitApplied(out.index, ['n4']);
    expect(n4.sm.value).toBe(31);
    expect(n4.sm.commandIndexes).toEqual(leader.sm.commandIndexes.filter((i) => i <= n4.sm.appliedIndex()));

    const victim = ['n1', 'n2', 'n3'].find((id) => id !== leader.id)!;
    await leader.node.removeMember(victim);
    expect(leader.node.status().config.voters).not.toContain(victim);
    await cluster.stopNode(victim, false);
    const after = await leader.node.propose(sumCommand(1));
    await cluster.waitApplied(after.index);
    for (const m of cluster.members.values()) expect(m.sm.value).toBe(32);
  });

  it('transfers leadership to a chosen voter and reports the new leader', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3']);
    const leader = await cluster.waitLeader();
    await leader.node.propose(sumCommand(1));
    const target = ['n1', 'n2', 'n3'].find((id) => id !== leader.id)!;
    const newLeader = await leader.node.transferLeadership(target);
    expect(newLeader).toBe(target);
    await waitFor(`${target} to lead`, () => cluster!.get(target).node.status().role === 'leader', {
      timeoutMs: 20_000,
    });
    await expect(leader.node.propose(sumCommand(1))).rejects.toMatchObject({
      code: expect.stringMatching(/not_leader|unavailable/),
    });
    const out = await cluster.propose(1);
    await cluster.waitApplied(out.index);
    for (const m of cluster.members.values()) expect(m.sm.value).toBe(2);
  });

  it('a membership change on a follower is refused with not_leader', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3']);
    const leader = await cluster.waitLeader();
    const follower = [...cluster.members.values()].find((m) => m.id !== leader.id)!;
    await expect(follower.node.removeMember(leader.id)).rejects.toMatchObject({
      code: 'not_leader',
      leaderId: leader.id,
    });
    await expect(follower.node.transferLeadership()).rejects.toMatchObject({ code: 'not_leader' });
  });
});
