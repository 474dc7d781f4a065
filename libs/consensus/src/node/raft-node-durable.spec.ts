import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DurableStorage } from '../storage';
import { SumStateMachine, sumCommand } from '../testing/sum-state-machine';
import { TestCluster, clusterConfig, waitUntil } from './node-test-cluster';

jest.setTimeout(120_000);

/** The node shell on the real segment-file storage (fsync on): a cluster stops and restarts from its directories. */
describe('RaftNode on DurableStorage', () => {
  let root = '';
  let cluster: TestCluster | null = null;
  const ids = ['n1', 'n2', 'n3'];
  const quiet = { log: () => {}, warn: () => {}, error: () => {} };

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'raft-node-durable-'));
  });

  afterEach(async () => {
    await cluster?.stopAll();
    cluster = null;
    fs.rmSync(root, { recursive: true, force: true });
  });

  async function startAll(c: TestCluster): Promise<void> {
    const bootstrap = clusterConfig(ids);
    for (const id of ids) {
      const storage = await DurableStorage.open(path.join(root, id), { logger: quiet });
      await c.startNode(id, { bootstrap, storage, sm: new SumStateMachine() });
    }
  }

  it('commits, snapshots and compacts on disk, and a restarted cluster rebuilds the same state', async () => {
    const policy = { snapshotEveryEntries: 30, snapshotEveryBytes: 1024 * 1024, snapshotKeepEntries: 5 };
    cluster = new TestCluster(policy);
    await startAll(cluster);
    const leader = await cluster.waitLeader();
    let last = 0;
    for (let round = 0; round < 10; round++) {
      const outs = await Promise.all(Array.from({ length: 10 }, () => leader.node.propose(sumCommand(1))));
      last = Math.max(last, ...outs.map((o) => o.index));
    }
    await cluster.waitApplied(last);
    for (const m of cluster.members.values()) {
      await waitUntil(() => m.node.status().snapshot.index > 0, 20_000, `${m.id} to take a snapshot`);
    }
    await cluster.stopAll();

    cluster = new TestCluster(policy);
    await startAll(cluster);
    await cluster.waitApplied(last);
    for (const m of cluster.members.values()) {
      expect(m.sm.value).toBe(100);
      expect(m.sm.restores).toBe(1);
    }
    const out = await cluster.propose(1);
    await cluster.waitApplied(out.index);
    for (const m of cluster.members.values()) expect(m.sm.value).toBe(101);
  });
});
