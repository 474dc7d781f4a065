/**
 * The Kafka sink's view of a transactional producer. kafkajs (the implementation in kafkajs-producer.ts) has
 * had no release since 2023: the sink talks to this interface only, so the client library can be replaced
 * without touching the sink's logic.
 */

/** One record to produce. Strings are sent as UTF-8. */
export interface ProducerRecord {
  topic: string;
  key: string;
  value: string;
  headers?: Record<string, string>;
}

export interface TransactionalProducer {
  /** Opens connections to the cluster. */
  connect(): Promise<void>;
  /**
   * Registers the transactional id with its transaction coordinator (InitProducerId): bumps the producer epoch,
   * which fences every older producer with the same id, and aborts (or completes, if it was already committing)
   * the transaction such a producer left open. When this resolves, no transaction of ours is open.
   */
  init(): Promise<void>;
  /**
   * One transaction: begin, send every record, commit. On failure the transaction is aborted if that is still
   * possible, and a `ProducerError` is thrown; the producer must then be disconnected and replaced (a new
   * instance, `connect` + `init`), because the outcome of a failed commit is unknown until the next `init`.
   */
  sendTransaction(records: readonly ProducerRecord[]): Promise<void>;
  /** Closes connections; never throws. */
  disconnect(): Promise<void>;
}

/**
 * `fenced`: a newer producer with the same transactional id exists (INVALID_PRODUCER_EPOCH, PRODUCER_FENCED,
 * INVALID_TXN_STATE after fencing). `unavailable`: the broker or coordinator is unreachable, a request timed out,
 * or anything else whose outcome is unknown: reconnect, `init`, reload the checkpoint, resend.
 */
export type ProducerErrorKind = 'fenced' | 'unavailable';

export class ProducerError extends Error {
  constructor(
    readonly kind: ProducerErrorKind,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'ProducerError';
  }
}

/** Where the Kafka client's own log lines go (after filtering; see kafkajs-producer.ts). */
export interface KafkaLogger {
  debug?(message: string, extra?: Record<string, unknown>): void;
  info?(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

export const silentKafkaLogger: KafkaLogger = { warn: () => undefined, error: () => undefined };
