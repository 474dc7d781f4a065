/**
 * The projector's Kafka sink end to end (PROJECTOR.md "Kafka"): a real 3-node cluster, real projector processes
 * and a real broker. What a read_committed consumer sees must be every committed event of `$all` exactly once,
 * in position order per stream (per partition), with the contract's key, value and headers — across kill -9 of
 * the projector in the middle of batches and a broker stopped and restarted during a load.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClusterHarness, freePorts } from '../support/cluster-harness';
import { E2EClient, Envelope, sleep } from '../support/e2e-client';
import { ProjectorProcess } from '../support/projector-harness';
import { convergedAll, stableEnv, WriteLoad } from '../support/workload';
import { brokers, kafkaSh, readCommitted, ReadRecord, repoRoot, uniqueName } from '../kafka/support';

jest.setTimeout(300_000);

/** Every event of `all` exactly once in the topic, in order per stream, with the contract's record shape. */
function expectExactlyOnce(records: ReadRecord[], all: Envelope[]): void {
  const byPosition = new Map<number, ReadRecord>();
  const duplicates: number[] = [];
  for (const r of records) {
    const p = Number(r.headers.position);
    if (byPosition.has(p)) duplicates.push(p);
    byPosition.set(p, r);
  }
  expect(duplicates).toEqual([]);
  const missing = all.filter((e) => !byPosition.has(e.position)).map((e) => e.position);
  expect(missing).toEqual([]);
  expect(records.length).toBe(all.length);
  for (const e of all) {
    const r = byPosition.get(e.position)!;
    expect(r.key).toBe(e.streamId);
    expect(r.headers).toEqual({
      'event-id': e.id,
      'event-type': e.type,
      'stream-id': e.streamId,
      revision: String(e.revision),
      position: String(e.position),
    });
    expect(JSON.parse(r.value!)).toEqual(e);
  }
  // Order per stream: within a partition (a stream's records all land in one), revisions ascend.
  const lastRevision = new Map<string, { revision: number; partition: number }>();
  for (const r of records) {
    const prev = lastRevision.get(r.key!);
    const revision = Number(r.headers.revision);
    if (prev) {
      expect(r.partition).toBe(prev.partition);
      expect(revision).toBe(prev.revision + 1);
    } else expect(revision).toBe(0);
    lastRevision.set(r.key!, { revision, partition: r.partition });
  }
}

async function waitCaughtUp(p: ProjectorProcess, head: number, sink: 'kafka' | 'postgres'): Promise<void> {
  await p.waitFor(`${sink} at position ${head}`, (s) => s.sinks[sink].position === head, {
    timeoutMs: 120_000,
  });
}

describe('projector → Kafka (exactly once for read_committed consumers)', () => {
  let h: ClusterHarness;
  let client: E2EClient;
  const procs: ProjectorProcess[] = [];

  beforeAll(async () => {
    h = await ClusterHarness.start({ nodes: 3, env: stableEnv });
    await h.waitForLeader();
    client = new E2EClient(() => h.urls());
  });

  afterAll(async () => {
    for (const p of procs) await p.destroy().catch(() => undefined);
    await h?.cleanup();
  });

  function startProjector(env: Record<string, string>): Promise<ProjectorProcess> {
    return ProjectorProcess.start({
      env: {
        EVENT_STORE_URLS: [...h.nodes.values()].map((n) => n.url).join(','),
        PROJECTOR_SINKS: 'kafka',
        PROJECTOR_BATCH_EVENTS: '50',
        PROJECTOR_LINGER_MS: '5',
        ...env,
      },
    }).then((p) => {
      procs.push(p);
      return p;
    });
  }

  it('keeps exactly-once across repeated kill -9 of the projector mid-batches', async () => {
    const topic = uniqueName('proj-kill');
    const streams = Array.from({ length: 12 }, (_, i) => `order-k${i}`);
    const load = new WriteLoad(client, { streams, concurrency: 8 }).start();
    try {
      await load.waitAcked(200);
      const p = await startProjector({ KAFKA_BROKERS: brokers.join(','), KAFKA_TOPIC: topic });
      await p.waitReady(60_000);
      for (let round = 0; round < 4; round++) {
        // let it write some batches, then kill it at a moment that is not a batch boundary on purpose
        await p.waitFor('kafka to make progress', (s) => s.sinks.kafka.position >= 0, { timeoutMs: 60_000 });
        await sleep(300 + Math.floor(Math.random() * 900));
        await p.kill9();
        await load.waitAcked(50);
        await p.restart();
        await p.waitReady(60_000);
      }
    } finally {
      await load.stop();
    }
    expect(load.rejected).toEqual([]);
    const all = await convergedAll(h, client);
    const p = procs[procs.length - 1];
    await waitCaughtUp(p, all.length - 1, 'kafka');
    expectExactlyOnce(await readCommitted(topic, { timeoutMs: 60_000 }), all);
  });

  it('pauses while the broker is down and resumes with nothing lost or repeated', async () => {
    const [port] = await freePorts(1);
    const [controller] = await freePorts(1);
    const env = {
      KAFKA_PORT: String(port),
      KAFKA_CONTROLLER_PORT: String(controller),
      KAFKA_DATA_DIR: path.join(repoRoot, '.kafka', `projector-test-${process.pid}`),
    };
    const privateBrokers = [`127.0.0.1:${port}`];
    await kafkaSh('start', env);
    try {
      const topic = uniqueName('proj-broker');
      const p = await startProjector({ KAFKA_BROKERS: privateBrokers.join(','), KAFKA_TOPIC: topic });
      await p.waitReady(60_000);
      const load = new WriteLoad(client, { streams: ['b-1', 'b-2', 'b-3'], concurrency: 4 }).start();
      try {
        await load.waitAcked(100);
        await kafkaSh('stop', env);
        await p.waitFor('kafka paused', (s) => s.sinks.kafka.state === 'paused', { timeoutMs: 90_000 });
        const down = await fetch(`${p.url}/ready`);
        expect(down.status).toBe(503);
        await load.waitAcked(100);
        await kafkaSh('start', env);
        await p.waitFor('kafka running again', (s) => s.sinks.kafka.state === 'running', {
          timeoutMs: 120_000,
        });
        await load.waitAcked(50);
      } finally {
        await load.stop();
      }
      const all = await convergedAll(h, client);
      await waitCaughtUp(p, all.length - 1, 'kafka');
      expectExactlyOnce(await readCommitted(topic, { timeoutMs: 60_000, brokerList: privateBrokers }), all);
      expect(p.logs.some((l) => /kafka: paused/.test(l))).toBe(true);
    } finally {
      await kafkaSh('stop', env).catch(() => undefined);
      fs.rmSync(env.KAFKA_DATA_DIR, { recursive: true, force: true });
    }
  });

  it('a second projector with the same id fences the first; the topic stays exactly-once', async () => {
    const topic = uniqueName('proj-fence');
    const common = { KAFKA_BROKERS: brokers.join(','), KAFKA_TOPIC: topic, PROJECTOR_ID: 'fence-test' };
    const a = await startProjector(common);
    await a.waitReady(60_000);
    const load = new WriteLoad(client, { streams: ['f-1', 'f-2'], concurrency: 4 }).start();
    let b: ProjectorProcess;
    try {
      await load.waitAcked(100);
      b = await startProjector(common);
      await b.waitReady(60_000);
      await load.waitAcked(100);
    } finally {
      await load.stop();
    }
    // The newer producer fenced the older one: the older stops (no fencing back and forth), the newer goes on.
    const sa = await a.waitFor('the first projector fenced', (s) => s.sinks.kafka.state === 'stopped', {
      timeoutMs: 60_000,
    });
    expect(sa.sinks.kafka.error).toMatch(/fenc|epoch/i);
    const all = await convergedAll(h, client);
    await waitCaughtUp(b!, all.length - 1, 'kafka');
    expectExactlyOnce(await readCommitted(topic, { timeoutMs: 60_000 }), all);
  });
});
