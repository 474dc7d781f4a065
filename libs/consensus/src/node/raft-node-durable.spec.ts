import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { DurableStorage } from '../storage';
import { SumStateMachine, sumCommand } from '../testing/sum-state-machine';
import { StateMachine } from './ports';
import { TestCluster, clusterConfig } from '../testing/node-test-cluster';
import { waitFor } from '../testing/wait-for';

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

  async function startAll(
    c: TestCluster,
    sm: (id: string) => SumStateMachine = () => new SumStateMachine(),
    segmentBytes?: number,
  ): Promise<void> {
    const bootstrap = clusterConfig(ids);
    for (const id of ids) {
      const storage = await DurableStorage.open(path.join(root, id), { logger: quiet, segmentBytes });
      await c.startNode(id, { bootstrap, storage, sm: sm(id) });
    }
  }

  /**
   * A SumStateMachine whose snapshots are parts: the first byte as bytes, the rest as a file it writes (and
   * removes again at the next snapshot, as the event store prunes its cuts): the node's storage must link it.
   */
  /** Inode of each file partsSum wrote, by `node:index` (the file itself is removed at the next snapshot). */
  const smFileInodes = new Map<string, number>();

  function partsSum(id: string): SumStateMachine {
    const sm = new SumStateMachine();
    const dir = path.join(root, `${id}-sm`);
    fs.mkdirSync(dir, { recursive: true });
    const streamed = sm.snapshot.bind(sm);
    let previous: string | null = null;
    (sm as StateMachine).snapshot = async () => {
      const snap = await streamed();
      const chunks: Buffer[] = [];
      for await (const c of snap.data) chunks.push(Buffer.from(c));
      const bytes = Buffer.concat(chunks);
      const file = path.join(dir, `state-${snap.index}`);
      fs.writeFileSync(file, bytes.subarray(1));
      smFileInodes.set(`${id}:${snap.index}`, fs.statSync(file).ino);
      if (previous !== null && previous !== file) fs.rmSync(previous, { force: true });
      previous = file;
      const rest = bytes.subarray(1);
      return {
        index: snap.index,
        parts: [{ bytes: bytes.subarray(0, 1) }, { file, length: rest.length, crc32c: crc32c(rest) >>> 0 }],
      };
    };
    return sm;
  }

  it('a snapshot in parts is hard-linked into storage; a restarted cluster and a lagging node restore from it', async () => {
    const policy = { snapshotEveryEntries: 30, snapshotEveryBytes: 1024 * 1024, snapshotKeepEntries: 5 };
    cluster = new TestCluster(policy);
    // Small segments, so that compaction (whole segments) soon leaves the lagging node behind.
    await startAll(cluster, partsSum, 4096);
    const leader = await cluster.waitLeader();
    const lagging = [...cluster.members.values()].find((m) => m.id !== leader.id)!;
    cluster.net.isolate(lagging.id);
    let last = 0;
    for (let round = 0; round < 30; round++) {
      const outs = await Promise.all(Array.from({ length: 10 }, () => leader.node.propose(sumCommand(1))));
      last = Math.max(last, ...outs.map((o) => o.index));
    }
    await waitFor(
      'the leader to compact past the lagging node',
      () => leader.storage.firstIndex() > lagging.storage.lastIndex() + 1,
      { timeoutMs: 20_000 },
    );
    // The leader's snapshot is a version-2 store whose file part shares the state machine's inode.
    const snaps = path.join(root, leader.id, 'snapshots');
    const latest = fs
      .readdirSync(snaps)
      .filter((n) => /^\d{20}-\d+$/.test(n))
      .sort()
      .pop()!;
    const manifest = JSON.parse(fs.readFileSync(path.join(snaps, latest, 'manifest.json'), 'utf8'));
    expect(manifest.version).toBe(2);
    const filePart = manifest.parts.find((p: { kind: string }) => p.kind === 'file');
    // Compared with the inode recorded when the state machine wrote the file: by now it may have taken a
    // newer snapshot and removed that file, which the store's link keeps alive.
    expect(fs.statSync(path.join(snaps, latest, filePart.name)).ino).toBe(
      smFileInodes.get(`${leader.id}:${manifest.index}`),
    );
    // The lagging node gets it by InstallSnapshot (chunks read across the parts).
    cluster.net.heal();
    await cluster.waitApplied(last, [lagging.id], 30_000);
    expect(lagging.sm.restores).toBeGreaterThanOrEqual(1);
    expect(lagging.sm.value).toBe(300);
    await cluster.stopAll();
    // The state machines' own files are gone; the stores' links still hold the snapshots.
    for (const id of ids) fs.rmSync(path.join(root, `${id}-sm`), { recursive: true, force: true });
    cluster = new TestCluster(policy);
    await startAll(cluster, partsSum, 4096);
    await cluster.waitApplied(last);
    for (const m of cluster.members.values()) {
      expect(m.sm.value).toBe(300);
      expect(m.sm.restores).toBe(1);
    }
  });

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
      await waitFor(`${m.id} to take a snapshot`, () => m.node.status().snapshot.index > 0, {
        timeoutMs: 20_000,
      });
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
