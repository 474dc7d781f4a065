/**
 * The Kafka sink (apps/projector/src/sinks/kafka) against a real broker: the contract of PROJECTOR.md
 * ("Kafka") — records, keys, headers, the checkpoint — and exactly-once under a read_committed consumer
 * across a writer killed mid-transaction, a second writer with the same transactional id, and a broker
 * stopped and restarted (a private broker on its own port, started by this suite, so the shared one is left
 * alone). Each test uses its own topics and transactional id.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EventEnvelope } from '@app/client';
import { KafkaSink, KafkaSinkOptions } from '../../apps/projector/src/sinks/kafka/kafka-sink';
import { KafkajsTransactionalProducer } from '../../apps/projector/src/sinks/kafka/kafkajs-producer';
import { SinkFencedError, SinkUnavailableError } from '../../apps/projector/src/sinks/sink';
import { makeEvents } from './sink-events';
import {
  brokers,
  Child,
  kafkaSh,
  readCommitted,
  ReadRecord,
  repoRoot,
  uniqueName,
  withAdmin,
} from './support';

jest.setTimeout(180_000);

const sinkChild = path.join(__dirname, 'fixtures', 'sink-child.js');

function sinkOptions(topic: string, extra: Partial<KafkaSinkOptions> = {}): KafkaSinkOptions {
  return {
    brokers,
    topic,
    transactionalId: `tx-${topic}`,
    partitions: 3,
    operationTimeoutMs: 20_000,
    ...extra,
  };
}

/**
 * Every position in [0, count) exactly once, and per stream in position (= revision) order along the
 * partition's offsets.
 */
function expectExactlyOnceInOrder(records: ReadRecord[], count: number): void {
  const envelopes = records.map((r) => ({ r, e: JSON.parse(r.value!) as EventEnvelope }));
  const positions = envelopes.map(({ e }) => e.position).sort((a, b) => a - b);
  const dupes = positions.filter((p, i) => i > 0 && positions[i - 1] === p);
  expect({ duplicates: [...new Set(dupes)].slice(0, 20), count: positions.length }).toEqual({
    duplicates: [],
    count,
  });
  expect(positions).toEqual(Array.from({ length: count }, (_, i) => i));
  const byStream = new Map<
    string,
    { partition: number; offset: number; position: number; revision: number }[]
  >();
  for (const { r, e } of envelopes) {
    const list = byStream.get(e.streamId) ?? [];
    list.push({ partition: r.partition, offset: r.offset, position: e.position, revision: e.revision });
    byStream.set(e.streamId, list);
  }
  for (const [streamId, list] of byStream) {
    expect({ streamId, partitions: [...new Set(list.map((x) => x.partition))].length }).toEqual({
      streamId,
      partitions: 1,
    });
    list.sort((a, b) => a.offset - b.offset);
    const revisions = list.map((x) => x.revision);
    expect({ streamId, revisions }).toEqual({ streamId, revisions: revisions.map((_, i) => i) });
  }
}

describe('KafkaSink against a real broker', () => {
  const sinks: KafkaSink[] = [];
  const children: Child[] = [];
  const track = (s: KafkaSink) => (sinks.push(s), s);

  afterEach(async () => {
    for (const c of children.splice(0)) await c.kill9();
    for (const s of sinks.splice(0)) await s.close();
  });

  it('open waits out an error Kafka marks retriable (a coordinator still loading), not others', async () => {
    const failingInit = (first: { retriable: boolean }) => {
      let failures = 1;
      const factory: KafkaSinkOptions['producerFactory'] = (o) => {
        const p = new KafkajsTransactionalProducer(o);
        const init = p.init.bind(p);
        p.init = async () => {
          if (failures-- > 0)
            throw Object.assign(new Error('The coordinator is loading and hence cannot process requests'), {
              name: 'KafkaJSProtocolError',
              type: 'COORDINATOR_LOAD_IN_PROGRESS',
              ...first,
            });
          return init();
        };
        return p;
      };
      return { factory, failed: () => failures < 1 };
    };
    const retriable = failingInit({ retriable: true });
    const sink = track(
      new KafkaSink(sinkOptions(uniqueName('sink-retry'), { producerFactory: retriable.factory })),
    );
    expect(await sink.open()).toBe(-1);
    expect(retriable.failed()).toBe(true);
    const fatal = failingInit({ retriable: false });
    const other = track(
      new KafkaSink(sinkOptions(uniqueName('sink-fatal'), { producerFactory: fatal.factory })),
    );
    await expect(other.open()).rejects.toThrow(/coordinator is loading/);
  });

  it('writes batches; reopening (the same or a new instance) returns the checkpoint', async () => {
    const topic = uniqueName('sink-ckpt');
    const sink = track(new KafkaSink(sinkOptions(topic)));
    expect(await sink.open()).toBe(-1);
    await sink.write(makeEvents(0, 10));
    await sink.write(makeEvents(10, 5));
    await sink.write([]);
    await sink.close();
    expect(await sink.open()).toBe(14);
    await sink.write(makeEvents(15, 5));
    // a batch that would repeat written positions is refused
    await expect(sink.write(makeEvents(19, 2))).rejects.toThrow(/not after the checkpoint 19/);
    await sink.close();

    const again = track(new KafkaSink(sinkOptions(topic)));
    expect(await again.open()).toBe(19);
    // another transactional id on the same topics has its own checkpoint
    const other = track(new KafkaSink(sinkOptions(topic, { transactionalId: `other-${topic}` })));
    expect(await other.open()).toBe(-1);
    expectExactlyOnceInOrder(await readCommitted(topic), 20);
  });

  it('records, keys, headers and the checkpoint record are as the contract says', async () => {
    const topic = uniqueName('sink-contract');
    const sink = track(new KafkaSink(sinkOptions(topic)));
    await sink.open();
    const events = makeEvents(0, 12, 4);
    events[5] = { ...events[5], data: { nested: { a: [1, 2, 3], s: 'é"\n' } }, metadata: null };
    await sink.write(events.slice(0, 6));
    await sink.write(events.slice(6));

    const records = await readCommitted(topic);
    expect(records).toHaveLength(12);
    const byPosition = new Map(records.map((r) => [JSON.parse(r.value!).position as number, r]));
    for (const e of events) {
      const r = byPosition.get(e.position)!;
      expect(r.key).toBe(e.streamId);
      expect(JSON.parse(r.value!)).toEqual({
        id: e.id,
        streamId: e.streamId,
        type: e.type,
        revision: e.revision,
        position: e.position,
        timestamp: e.timestamp,
        data: e.data,
        metadata: e.metadata,
      });
      expect(Object.keys(JSON.parse(r.value!))).toEqual([
        'id',
        'streamId',
        'type',
        'revision',
        'position',
        'timestamp',
        'data',
        'metadata',
      ]);
      expect(r.headers).toEqual({
        'event-id': e.id,
        'event-type': e.type,
        'stream-id': e.streamId,
        revision: String(e.revision),
        position: String(e.position),
      });
    }
    expectExactlyOnceInOrder(records, 12);

    const checkpoints = (await readCommitted(`${topic}-checkpoints`)).filter((r) => r.key === `tx-${topic}`);
    expect(checkpoints.map((r) => JSON.parse(r.value!))).toEqual([{ position: 5 }, { position: 11 }]);

    const meta = await withAdmin((admin) =>
      admin.fetchTopicMetadata({ topics: [topic, `${topic}-checkpoints`] }),
    );
    expect(Object.fromEntries(meta.topics.map((t) => [t.name, t.partitions.length]))).toEqual({
      [topic]: 3,
      [`${topic}-checkpoints`]: 1,
    });
    const configs = await withAdmin((admin) =>
      admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: 2 /* TOPIC */, name: `${topic}-checkpoints`, configNames: ['cleanup.policy'] }],
      }),
    );
    expect(configs.resources[0].configEntries[0].configValue).toBe('compact');
  });

  it('category mode: one topic per category, created on first sight, names made legal', async () => {
    const topic = uniqueName('sink-cat');
    const ids = ['order-1', 'order-2', 'cart-9', 'tenant:a@b-3', 'inventory'];
    const sink = track(new KafkaSink(sinkOptions(topic, { topicMode: 'category', partitions: 2 })));
    await sink.open();
    await sink.write(makeEvents(0, 10, ids.length, (k) => ids[k]));
    await sink.write(makeEvents(10, 10, ids.length, (k) => ids[k]));

    const expected: Record<string, string[]> = {
      [`${topic}.order`]: ['order-1', 'order-2'],
      [`${topic}.cart`]: ['cart-9'],
      [`${topic}.tenant_a_b`]: ['tenant:a@b-3'],
      [`${topic}.inventory`]: ['inventory'],
    };
    let total = 0;
    for (const [t, streams] of Object.entries(expected)) {
      const records = await readCommitted(t);
      total += records.length;
      expect([...new Set(records.map((r) => r.key))].sort()).toEqual([...streams].sort());
      expect(records.every((r) => r.key === r.headers['stream-id'])).toBe(true);
    }
    expect(total).toBe(20);
    await sink.close();
    expect(await track(new KafkaSink(sinkOptions(topic, { topicMode: 'category' }))).open()).toBe(19);
  });

  it('a writer killed (kill -9) mid-transaction: reopen returns the last committed batch; resending leaves no duplicates', async () => {
    const topic = uniqueName('sink-kill');
    const cfg = {
      brokers,
      topic,
      topicMode: 'single',
      transactionalId: `tx-${topic}`,
      partitions: 3,
      streams: 7,
      batchSize: 50,
    };
    const first = new Child(sinkChild, [JSON.stringify({ ...cfg, batches: 3, hang: true })]);
    children.push(first);
    expect(await first.waitFor(/^OPEN /)).toBe('OPEN -1');
    expect(await first.waitFor(/^HANG /)).toBe('HANG 199');
    await first.kill9();

    // the dangling transaction holds read_committed readers back: the kill really was mid-transaction
    await expect(readCommitted(topic, { timeoutMs: 2_000 })).rejects.toThrow(/sentinels/);

    // a new process: open() fences the dead writer, aborts its transaction, and returns the last commit
    const second = new Child(sinkChild, [JSON.stringify({ ...cfg, batches: 4, hang: false })]);
    children.push(second);
    expect(await second.waitFor(/^OPEN /)).toBe('OPEN 149');
    await second.waitFor(/^DONE$/);

    expectExactlyOnceInOrder(await readCommitted(topic), 350);
    const sink = track(new KafkaSink(sinkOptions(topic)));
    expect(await sink.open()).toBe(349);
  });

  it('a second instance with the same transactional id fences the first', async () => {
    const topic = uniqueName('sink-fence');
    const a = track(new KafkaSink(sinkOptions(topic)));
    expect(await a.open()).toBe(-1);
    await a.write(makeEvents(0, 10));

    const b = track(new KafkaSink(sinkOptions(topic)));
    expect(await b.open()).toBe(9);
    const err = await a.write(makeEvents(10, 10)).catch((e) => e);
    expect(err).toBeInstanceOf(SinkFencedError);
    // and it stays fenced until reopened
    await expect(a.write(makeEvents(10, 10))).rejects.toBeInstanceOf(SinkFencedError);

    await b.write(makeEvents(10, 10));
    expectExactlyOnceInOrder(await readCommitted(topic), 20);

    // reopening the first takes the id back and fences the second
    expect(await a.open()).toBe(19);
    await expect(b.write(makeEvents(20, 5))).rejects.toBeInstanceOf(SinkFencedError);
    await a.write(makeEvents(20, 5));
    expectExactlyOnceInOrder(await readCommitted(topic), 25);
  });

  describe('broker stopped and restarted (a private broker)', () => {
    const port = 19_100 + (process.pid % 400) * 2;
    const env = {
      KAFKA_PORT: String(port),
      KAFKA_CONTROLLER_PORT: String(port + 1),
      KAFKA_DATA_DIR: path.join(repoRoot, '.kafka', `test-${process.pid}`),
    };
    const privateBrokers = [`127.0.0.1:${port}`];

    beforeAll(async () => {
      await kafkaSh('start', env);
    });

    afterAll(async () => {
      await kafkaSh('stop', env).catch(() => undefined);
      fs.rmSync(env.KAFKA_DATA_DIR, { recursive: true, force: true });
    });

    it('write throws SinkUnavailableError while the broker is down; after restart open() + write resume exactly once', async () => {
      const topic = uniqueName('sink-down');
      const opts = sinkOptions(topic, {
        brokers: privateBrokers,
        operationTimeoutMs: 5_000,
        connectionTimeoutMs: 1_000,
        requestTimeoutMs: 4_000,
      });
      const sink = track(new KafkaSink(opts));
      // A broker that just started may answer GROUP_LOAD_IN_PROGRESS past the 5 s bound: open() then fails with
      // SinkUnavailableError and is retried, as the projector's lane does.
      const openRetrying = async (): Promise<number> => {
        const deadline = Date.now() + 60_000;
        for (;;) {
          try {
            return await sink.open();
          } catch (e) {
            expect(e).toBeInstanceOf(SinkUnavailableError);
            if (Date.now() > deadline) throw e;
            await new Promise((r) => setTimeout(r, 500));
          }
        }
      };
      expect(await openRetrying()).toBe(-1);
      await sink.write(makeEvents(0, 100));
      await sink.write(makeEvents(100, 100));

      await kafkaSh('stop', env);
      const started = Date.now();
      const err = await sink.write(makeEvents(200, 100)).catch((e) => e);
      expect(err).toBeInstanceOf(SinkUnavailableError);
      expect(Date.now() - started).toBeLessThan(15_000);
      // open() fails too while it is down (the lane retries with backoff)
      await expect(sink.open()).rejects.toBeInstanceOf(SinkUnavailableError);

      await kafkaSh('start', env);
      expect(await openRetrying()).toBe(199);
      await sink.write(makeEvents(200, 100));
      await sink.write(makeEvents(300, 100));
      expectExactlyOnceInOrder(await readCommitted(topic, { brokerList: privateBrokers }), 400);
    });
  });
});
