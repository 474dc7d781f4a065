/**
 * kafkajs plumbing shared by the producer and the admin/checkpoint code of the Kafka sink (the only files
 * allowed to import kafkajs): the client factory, log filtering, error classification and deadlines.
 */
import { Kafka, LogEntry, logLevel, RetryOptions } from 'kafkajs';
import { KafkaLogger, ProducerErrorKind } from './producer';

/**
 * kafkajs logs every retried error at ERROR (e.g. the CONCURRENT_TRANSACTIONS that the first request after a
 * commit meets, or each refused connection while a broker is down), and INFO is chatty. Every error that matters
 * reaches the sink as a thrown error anyway (which the projector reports once per state change), so:
 * - INFO and DEBUG → `debug`;
 * - retried errors (entries with `retryCount`), failed responses (`Response <Api>` — the error is thrown to the
 *   caller), connection errors, and the warning about limited retries on an idempotent producer (see
 *   kafkajs-producer.ts for why it does not apply) → `debug`;
 * - the rest: WARN → `warn`, ERROR → `error`.
 */
export function kafkaLogCreator(logger: KafkaLogger) {
  return (_level: logLevel) =>
    ({ namespace, level, log }: LogEntry): void => {
      const { message, ...extra } = log;
      const fields: Record<string, unknown> = { namespace, ...extra };
      delete fields.timestamp;
      delete fields.logger;
      const text = `kafkajs ${namespace}: ${message}`;
      if (level <= logLevel.ERROR || level === logLevel.WARN) {
        if (!isNoise(message, extra)) {
          if (level === logLevel.WARN) logger.warn(text, fields);
          else logger.error(text, fields);
          return;
        }
      }
      logger.debug?.(text, fields);
    };
}

function isNoise(message: string, extra: Record<string, unknown>): boolean {
  if ('retryCount' in extra || 'retryTime' in extra) return true;
  return (
    /^Response \w+\(/.test(message) ||
    /^Connection (error|timeout)|^Failed to connect to (seed )?broker|^Closed connection/.test(message) ||
    /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE/.test(message) ||
    message.startsWith('Limiting retries for the idempotent producer')
  );
}

export interface KafkaClientOptions {
  brokers: readonly string[];
  clientId: string;
  logger: KafkaLogger;
  retry?: RetryOptions;
  /** TCP connect timeout (ms). */
  connectionTimeoutMs?: number;
  /** Per-request timeout (ms). */
  requestTimeoutMs?: number;
}

export function createKafka(opts: KafkaClientOptions): Kafka {
  return new Kafka({
    clientId: opts.clientId,
    brokers: [...opts.brokers],
    connectionTimeout: opts.connectionTimeoutMs ?? 3_000,
    requestTimeout: opts.requestTimeoutMs ?? 30_000,
    logLevel: logLevel.INFO,
    logCreator: kafkaLogCreator(opts.logger),
    retry: opts.retry ?? { initialRetryTime: 100, maxRetryTime: 1_000, retries: 5 },
  });
}

/** Error types that mean "a newer producer with our transactional id exists". */
const fencedTypes = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'INVALID_TXN_STATE']);

/** The error and everything it wraps (kafkajs nests causes in `cause`, `originalError` and `errors`). */
export function errorChain(err: unknown): any[] {
  const out: any[] = [];
  const queue: unknown[] = [err];
  while (queue.length > 0 && out.length < 32) {
    const e = queue.shift() as any;
    if (e === null || e === undefined || out.includes(e)) continue;
    out.push(e);
    if (typeof e !== 'object') continue;
    queue.push(e.cause, e.originalError);
    if (Array.isArray(e.errors)) queue.push(...e.errors);
  }
  return out;
}

export function classifyKafkaError(err: unknown): ProducerErrorKind {
  for (const e of errorChain(err)) {
    if (typeof e !== 'object') continue;
    if (fencedTypes.has(e.type)) return 'fenced';
    // kafkajs 2.2.4 does not know PRODUCER_FENCED (code 90): "Unknown error code 90"
    if (typeof e.message === 'string' && /\bUnknown error code 90\b/.test(e.message)) return 'fenced';
  }
  return 'unavailable';
}

/** A short description of an error and its causes for messages and logs. */
export function describeKafkaError(err: unknown): string {
  const parts: string[] = [];
  for (const e of errorChain(err)) {
    const text =
      typeof e === 'object' ? `${e.name ?? 'Error'}${e.type ? `[${e.type}]` : ''}: ${e.message}` : String(e);
    if (!parts.includes(text)) parts.push(text);
  }
  return parts.join(' <- ');
}

export class DeadlineError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} did not complete within ${ms} ms`);
    this.name = 'DeadlineError';
  }
}

/**
 * Resolves or rejects as `promise` does, or rejects with a DeadlineError after `ms`. The late outcome of
 * `promise` is swallowed (kafkajs keeps retrying in the background until its own retries run out).
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(what, ms)), ms);
  });
  promise.catch(() => undefined);
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
