/**
 * Ceilings for bench/projector.ts, measured in the same run with no projector:
 *
 * - Postgres: plain multi-row INSERTs through `pg` (one `INSERT … SELECT FROM unnest(…)` per transaction, one
 *   8-column row per event into a plain table with a text primary key, the shape of a stream_summaries row)
 *   plus one checkpoint UPDATE per transaction, `perTransaction` rows per transaction.
 * - Kafka: kafkajs alone producing the projector's records (key = stream id, value = the envelope JSON, the
 *   5 headers) plus one checkpoint record per transaction to a 1-partition topic, in transactions of
 *   `perTransaction` records, with an idempotent transactional producer configured as the projector's
 *   (one request in flight, murmur2 partitioner, `retry.initialRetryTime` 20 ms).
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import type { EventEnvelope } from '@app/client';
import { eventRecord } from '../../apps/projector/src/sinks/kafka';
import { chunksOf, sendChunkBytes } from '../../apps/projector/src/sinks/kafka/kafkajs-producer';

export interface CeilingResult {
  rows: number;
  transactions: number;
  seconds: number;
  perS: number;
  /** CPU of this (the benchmark's) process over the run, in cores: the client side of the ceiling. */
  clientCores: number;
}

function cores(since: NodeJS.CpuUsage, seconds: number): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6 / seconds;
}

export async function postgresInsertCeiling(
  url: string,
  rows: number,
  perTransaction: number,
): Promise<CeilingResult> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('DROP TABLE IF EXISTS bench_ceiling_rows; DROP TABLE IF EXISTS bench_ceiling_checkpoints');
    await c.query(
      'CREATE TABLE bench_ceiling_rows (id text PRIMARY KEY, stream_id text NOT NULL, event_count bigint NOT NULL, ' +
        'last_revision bigint NOT NULL, first_position bigint NOT NULL, last_position bigint NOT NULL, ' +
        'last_event_type text NOT NULL, updated_at timestamptz NOT NULL)',
    );
    await c.query('CREATE TABLE bench_ceiling_checkpoints (name text PRIMARY KEY, position bigint NOT NULL)');
    await c.query(`INSERT INTO bench_ceiling_checkpoints VALUES ('ceiling', -1)`);
    const insert =
      'INSERT INTO bench_ceiling_rows SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], ' +
      '$5::bigint[], $6::bigint[], $7::text[], $8::timestamptz[])';
    const types = ['OrderPlaced', 'ItemAdded', 'ItemRemoved', 'OrderShipped', 'OrderPaid'];
    const now = new Date().toISOString();
    let transactions = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let start = 0; start < rows; start += perTransaction) {
      const n = Math.min(perTransaction, rows - start);
      const cols: unknown[][] = [[], [], [], [], [], [], [], []];
      for (let i = start; i < start + n; i++) {
        const stream = `bench-${i % 4000}`;
        cols[0].push(`${stream}:${i}`);
        cols[1].push(stream);
        cols[2].push(Math.floor(i / 4000) + 1);
        cols[3].push(Math.floor(i / 4000));
        cols[4].push(i % 4000);
        cols[5].push(i);
        cols[6].push(types[i % types.length]);
        cols[7].push(now);
      }
      await c.query('BEGIN');
      await c.query(insert, cols);
      await c.query(`UPDATE bench_ceiling_checkpoints SET position = $1 WHERE name = 'ceiling'`, [
        start + n - 1,
      ]);
      await c.query('COMMIT');
      transactions++;
    }
    const seconds = (performance.now() - t0) / 1000;
    await c.query('DROP TABLE bench_ceiling_rows; DROP TABLE bench_ceiling_checkpoints');
    return { rows, transactions, seconds, perS: rows / seconds, clientCores: cores(cpu0, seconds) };
  } finally {
    await c.end();
  }
}

export interface KafkaCeilingRun {
  brokers: string[];
  /** A fresh topic (created here with `partitions`; `<topic>-checkpoints` beside it). */
  topic: string;
  partitions: number;
  records: number;
  perTransaction: number;
  /** Real events read from the cluster: the records cycle over them with positions rewritten. */
  templates: EventEnvelope[];
}

/** The sink's own record format (key, value, headers): the ceiling encodes exactly what the projector sends. */
function record(e: EventEnvelope): { key: string; value: string; headers: Record<string, string> } {
  const r = eventRecord('', e);
  return { key: r.key, value: r.value, headers: r.headers ?? {} };
}

export async function kafkaTransactionCeiling(
  run: KafkaCeilingRun,
): Promise<CeilingResult & { valueBytes: number }> {
  if (run.templates.length === 0) throw new Error('bench: kafka ceiling needs template events');
  const retry = { initialRetryTime: 20, maxRetryTime: 1_000, retries: 300 };
  const kafka = new Kafka({
    clientId: 'bench-ceiling',
    brokers: run.brokers,
    logLevel: logLevel.NOTHING,
    retry,
  });
  const checkpointTopic = `${run.topic}-checkpoints`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      { topic: run.topic, numPartitions: run.partitions },
      {
        topic: checkpointTopic,
        numPartitions: 1,
        configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
      },
    ],
  });
  const transactionalId = `bench-ceiling-${randomBytes(4).toString('hex')}`;
  const producer = kafka.producer({
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: 60_000,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry,
  });
  await producer.connect();
  try {
    // register the transactional id (InitProducerId) before the clock starts, as the projector's open() does
    const init = await producer.transaction();
    await init.abort();
    let transactions = 0;
    let valueBytes = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let start = 0; start < run.records; start += run.perTransaction) {
      const n = Math.min(run.perTransaction, run.records - start);
      const messages = [];
      for (let i = start; i < start + n; i++) {
        const t = run.templates[i % run.templates.length];
        const r = record({ ...t, position: i });
        valueBytes += r.value.length;
        messages.push(r);
      }
      const txn = await producer.transaction();
      // the same requests as the sink's producer: chunks below the broker's message limit, the checkpoint
      // record last (kafkajs-producer.ts)
      const all = [
        ...messages.map((m) => ({ topic: run.topic, ...m })),
        { topic: checkpointTopic, key: transactionalId, value: JSON.stringify({ position: start + n - 1 }) },
      ];
      for (const chunk of chunksOf(all, sendChunkBytes)) {
        const byTopic = new Map<string, typeof chunk>();
        for (const r of chunk) {
          const list = byTopic.get(r.topic);
          if (list) list.push(r);
          else byTopic.set(r.topic, [r]);
        }
        await txn.sendBatch({
          topicMessages: [...byTopic].map(([topic, rs]) => ({
            topic,
            messages: rs.map((r) => ({ key: r.key, value: r.value, headers: r.headers })),
          })),
        });
      }
      await txn.commit();
      transactions++;
    }
    const seconds = (performance.now() - t0) / 1000;
    return {
      rows: run.records,
      transactions,
      seconds,
      perS: run.records / seconds,
      clientCores: cores(cpu0, seconds),
      valueBytes: valueBytes / run.records,
    };
  } finally {
    await producer.disconnect().catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  }
}

/** Deletes topics (best effort; unknown topics are ignored). */
export async function deleteKafkaTopics(brokers: string[], topics: string[]): Promise<void> {
  if (topics.length === 0) return;
  const kafka = new Kafka({ clientId: 'bench-cleanup', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    const mine = topics.filter((t) => existing.has(t));
    if (mine.length > 0) await admin.deleteTopics({ topics: mine, timeout: 30_000 });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
