/**
 * The Kafka sink (PROJECTOR.md, "Kafka"): each batch is one Kafka transaction holding one record per event
 * and the sink's checkpoint record, so a read_committed consumer sees every event exactly once, in position
 * order per stream, across crashes and restarts.
 *
 * - Event records: key = stream id (a stream stays in one partition, in order; Java-compatible murmur2
 *   partitioning), value = the envelope JSON `{id, streamId, type, revision, position, timestamp, data,
 *   metadata}`, headers `event-id`, `event-type`, `stream-id`, `revision`, `position` (strings).
 * - Topics: see topics.ts (`single`: `<topic>`; `category`: `<topic>.<category>`, created on first sight of a
 *   category, before the transaction that uses it).
 * - Checkpoint: topic `<topic>-checkpoints` (compacted, 1 partition); key = transactional id, value
 *   `{"position": <last position of the batch>}`, written in the batch's transaction.
 * - open(): creates the topics, registers the transactional id (fencing an older writer and aborting the
 *   transaction it left open), commits an "open marker" record (key `<transactional id>#open`, a fresh value)
 *   to the checkpoint topic, and reads that topic read_committed up to the marker: the last checkpoint before it
 *   is the position (no transaction of ours can be open at that point, so nothing committed is missed). The
 *   read joins a throw-away consumer group: on a broker with the default group.initial.rebalance.delay.ms
 *   (3 s) open() takes that much longer. Another writer's open transaction on the checkpoint partition holds
 *   the read back until it ends (its transaction timeout at worst); past `operationTimeoutMs` open() fails.
 * - Errors: fenced → `SinkFencedError`; anything else (broker down, timeouts, unknown outcome) →
 *   `SinkUnavailableError`. After either, the sink refuses writes until it is opened again (a new producer).
 */
import type { EventEnvelope } from '@app/client';
import { Sink, SinkFencedError, SinkUnavailableError } from '../sink';
import { KafkaAdminClient, TopicSpec } from './kafka-admin';
import { describeKafkaError, errorChain } from './kafkajs-support';
import { KafkajsProducerOptions, KafkajsTransactionalProducer } from './kafkajs-producer';
import {
  KafkaLogger,
  ProducerError,
  ProducerRecord,
  silentKafkaLogger,
  TransactionalProducer,
} from './producer';
import { checkpointTopicFor, defaultTransactionalId, TopicMode, topicFor } from './topics';
import { randomUUID } from 'node:crypto';

export interface KafkaSinkOptions {
  /** `host:port` of one or more brokers. */
  brokers: readonly string[];
  /** The event topic, or the prefix of the category topics. Default `events`. */
  topic?: string;
  /** `single` (default) or `category`. */
  topicMode?: TopicMode;
  /**
   * Stable across restarts of the same projector (it fences an older writer and aborts its open
   * transaction). Default `projector-<topic>` (`projector-<topic>-category` in category mode).
   */
  transactionalId?: string;
  /** Default `projector`. */
  clientId?: string;
  /** Default `<topic>-checkpoints`. */
  checkpointTopic?: string;
  /** Partitions of event topics the sink creates. Default 3. */
  partitions?: number;
  /** Replication factor of topics the sink creates; -1 (default) = the broker's default.replication.factor. */
  replicationFactor?: number;
  /** See KafkajsProducerOptions.transactionTimeoutMs (default 60 s). */
  transactionTimeoutMs?: number;
  /** Bound on each step of open() and write() (ms). Default 30 s. */
  operationTimeoutMs?: number;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  logger?: KafkaLogger;
  /** The producer implementation (default kafkajs). */
  producerFactory?: (opts: KafkajsProducerOptions) => TransactionalProducer;
}

type State = 'closed' | 'open' | 'failed';

export class KafkaSink implements Sink {
  readonly name = 'kafka';
  readonly topic: string;
  readonly topicMode: TopicMode;
  readonly transactionalId: string;
  readonly checkpointTopic: string;
  private readonly clientId: string;
  private readonly partitions: number;
  private readonly opTimeoutMs: number;
  private readonly logger: KafkaLogger;
  private state: State = 'closed';
  private failure: Error | null = null;
  private admin: KafkaAdminClient | null = null;
  private producer: TransactionalProducer | null = null;
  private lastPosition = -1;
  /**
   * Bumped by every open() and close(): a write that outlives its sink session (its step timed out, the lane
   * reopened the sink) must not move the reopened session's position.
   */
  private generation = 0;
  /** Calls of close() (an open() that retries stops when this changes). */
  private closes = 0;

  constructor(private readonly opts: KafkaSinkOptions) {
    if (opts.brokers.length === 0) throw new Error('KafkaSink: no brokers');
    this.topic = opts.topic ?? 'events';
    this.topicMode = opts.topicMode ?? 'single';
    this.transactionalId = opts.transactionalId ?? defaultTransactionalId(this.topic, this.topicMode);
    this.checkpointTopic = opts.checkpointTopic ?? checkpointTopicFor(this.topic);
    this.clientId = opts.clientId ?? 'projector';
    this.partitions = opts.partitions ?? 3;
    this.opTimeoutMs = opts.operationTimeoutMs ?? 30_000;
    this.logger = opts.logger ?? silentKafkaLogger;
  }

  /** The last position durably written (−1 before any), as of the last open() or write(). */
  get position(): number {
    return this.lastPosition;
  }

  /**
   * Opens the sink and returns the checkpoint. A broker that is still loading the state a sink needs (group
   * or transaction coordinators after a start: GROUP_LOAD_IN_PROGRESS, COORDINATOR_LOAD_IN_PROGRESS and other
   * errors Kafka marks retriable) is waited for, for at most operationTimeoutMs in all; other errors, and a
   * fence, are thrown at once.
   */
  async open(): Promise<number> {
    const deadline = Date.now() + this.opTimeoutMs;
    const closes = this.closes;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.openOnce();
      } catch (err) {
        const retriable =
          !(err instanceof SinkFencedError) &&
          errorChain(err).some((e) => typeof e === 'object' && e.retriable === true);
        // close() called meanwhile: the caller gave up on this open.
        const closedMeanwhile = this.closes !== closes;
        const pause = Math.min(2000, 100 * 2 ** attempt);
        if (!retriable || closedMeanwhile || Date.now() + pause > deadline) throw err;
        this.logger.warn(`kafka sink: open: ${describeKafkaError(err)}; retrying in ${pause} ms`);
        await new Promise((r) => setTimeout(r, pause));
      }
    }
  }

  private async openOnce(): Promise<number> {
    await this.shutdown();
    const generation = ++this.generation;
    try {
      this.admin = new KafkaAdminClient({
        brokers: this.opts.brokers,
        clientId: `${this.clientId}-admin`,
        logger: this.logger,
        connectionTimeoutMs: this.opts.connectionTimeoutMs,
        requestTimeoutMs: this.opts.requestTimeoutMs,
        operationTimeoutMs: this.opTimeoutMs,
      });
      await this.admin.connect();
      const specs: TopicSpec[] = [
        {
          topic: this.checkpointTopic,
          partitions: 1,
          replicationFactor: this.opts.replicationFactor,
          configs: {
            'cleanup.policy': 'compact',
            'min.cleanable.dirty.ratio': '0.1',
            'segment.ms': String(60 * 60 * 1000),
          },
        },
      ];
      if (this.topicMode === 'single') specs.push(this.eventTopicSpec(topicFor('', this.topic, 'single')));
      await this.admin.ensureTopics(specs);

      const factory = this.opts.producerFactory ?? ((o) => new KafkajsTransactionalProducer(o));
      this.producer = factory({
        brokers: this.opts.brokers,
        clientId: this.clientId,
        transactionalId: this.transactionalId,
        transactionTimeoutMs: this.opts.transactionTimeoutMs,
        operationTimeoutMs: this.opTimeoutMs,
        connectionTimeoutMs: this.opts.connectionTimeoutMs,
        requestTimeoutMs: this.opts.requestTimeoutMs,
        logger: this.logger,
      });
      await this.producer.connect();
      await this.producer.init();

      const markerKey = `${this.transactionalId}#open`;
      const markerValue = JSON.stringify({ open: randomUUID(), at: new Date().toISOString() });
      await this.producer.sendTransaction([
        { topic: this.checkpointTopic, key: markerKey, value: markerValue },
      ]);
      const value = await this.admin.readLastValueBefore(
        this.checkpointTopic,
        this.transactionalId,
        markerKey,
        markerValue,
      );
      if (generation !== this.generation) throw new SinkUnavailableError('kafka sink: closed while opening');
      this.lastPosition = value === null ? -1 : parseCheckpoint(value, this.checkpointTopic);
      this.state = 'open';
      this.failure = null;
      return this.lastPosition;
    } catch (err) {
      const mapped = this.mapError(err, 'open');
      await this.shutdown();
      this.state = 'failed';
      this.failure = mapped;
      throw mapped;
    }
  }

  async write(events: readonly EventEnvelope[]): Promise<void> {
    if (this.state !== 'open' || !this.producer || !this.admin) {
      if (this.state === 'failed' && this.failure instanceof SinkFencedError) throw this.failure;
      throw new SinkUnavailableError(
        `kafka sink: not open (${this.state}${this.failure ? `: ${this.failure.message}` : ''})`,
        this.failure ?? undefined,
      );
    }
    if (events.length === 0) return;
    if (events[0].position <= this.lastPosition) {
      throw new Error(
        `kafka sink: batch starts at position ${events[0].position}, not after the checkpoint ${this.lastPosition}`,
      );
    }
    const last = events[events.length - 1].position;
    const generation = this.generation;
    try {
      const records: ProducerRecord[] = [];
      const newTopics = new Map<string, TopicSpec>();
      for (const e of events) {
        const topic = topicFor(e.streamId, this.topic, this.topicMode);
        if (!this.admin.isKnown(topic) && !newTopics.has(topic))
          newTopics.set(topic, this.eventTopicSpec(topic));
        records.push(eventRecord(topic, e));
      }
      // topics first: a transaction cannot wait for a topic to be created
      if (newTopics.size > 0) await this.admin.ensureTopics([...newTopics.values()]);
      records.push({
        topic: this.checkpointTopic,
        key: this.transactionalId,
        value: JSON.stringify({ position: last }),
      });
      await this.producer.sendTransaction(records);
      if (generation !== this.generation)
        throw new SinkUnavailableError('kafka sink: closed while writing; its outcome is read back at open');
      this.lastPosition = last;
    } catch (err) {
      if (generation !== this.generation) throw err;
      const mapped = this.mapError(err, `write of positions ${events[0].position}..${last}`);
      this.state = 'failed';
      this.failure = mapped;
      throw mapped;
    }
  }

  async close(): Promise<void> {
    this.closes++;
    await this.shutdown();
  }

  /** Drops the clients; an open() or write() in flight finds its generation gone. */
  private async shutdown(): Promise<void> {
    this.generation++;
    const { producer, admin } = this;
    this.producer = null;
    this.admin = null;
    if (this.state === 'open') this.state = 'closed';
    await Promise.all([producer?.disconnect(), admin?.disconnect()]);
  }

  private eventTopicSpec(topic: string): TopicSpec {
    return { topic, partitions: this.partitions, replicationFactor: this.opts.replicationFactor };
  }

  private mapError(err: unknown, what: string): Error {
    if (err instanceof SinkFencedError || err instanceof SinkUnavailableError) return err;
    if (err instanceof ProducerError && err.kind === 'fenced') {
      return new SinkFencedError(
        `kafka sink: ${what}: fenced — another writer registered transactional id ${this.transactionalId} (${err.message})`,
      );
    }
    const detail = err instanceof ProducerError ? err.message : describeKafkaError(err);
    return new SinkUnavailableError(`kafka sink: ${what} failed: ${detail}`, err);
  }
}

/** The record of one event (PROJECTOR.md, "Kafka"). */
export function eventRecord(topic: string, e: EventEnvelope): ProducerRecord {
  const envelope: EventEnvelope = {
    id: e.id,
    streamId: e.streamId,
    type: e.type,
    revision: e.revision,
    position: e.position,
    timestamp: e.timestamp,
    data: e.data,
    metadata: e.metadata,
  };
  return {
    topic,
    key: e.streamId,
    value: JSON.stringify(envelope),
    headers: {
      'event-id': e.id,
      'event-type': e.type,
      'stream-id': e.streamId,
      revision: String(e.revision),
      position: String(e.position),
    },
  };
}

function parseCheckpoint(value: string, topic: string): number {
  let position: unknown;
  try {
    position = (JSON.parse(value) as { position?: unknown }).position;
  } catch {
    position = undefined;
  }
  if (typeof position !== 'number' || !Number.isSafeInteger(position) || position < -1) {
    throw new Error(`kafka sink: bad checkpoint record in ${topic}: ${value.slice(0, 200)}`);
  }
  return position;
}
