/**
 * Topic creation and the checkpoint read-back of the Kafka sink, with kafkajs (allowed here next to the
 * producer; nothing else in the projector imports kafkajs).
 */
import { randomUUID } from 'node:crypto';
import { Admin, Kafka } from 'kafkajs';
import { KafkaLogger } from './producer';
import { createKafka, withDeadline } from './kafkajs-support';

export interface TopicSpec {
  topic: string;
  partitions: number;
  /** -1: the broker's default.replication.factor */
  replicationFactor?: number;
  configs?: Record<string, string>;
}

export interface KafkaAdminOptions {
  brokers: readonly string[];
  clientId: string;
  logger: KafkaLogger;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Bound on each admin step and on the checkpoint read (ms). */
  operationTimeoutMs: number;
}

export class KafkaAdminClient {
  private readonly kafka: Kafka;
  private readonly admin: Admin;
  private readonly known = new Set<string>();

  constructor(private readonly opts: KafkaAdminOptions) {
    this.kafka = createKafka({
      brokers: opts.brokers,
      clientId: opts.clientId,
      logger: opts.logger,
      connectionTimeoutMs: opts.connectionTimeoutMs,
      requestTimeoutMs: opts.requestTimeoutMs,
      // a broker that just started answers GROUP_LOAD_IN_PROGRESS for a while: keep retrying (the whole read
      // is bounded by operationTimeoutMs below)
      retry: { initialRetryTime: 100, maxRetryTime: 1_000, retries: 60 },
    });
    this.admin = this.kafka.admin();
  }

  /** Connects and learns the existing topics. */
  async connect(): Promise<void> {
    await withDeadline(this.admin.connect(), this.opts.operationTimeoutMs, 'admin connect');
    const topics = await withDeadline(this.admin.listTopics(), this.opts.operationTimeoutMs, 'list topics');
    for (const t of topics) this.known.add(t);
  }

  isKnown(topic: string): boolean {
    return this.known.has(topic);
  }

  /** Creates the topics not known yet (an existing one is left as it is) and waits for their leaders. */
  async ensureTopics(specs: readonly TopicSpec[]): Promise<void> {
    const missing = specs.filter((s) => !this.known.has(s.topic));
    if (missing.length === 0) return;
    await withDeadline(
      this.admin.createTopics({
        waitForLeaders: true,
        timeout: this.opts.operationTimeoutMs,
        topics: missing.map((s) => ({
          topic: s.topic,
          numPartitions: s.partitions,
          replicationFactor: s.replicationFactor ?? -1,
          configEntries: Object.entries(s.configs ?? {}).map(([name, value]) => ({ name, value })),
        })),
      }),
      this.opts.operationTimeoutMs,
      'create topics',
    );
    for (const s of missing) this.known.add(s.topic);
  }

  /**
   * Reads `topic` from its beginning with a read_committed consumer, up to the record with key `markerKey`
   * and value `markerValue` (which the caller committed just before, after its producer's init: so no
   * transaction of the caller's is open and everything it committed before lies in front of the marker), and
   * returns the value of the last record with key `key` before it, or null. Bounded by `operationTimeoutMs`.
   */
  async readLastValueBefore(
    topic: string,
    key: string,
    markerKey: string,
    markerValue: string,
  ): Promise<string | null> {
    const consumer = this.kafka.consumer({
      groupId: `${this.opts.clientId}-checkpoint-reader-${randomUUID()}`,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: 100,
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      // a broker that just started answers GROUP_LOAD_IN_PROGRESS for a while: keep retrying (the whole read
      // is bounded by operationTimeoutMs below)
      retry: { initialRetryTime: 100, maxRetryTime: 1_000, retries: 60 },
    });
    let last: string | null = null;
    const read = new Promise<void>((resolve, reject) => {
      consumer.on(consumer.events.CRASH, (e) => reject(e.payload.error));
      (async () => {
        await consumer.connect();
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        await consumer.run({
          autoCommit: false,
          eachMessage: async ({ message }) => {
            const k = message.key?.toString();
            if (k === key) last = message.value?.toString() ?? null;
            else if (k === markerKey && message.value?.toString() === markerValue) resolve();
          },
        });
      })().catch(reject);
    });
    try {
      await withDeadline(read, this.opts.operationTimeoutMs, `checkpoint read of ${topic}`);
      return last;
    } finally {
      await withDeadline(consumer.disconnect(), 5_000, 'checkpoint reader disconnect').catch(() => undefined);
    }
  }

  async disconnect(): Promise<void> {
    await withDeadline(this.admin.disconnect(), 5_000, 'admin disconnect').catch(() => undefined);
  }
}
