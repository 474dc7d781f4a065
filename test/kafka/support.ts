/**
 * Helpers of the Kafka suites: a real broker (scripts/kafka.sh; jest's globalSetup starts one on
 * 127.0.0.1:${KAFKA_PORT:-9092} if none answers), unique topics, child processes killed by PID, and an
 * exact read_committed read of a topic ("read to the end" made exact with one sentinel record per partition).
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import { Admin, Kafka, logLevel } from 'kafkajs';

export const repoRoot = path.resolve(__dirname, '..', '..');
export const kafkaScript = path.join(repoRoot, 'scripts', 'kafka.sh');
export const brokers = (process.env.KAFKA_BROKERS ?? `127.0.0.1:${process.env.KAFKA_PORT ?? 9092}`).split(
  ',',
);
export const sentinelKey = '__sentinel__';

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomUUID().slice(0, 8)}`;
}

export function kafkaClient(clientId = 'test', brokerList = brokers): Kafka {
  return new Kafka({
    clientId,
    brokers: brokerList,
    logLevel: logLevel.NOTHING,
    retry: { initialRetryTime: 50, retries: 8 },
  });
}

export async function withAdmin<T>(fn: (admin: Admin) => Promise<T>, brokerList = brokers): Promise<T> {
  const admin = kafkaClient('test-admin', brokerList).admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

export async function createTopic(topic: string, partitions = 1, brokerList = brokers): Promise<void> {
  await withAdmin(async (admin) => {
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: partitions }] });
  }, brokerList);
}

export interface ReadRecord {
  partition: number;
  offset: number;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

/**
 * Every committed record of `topic` (read_committed), in offset order per partition. First appends one
 * sentinel record to each partition (plain producer), then consumes until every sentinel is seen: so every
 * record committed before the call has been read, and none is missed or double-counted. Sentinels are
 * left out of the result. An open transaction on a partition blocks the read (as for any read_committed
 * reader) until it ends: `timeoutMs` bounds that. Sentinels have key `__sentinel__`, a unique value per call.
 */
export async function readCommitted(
  topic: string,
  opts: { timeoutMs?: number; brokerList?: string[] } = {},
): Promise<ReadRecord[]> {
  const brokerList = opts.brokerList ?? brokers;
  const kafka = kafkaClient('test-reader', brokerList);
  const partitions = await withAdmin(async (admin) => {
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    return meta.topics[0].partitions.map((p) => p.partitionId);
  }, brokerList);
  const token = uniqueName('end');
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    await producer.send({
      topic,
      messages: partitions.map((partition) => ({ partition, key: sentinelKey, value: token })),
    });
  } finally {
    await producer.disconnect();
  }
  const consumer = kafka.consumer({
    groupId: uniqueName('test-reader'),
    readUncommitted: false,
    maxWaitTimeInMs: 100,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
  });
  const out: ReadRecord[] = [];
  const pending = new Set(partitions);
  let timer: NodeJS.Timeout | undefined;
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`readCommitted(${topic}): sentinels of ${[...pending]} not seen`)),
        opts.timeoutMs ?? 30_000,
      );
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            const key = message.key?.toString() ?? null;
            if (key === sentinelKey) {
              // an earlier call's sentinel (e.g. one that timed out) is skipped; ours ends the partition
              if (message.value?.toString() !== token) return;
              pending.delete(partition);
              if (pending.size === 0) resolve();
              return;
            }
            if (!pending.has(partition)) return; // after the sentinel: written after the call
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
            out.push({
              partition,
              offset: Number(message.offset),
              key,
              value: message.value?.toString() ?? null,
              headers,
            });
          },
        })
        .catch(reject);
    });
  } finally {
    if (timer) clearTimeout(timer);
    await consumer.disconnect();
  }
  return out.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

/** A node child process that prints lines on stdout; `waitFor` a line, `kill9` by PID. */
export class Child {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  private waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  readonly exited: Promise<number | string | null>;
  stderr = '';

  constructor(script: string, args: string[], env: Record<string, string> = {}) {
    this.proc = spawn(process.execPath, [script, ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => (w.re.test(line) ? (w.resolve(line), false) : true));
      }
    });
    this.proc.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-8000);
    });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, sig) => resolve(code ?? sig)));
  }

  waitFor(re: RegExp, timeoutMs = 30_000): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        reject(
          new Error(
            `child: no line ${re} in ${timeoutMs} ms; stdout:\n${this.lines.join('\n')}\nstderr:\n${this.stderr}`,
          ),
        );
      }, timeoutMs);
      this.waiters.push({
        re,
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
      });
      this.exited.then((code) => {
        clearTimeout(t);
        reject(
          new Error(
            `child exited (${code}) before ${re}; stdout:\n${this.lines.join('\n')}\nstderr:\n${this.stderr}`,
          ),
        );
      });
    });
  }

  async kill9(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null && this.proc.pid) {
      process.kill(this.proc.pid, 'SIGKILL');
    }
    await this.exited;
  }
}

/** Runs scripts/kafka.sh with the given environment (e.g. a private broker on another port). */
export function kafkaSh(
  cmd: 'start' | 'stop' | 'restart' | 'status',
  env: Record<string, string> = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      kafkaScript,
      [cmd],
      { cwd: repoRoot, env: { ...process.env, ...env }, timeout: 120_000 },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`kafka.sh ${cmd}: ${err.message}\n${stdout}\n${stderr}`))
          : resolve(stdout + stderr),
    );
  });
}
