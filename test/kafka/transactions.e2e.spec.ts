/**
 * kafkajs 2.2.4 transactions against the project's broker (scripts/kafka.sh, Kafka 4.4.0): what the Kafka
 * sink relies on, checked on its own. Each test uses its own topics and transactional ids.
 */
import * as path from 'node:path';
import { Kafka, Producer } from 'kafkajs';
import { brokers, Child, createTopic, kafkaClient, readCommitted, uniqueName } from './support';

jest.setTimeout(90_000);

const txnChild = path.join(__dirname, 'fixtures', 'txn-producer-child.js');

function txnProducer(kafka: Kafka, transactionalId: string): Producer {
  return kafka.producer({
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: 60_000,
    retry: { initialRetryTime: 20, retries: 1000 },
  });
}

const values = (records: { value: string | null }[]) => records.map((r) => r.value);

describe('Kafka transactions (kafkajs 2.2.4 against the project broker)', () => {
  const kafka = kafkaClient('txn-test');
  const producers: Producer[] = [];
  const children: Child[] = [];

  afterEach(async () => {
    for (const c of children.splice(0)) await c.kill9();
    for (const p of producers.splice(0)) await p.disconnect().catch(() => undefined);
  });

  it('a committed transaction is seen by a read_committed consumer, an aborted one is not', async () => {
    const topic = uniqueName('txn-commit');
    await createTopic(topic, 2);
    const producer = txnProducer(kafka, uniqueName('txn-commit-id'));
    producers.push(producer);
    await producer.connect();

    const t1 = await producer.transaction();
    await t1.send({
      topic,
      messages: [
        { key: 'a', value: 'c1' },
        { key: 'b', value: 'c2' },
      ],
    });
    await t1.commit();

    const t2 = await producer.transaction();
    await t2.send({
      topic,
      messages: [
        { key: 'a', value: 'x1' },
        { key: 'b', value: 'x2' },
      ],
    });
    await t2.abort();

    const t3 = await producer.transaction();
    await t3.send({ topic, messages: [{ key: 'a', value: 'c3' }] });
    await t3.commit();

    const got = await readCommitted(topic);
    expect(values(got).sort()).toEqual(['c1', 'c2', 'c3']);
    expect(values(got.filter((r) => r.key === 'a'))).toEqual(['c1', 'c3']);
  });

  it('a producer killed mid-transaction: a new producer with the same transactional id aborts it', async () => {
    const topic = uniqueName('txn-kill');
    const transactionalId = uniqueName('txn-kill-id');
    await createTopic(topic, 1);

    const before = txnProducer(kafka, transactionalId);
    producers.push(before);
    await before.connect();
    const t0 = await before.transaction();
    await t0.send({ topic, messages: [{ key: 'k', value: 'committed-before' }] });
    await t0.commit();
    await before.disconnect();

    const child = new Child(txnChild, [brokers.join(','), topic, transactionalId, '5']);
    children.push(child);
    await child.waitFor(/^SENT$/);
    await child.kill9();

    // the dangling transaction (60 s timeout) holds read_committed readers back at its first record
    await expect(readCommitted(topic, { timeoutMs: 2_000 })).rejects.toThrow(/sentinels/);

    const started = Date.now();
    const next = txnProducer(kafka, transactionalId);
    producers.push(next);
    await next.connect();
    const t1 = await next.transaction(); // InitProducerId: bumps the epoch, aborts the dangling transaction
    await t1.send({ topic, messages: [{ key: 'k', value: 'committed-after' }] });
    await t1.commit();
    expect(Date.now() - started).toBeLessThan(20_000);

    const got = await readCommitted(topic);
    expect(values(got)).toEqual(['committed-before', 'committed-after']);
  });

  it('an old producer still running is fenced by a new one with the same transactional id', async () => {
    const topic = uniqueName('txn-fence');
    const transactionalId = uniqueName('txn-fence-id');
    await createTopic(topic, 1);

    const old = txnProducer(kafka, transactionalId);
    producers.push(old);
    await old.connect();
    const t0 = await old.transaction();
    await t0.send({ topic, messages: [{ key: 'k', value: 'old-1' }] });
    await t0.commit();

    // the old producer opens a transaction; the new one registers (aborting it) and commits its own
    const tOld = await old.transaction();
    await tOld.send({ topic, messages: [{ key: 'k', value: 'old-open' }] });

    const fresh = txnProducer(kafka, transactionalId);
    producers.push(fresh);
    await fresh.connect();
    const tNew = await fresh.transaction();
    await tNew.send({ topic, messages: [{ key: 'k', value: 'new-1' }] });
    await tNew.commit();

    let fenced: any;
    try {
      await tOld.commit();
    } catch (err) {
      fenced = err;
    }
    expect(fenced).toBeDefined();
    expect(`${fenced?.type ?? ''} ${fenced?.message ?? ''}`).toMatch(
      /INVALID_PRODUCER_EPOCH|PRODUCER_FENCED|old epoch|Unknown error code 90/,
    );

    // and a fresh transaction of the old producer fails as well
    let fencedAgain: any;
    try {
      const t = await old.transaction();
      await t.send({ topic, messages: [{ key: 'k', value: 'old-2' }] });
      await t.commit();
    } catch (err) {
      fencedAgain = err;
    }
    expect(fencedAgain).toBeDefined();

    const got = await readCommitted(topic);
    expect(values(got)).toEqual(['old-1', 'new-1']);
  });
});
