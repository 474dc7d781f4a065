import { z } from 'zod';
import {
  ConfigError,
  hostPortSetting,
  intSetting,
  LogFormat,
  logFormatSetting,
  logLevelSetting,
  parseFlags as parseFlagsOf,
  parseSettings,
  readAuthSettings,
  readCertificates,
  TokenEntry,
} from '@app/config';

/**
 * The projector's configuration (PROJECTOR.md "Starting it" plus tunables), read once at start-up from the
 * environment and `--kebab-case` flags (flags win). Nothing else in the projector reads process.env.
 */
export interface ProjectorConfig {
  eventStoreUrls: string[];
  /** Bearer token for the nodes (EVENT_STORE_TOKEN; the read role is enough), or null. */
  eventStoreToken: string | null;
  /** PEM CA certificate(s) trusted for https:// nodes (EVENT_STORE_CA_FILE), or null: the system's. */
  eventStoreCa: Buffer | null;
  httpHost: string;
  httpPort: number;
  /** null → embedded Postgres (PGlite) under dataDir. */
  databaseUrl: string | null;
  dataDir: string;
  /** Postgres schema of the read models, checkpoints and dead letters. */
  schema: string;
  /** null → Kafka sink off. */
  kafkaBrokers: string[] | null;
  kafkaTopic: string;
  kafkaTopicMode: 'single' | 'category';
  kafkaPartitions: number;
  /** Names this projector's writer identity: the Kafka transactional id is `<projectorId>-<topic>[-category]`. */
  projectorId: string;
  sinks: { postgres: boolean; kafka: boolean };
  batchEvents: number;
  lingerMs: number;
  /** A rebuild swaps in once its shadow is within this many events of the live model (read inside the swap). */
  rebuildSwapEvents: number;
  /** A JS module exporting `readModels` (user read models added beside the built-in ones), or null. */
  readModelsModule: string | null;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  /** null: pretty on a terminal, JSON lines otherwise. */
  logFormat: LogFormat | null;
  /**
   * The API tokens the projector's own HTTP API checks (TOKENS_FILE and API_TOKENS, the node's format), or
   * null when requests are not authenticated: none configured on a loopback PROJECTOR_HTTP_ADDR, or AUTH=off.
   */
  tokens: TokenEntry[] | null;
  /** AUTH=off: unauthenticated on purpose (logged as unsafe at start). */
  authOff: boolean;
}

export { ConfigError };

const int = intSetting;
const hostPort = hostPortSetting('127.0.0.1:2150');

const schema = z.object({
  EVENT_STORE_URLS: z.string().default('http://127.0.0.1:2113,http://127.0.0.1:2123,http://127.0.0.1:2133'),
  EVENT_STORE_TOKEN: z.string().regex(/^\S+$/, 'expected a token (no spaces)').optional(),
  EVENT_STORE_CA_FILE: z.string().optional(),
  PROJECTOR_HTTP_ADDR: hostPort.default('127.0.0.1:2150'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\/\S+$/, 'expected a postgres:// URL, e.g. postgres://user@127.0.0.1:5432/db')
    .optional(),
  PROJECTOR_DATA_DIR: z.string().min(1).default('./data/projector'),
  PROJECTOR_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'expected a lower-case SQL identifier, e.g. projector')
    .default('projector'),
  KAFKA_BROKERS: z.string().optional(),
  KAFKA_TOPIC: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,200}$/, 'expected a Kafka topic name: 1-200 characters from [A-Za-z0-9._-]')
    .default('events'),
  KAFKA_TOPIC_MODE: z.enum(['single', 'category']).default('single'),
  KAFKA_PARTITIONS: int(1, 10_000).default(3),
  PROJECTOR_ID: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, 'expected 1-100 characters from [A-Za-z0-9._-]')
    .default('projector'),
  PROJECTOR_SINKS: z.string().optional(),
  PROJECTOR_BATCH_EVENTS: int(1, 100_000).default(5000),
  PROJECTOR_LINGER_MS: int(0, 60_000).default(5),
  PROJECTOR_REBUILD_SWAP_EVENTS: int(0, 10_000_000).default(50_000),
  PROJECTOR_READ_MODELS: z.string().min(1).optional(),
  LOG_LEVEL: logLevelSetting,
  LOG_FORMAT: logFormatSetting,
  TOKENS_FILE: z.string().optional(),
  API_TOKENS: z.string().optional(),
  AUTH: z.enum(['auto', 'on', 'off']).optional(),
});
type RawConfig = z.infer<typeof schema>;
const variables = Object.keys(schema.shape) as (keyof RawConfig)[];

/** `--kafka-topic x`, `--kafka-topic=x`; unknown flags and flags without a value are an error. */
export function parseFlags(argv: readonly string[]): Record<string, string> {
  return parseFlagsOf(argv, variables, { bareIsTrue: false });
}

function splitList(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Validates env + flags once; throws ConfigError naming the variable. */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  argv: readonly string[] = [],
): ProjectorConfig {
  const input: Record<string, string | undefined> = {};
  for (const v of variables) input[v] = env[v] === '' ? undefined : env[v];
  Object.assign(input, parseFlags(argv));
  return build(parseSettings(schema, input));
}

function build(raw: RawConfig): ProjectorConfig {
  const urls = splitList(raw.EVENT_STORE_URLS).map((u) => u.replace(/\/+$/, ''));
  if (urls.length === 0) throw new ConfigError('EVENT_STORE_URLS', 'names no URL');
  for (const u of urls) {
    if (!/^https?:\/\/[^/\s]+$/.test(u))
      throw new ConfigError('EVENT_STORE_URLS', `"${u}" is not an http(s)://host:port URL`);
  }
  let kafkaBrokers: string[] | null = null;
  if (raw.KAFKA_BROKERS !== undefined) {
    kafkaBrokers = splitList(raw.KAFKA_BROKERS);
    if (kafkaBrokers.length === 0) throw new ConfigError('KAFKA_BROKERS', 'names no broker');
    for (const b of kafkaBrokers) {
      if (!hostPort.safeParse(b).success)
        throw new ConfigError('KAFKA_BROKERS', `"${b}" is not host:port, e.g. 127.0.0.1:9092`);
    }
  }
  const sinks = { postgres: true, kafka: kafkaBrokers !== null };
  if (raw.PROJECTOR_SINKS !== undefined) {
    const names = splitList(raw.PROJECTOR_SINKS);
    if (names.length === 0) throw new ConfigError('PROJECTOR_SINKS', 'names no sink (postgres, kafka)');
    for (const n of names) {
      if (n !== 'postgres' && n !== 'kafka')
        throw new ConfigError('PROJECTOR_SINKS', `unknown sink "${n}"; expected postgres, kafka or both`);
    }
    sinks.postgres = names.includes('postgres');
    sinks.kafka = names.includes('kafka');
    if (sinks.kafka && kafkaBrokers === null)
      throw new ConfigError('PROJECTOR_SINKS', 'names kafka but KAFKA_BROKERS is not set');
  }
  const colon = raw.PROJECTOR_HTTP_ADDR.lastIndexOf(':');
  const auth = readAuthSettings(raw, { variable: 'PROJECTOR_HTTP_ADDR', value: raw.PROJECTOR_HTTP_ADDR });
  return {
    eventStoreUrls: urls,
    eventStoreToken: raw.EVENT_STORE_TOKEN ?? null,
    eventStoreCa: raw.EVENT_STORE_CA_FILE
      ? readCertificates('EVENT_STORE_CA_FILE', raw.EVENT_STORE_CA_FILE).pem
      : null,
    httpHost: raw.PROJECTOR_HTTP_ADDR.slice(0, colon).replace(/^\[|\]$/g, ''),
    httpPort: Number(raw.PROJECTOR_HTTP_ADDR.slice(colon + 1)),
    databaseUrl: raw.DATABASE_URL ?? null,
    dataDir: raw.PROJECTOR_DATA_DIR,
    schema: raw.PROJECTOR_SCHEMA,
    kafkaBrokers,
    kafkaTopic: raw.KAFKA_TOPIC,
    kafkaTopicMode: raw.KAFKA_TOPIC_MODE,
    kafkaPartitions: raw.KAFKA_PARTITIONS,
    projectorId: raw.PROJECTOR_ID,
    sinks,
    batchEvents: raw.PROJECTOR_BATCH_EVENTS,
    lingerMs: raw.PROJECTOR_LINGER_MS,
    rebuildSwapEvents: raw.PROJECTOR_REBUILD_SWAP_EVENTS,
    readModelsModule: raw.PROJECTOR_READ_MODELS ?? null,
    logLevel: raw.LOG_LEVEL,
    logFormat: raw.LOG_FORMAT ?? null,
    tokens: auth.tokens,
    authOff: auth.off,
  };
}
