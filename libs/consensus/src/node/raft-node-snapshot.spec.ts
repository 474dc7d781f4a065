import { Registry } from 'prom-client';
import { sumCommand } from '../testing/sum-state-machine';
import { PromRaftMetrics } from './metrics';
import { TestCluster } from '../testing/node-test-cluster';
import { waitFor } from '../testing/wait-for';

jest.setTimeout(120_000);

const snapshotPolicy = { snapshotEveryEntries: 20, snapshotEveryBytes: 1024 * 1024, snapshotKeepEntries: 5 };

describe('RaftNode snapshots', () => {
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    await cluster?.stopAll();
    cluster = null;
  });

  it('takes a snapshot every N applied entries and compacts the log behind it', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3'], snapshotPolicy);
    const leader = await cluster.waitLeader();
    let last = 0;
    for (let i = 0; i < 60; i++) last = (await leader.node.propose(sumCommand(1))).index;
    await cluster.waitApplied(last);
    for (const m of cluster.members.values()) {
      await waitFor(`${m.id} to snapshot past 40`, () => m.storage.snapshotMeta().index >= 40, {
        timeoutMs: 20_000,
      });
      const meta = m.storage.snapshotMeta();
      expect(meta.config.voters.sort()).toEqual(['n1', 'n2', 'n3']);
      expect(m.storage.firstIndex()).toBeGreaterThan(1);
      expect(m.storage.firstIndex()).toBeLessThanOrEqual(meta.index - snapshotPolicy.snapshotKeepEntries + 1);
    }
    const meta = await leader.node.snapshotNow();
    expect(meta.index).toBeGreaterThanOrEqual(last - 1);
  });

  it('a node cut off while the log was compacted past it catches up by snapshot', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3'], snapshotPolicy);
    const leader = await cluster.waitLeader();
    await leader.node.propose(sumCommand(1));
    const lagging = [...cluster.members.values()].find((m) => m.id !== leader.id)!;
    cluster.net.isolate(lagging.id);
    let last = 0;
    for (let i = 0; i < 80; i++) last = (await leader.node.propose(sumCommand(1))).index;
    await waitFor(
      'the leader to compact past the lagging node',
      () => leader.storage.firstIndex() > lagging.storage.lastIndex() + 1,
      { timeoutMs: 20_000 },
    );
    cluster.net.heal();
    await cluster.waitApplied(last, [lagging.id], 30_000);
    expect(lagging.sm.restores).toBeGreaterThanOrEqual(1);
    expect(lagging.sm.value).toBe(81);
    expect(lagging.sm.value).toBe(leader.sm.value);
    // The restarted-from-snapshot node keeps working normally.
    const out = await leader.node.propose(sumCommand(1));
    await cluster.waitApplied(out.index);
    expect(lagging.sm.value).toBe(82);
  });

  it('a restarted node restores its state machine from its snapshot and replays the log after it', async () => {
    cluster = await TestCluster.start(['n1', 'n2', 'n3'], snapshotPolicy);
    const leader = await cluster.waitLeader();
    let last = 0;
    for (let i = 0; i < 45; i++) last = (await leader.node.propose(sumCommand(2))).index;
    const follower = [...cluster.members.values()].find((m) => m.id !== leader.id)!;
    await cluster.waitApplied(last, [follower.id]);
    await waitFor('a follower snapshot', () => follower.storage.snapshotMeta().index > 0, {
      timeoutMs: 20_000,
    });
    const durable = await cluster.crash(follower.id);
    const restarted = await cluster.startNode(follower.id, { storage: durable });
    await cluster.waitApplied(last, [follower.id]);
    expect(restarted.sm.restores).toBe(1);
    expect(restarted.sm.value).toBe(90);
  });

  it('publishes Prometheus metrics: persist latency, batch sizes, term, role, per-peer lag, proposal and snapshot stages', async () => {
    const registry = new Registry();
    cluster = await TestCluster.start(['n1'], { metrics: new PromRaftMetrics(registry), ...snapshotPolicy });
    const leader = await cluster.waitLeader();
    for (let i = 0; i < 25; i++) await leader.node.propose(sumCommand(1));
    let text = '';
    for (
      let i = 0;
      i < 500 &&
      !(
        /raft_role\{role="leader"\} 1/.test(text) &&
        /raft_snapshot_stage_seconds_count\{stage="write"\} 1/.test(text)
      );
      i++
    ) {
      await new Promise((r) => setTimeout(r, 20));
      text = await registry.metrics();
    }
    expect(text).toMatch(/raft_persist_seconds_count [1-9]/);
    expect(text).toMatch(/raft_ready_entries_bucket/);
    expect(text).toMatch(/raft_role\{role="leader"\} 1/);
    expect(text).toMatch(/raft_proposals_total\{outcome="accepted"\} 25/);
    // Every proposal applied here is measured in each of its stages, and the snapshot in each of its parts.
    for (const stage of ['persist', 'quorum', 'apply'])
      expect(text).toContain(`raft_proposal_stage_seconds_count{stage="${stage}"} 25`);
    for (const stage of ['capture_sync', 'capture', 'write', 'compact'])
      expect(text).toContain(`raft_snapshot_stage_seconds_count{stage="${stage}"} 1`);
  });
});
