/**
 * The Kafka ceiling for the projector benchmark: plain kafkajs (no sink, no checkpoint, no subscription)
 * producing given records in transactions of a given size to a fresh topic, with the producer settings the
 * Kafka sink uses (idempotent, one request in flight, `retry.initialRetryTime` 20 ms). The benchmark compares
 * the sink's records/s to this.
 *
 * As a script: `node --require ./tools/swc-register.js bench/support/kafka-ceiling.ts [records] [transaction size]`
 * against KAFKA_BROKERS (default 127.0.0.1:9092); prints one JSON line.
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, Partitioners } from 'kafkajs';

export interface CeilingRecord {
  key: string;
  value: string;
  headers?: Record<string, string>;
}

export interface KafkaCeilingOptions {
  brokers: readonly string[];
  records: readonly CeilingRecord[];
  /** Records per transaction. */
  transactionSize: number;
  /** Partitions of the fresh topic (default 3, the sink's default). */
  partitions?: number;
  /** Topic name prefix; a unique suffix is added (default `ceiling`). */
  topicPrefix?: string;
  /** Keep the topic afterwards (default: deleted). */
  keepTopic?: boolean;
}

export interface KafkaCeilingResult {
  topic: string;
  records: number;
  transactions: number;
  transactionSize: number;
  seconds: number;
  recordsPerSecond: number;
}

export async function kafkaCeiling(opts: KafkaCeilingOptions): Promise<KafkaCeilingResult> {
  if (!(opts.transactionSize >= 1)) throw new Error('kafkaCeiling: transactionSize must be >= 1');
  const kafka = new Kafka({
    clientId: 'kafka-ceiling',
    brokers: [...opts.brokers],
    logLevel: logLevel.NOTHING,
    retry: { initialRetryTime: 100, retries: 5 },
  });
  const topic = `${opts.topicPrefix ?? 'ceiling'}-${Date.now().toString(36)}-${randomUUID().slice(0, 8)}`;
  const admin = kafka.admin();
  await admin.connect();
  const producer = kafka.producer({
    transactionalId: `kafka-ceiling-${randomUUID()}`,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { initialRetryTime: 20, maxRetryTime: 1_000, retries: Number.MAX_SAFE_INTEGER },
  });
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: opts.partitions ?? 3 }],
    });
    await producer.connect();
    // registration with the coordinator (InitProducerId) and metadata, outside the timed part
    const warm = await producer.transaction();
    await warm.abort();

    let transactions = 0;
    const started = process.hrtime.bigint();
    for (let i = 0; i < opts.records.length; i += opts.transactionSize) {
      const chunk = opts.records.slice(i, i + opts.transactionSize);
      const txn = await producer.transaction();
      try {
        await txn.sendBatch({ topicMessages: [{ topic, messages: chunk.map((r) => ({ ...r })) }] });
        await txn.commit();
      } catch (err) {
        await txn.abort().catch(() => undefined);
        throw err;
      }
      transactions++;
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return {
      topic,
      records: opts.records.length,
      transactions,
      transactionSize: opts.transactionSize,
      seconds,
      recordsPerSecond: opts.records.length / seconds,
    };
  } finally {
    await producer.disconnect().catch(() => undefined);
    if (!opts.keepTopic) await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  }
}

/** Records shaped like the sink's (envelope JSON, five headers), over `streams` streams. */
export function sampleRecords(count: number, streams = 100): CeilingRecord[] {
  const out: CeilingRecord[] = [];
  for (let p = 0; p < count; p++) {
    const streamId = `order-${p % streams}`;
    const envelope = {
      id: randomUUID(),
      streamId,
      type: 'ItemAdded',
      revision: Math.floor(p / streams),
      position: p,
      timestamp: new Date().toISOString(),
      data: { sku: `sku-${p % 997}`, quantity: 1 + (p % 5), price: 9.99 },
      metadata: { correlationId: randomUUID() },
    };
    out.push({
      key: streamId,
      value: JSON.stringify(envelope),
      headers: {
        'event-id': envelope.id,
        'event-type': envelope.type,
        'stream-id': streamId,
        revision: String(envelope.revision),
        position: String(p),
      },
    });
  }
  return out;
}

if (require.main === module) {
  const count = Number(process.argv[2] ?? 50_000);
  const size = Number(process.argv[3] ?? 1_000);
  const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
  kafkaCeiling({ brokers, records: sampleRecords(count), transactionSize: size })
    .then((r) => {
      process.stdout.write(`${JSON.stringify({ ...r, recordsPerSecond: Math.round(r.recordsPerSecond) })}\n`);
    })
    .catch((err) => {
      process.stderr.write(`kafka-ceiling: ${err?.stack ?? err}\n`);
      process.exit(1);
    });
}
