import { Partitioners, Producer } from 'kafkajs';
import { KafkaLogger, ProducerError, ProducerRecord, TransactionalProducer } from './producer';
import { classifyKafkaError, createKafka, describeKafkaError, withDeadline } from './kafkajs-support';

export interface KafkajsProducerOptions {
  brokers: readonly string[];
  clientId: string;
  /** Stable across restarts: it is what fences an older writer and aborts its open transaction. */
  transactionalId: string;
  /**
   * How long the broker lets one of our transactions stay open before aborting it (ms). Also how long a
   * crashed writer's open transaction can hold read_committed consumers back if no new writer comes. 60 s.
   */
  transactionTimeoutMs?: number;
  /**
   * Bound on `init` and on each step of `sendTransaction` (ms): kafkajs retries connection errors for a long
   * time; past this the operation fails as `unavailable`. 30 s.
   */
  operationTimeoutMs?: number;
  /**
   * kafkajs retries (20 ms initial back-off, capped at `maxRetryTimeMs`). After each commit the next transaction's
   * first request meets CONCURRENT_TRANSACTIONS until the markers are written: kafkajs' default 300 ms initial
   * back-off makes that the bottleneck (ARCHITECTURE.md: 9.7k vs 32–37k records/s). 300 retries ≈ 5 min.
   *
   * kafkajs warns that limited retries on an idempotent producer may void exactly-once: that is about resending
   * after a failed send within the same producer session. Here any failure ends the producer instance (the sink
   * replaces it, and the new one's `init` aborts whatever the old one left open), so nothing of a failed
   * transaction becomes visible. The bound only stops retry loops of an abandoned instance during a long outage.
   */
  retries?: number;
  maxRetryTimeMs?: number;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  logger: KafkaLogger;
}

/** The most record bytes (keys, values, headers) in one produce request: below the broker's 1 MiB default. */
export const sendChunkBytes = 768 * 1024;

/** Consecutive runs of records of at most `maxBytes` each (a single larger record is a run of its own). */
export function chunksOf(records: readonly ProducerRecord[], maxBytes: number): ProducerRecord[][] {
  const out: ProducerRecord[][] = [];
  let run: ProducerRecord[] = [];
  let bytes = 0;
  for (const r of records) {
    let size = Buffer.byteLength(r.key) + Buffer.byteLength(r.value) + 64;
    for (const k in r.headers ?? {}) size += k.length + r.headers![k].length + 8;
    if (run.length > 0 && bytes + size > maxBytes) {
      out.push(run);
      run = [];
      bytes = 0;
    }
    run.push(r);
    bytes += size;
  }
  if (run.length > 0) out.push(run);
  return out;
}

/** kafkajs 2.2.4 behind `TransactionalProducer`: idempotent, one request in flight, a stable transactional id. */
export class KafkajsTransactionalProducer implements TransactionalProducer {
  private readonly producer: Producer;
  private readonly opTimeoutMs: number;
  private broken: ProducerError | null = null;

  constructor(private readonly opts: KafkajsProducerOptions) {
    this.opTimeoutMs = opts.operationTimeoutMs ?? 30_000;
    const retry = {
      initialRetryTime: 20,
      maxRetryTime: opts.maxRetryTimeMs ?? 1_000,
      retries: opts.retries ?? 300,
    };
    const kafka = createKafka({
      brokers: opts.brokers,
      clientId: opts.clientId,
      logger: opts.logger,
      retry,
      connectionTimeoutMs: opts.connectionTimeoutMs,
      requestTimeoutMs: opts.requestTimeoutMs,
    });
    this.producer = kafka.producer({
      transactionalId: opts.transactionalId,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: opts.transactionTimeoutMs ?? 60_000,
      allowAutoTopicCreation: false,
      // Java-compatible murmur2 on the key (explicit: also silences kafkajs' warning about its v2 default)
      createPartitioner: Partitioners.DefaultPartitioner,
      retry,
    });
  }

  async connect(): Promise<void> {
    await this.step(this.producer.connect(), 'connect');
  }

  async init(): Promise<void> {
    // kafkajs registers with the coordinator (InitProducerId) at the first transaction(), not at connect();
    // an abort with nothing sent ends the empty transaction locally, without a request.
    await this.step(
      (async () => {
        const txn = await this.producer.transaction();
        await txn.abort();
      })(),
      'init (InitProducerId)',
    );
  }

  async sendTransaction(records: readonly ProducerRecord[]): Promise<void> {
    if (this.broken) throw this.broken;
    const txn = await this.step(this.producer.transaction(), 'begin transaction');
    try {
      // One produce request per chunk of at most sendChunkBytes: kafkajs puts a partition's share of a request
      // into one record batch, which the broker refuses past message.max.bytes (1 MiB by default).
      for (const chunk of chunksOf(records, sendChunkBytes)) {
        const byTopic = new Map<string, { key: string; value: string; headers?: Record<string, string> }[]>();
        for (const r of chunk) {
          let list = byTopic.get(r.topic);
          if (!list) byTopic.set(r.topic, (list = []));
          list.push({ key: r.key, value: r.value, headers: r.headers });
        }
        await withDeadline(
          txn.sendBatch({ topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) }),
          this.opTimeoutMs,
          'send',
        );
      }
      await withDeadline(txn.commit(), this.opTimeoutMs, 'commit');
    } catch (err) {
      const failure = this.fail(err, 'transaction');
      if (failure.kind !== 'fenced') {
        // best effort: if the broker is unreachable the next init (or the transaction timeout) aborts it
        await withDeadline(txn.abort(), Math.min(2_000, this.opTimeoutMs), 'abort').catch(() => undefined);
      }
      throw failure;
    }
  }

  async disconnect(): Promise<void> {
    await withDeadline(this.producer.disconnect(), 5_000, 'disconnect').catch(() => undefined);
  }

  private async step<T>(promise: Promise<T>, what: string): Promise<T> {
    if (this.broken) {
      promise.catch(() => undefined);
      throw this.broken;
    }
    try {
      return await withDeadline(promise, this.opTimeoutMs, what);
    } catch (err) {
      throw this.fail(err, what);
    }
  }

  /** Every failure ends this instance: its transaction state is unknown until a new producer's init. */
  private fail(err: unknown, what: string): ProducerError {
    const kind = classifyKafkaError(err);
    const failure = new ProducerError(
      kind,
      `kafka producer ${this.opts.transactionalId}: ${what} failed (${kind}): ${describeKafkaError(err)}`,
      err,
    );
    this.broken = failure;
    return failure;
  }
}
