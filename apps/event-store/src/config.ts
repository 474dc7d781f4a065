import { z } from 'zod';
import {
  ConfigError,
  hostPortSetting,
  intSetting,
  isLoopbackHost,
  kebabFlag,
  LogFormat,
  logFormatSetting,
  logLevelSetting,
  parseFlags as parseFlagsOf,
  parseSettings,
  readAuthSettings,
  readTlsFiles,
  TokenEntry,
  TlsFiles,
} from '@app/config';
import type { ConfigState, MemberAddress } from '@app/consensus';

/**
 * The node's configuration: API.md "Running a node" plus tunables. Read once at start-up from the
 * environment and `--kebab-case` flags (flags win); nothing else in the app reads process.env.
 */
export interface AppConfig {
  nodeId: string;
  dataDir: string;
  httpHost: string;
  httpPort: number;
  raftAddr: string;
  /**
   * The Raft address the others know this node by (its INITIAL_CLUSTER entry when that names it, else
   * RAFT_ADDR). The transport advertises it in its handshakes, so a node that has no address for this one
   * yet (a node started in join mode with an empty INITIAL_CLUSTER) can dial back.
   */
  raftAdvertiseAddr: string;
  /** This node's advertised REST URL (from INITIAL_CLUSTER when it names this node, else http://HTTP_ADDR). */
  httpUrl: string;
  /** The first voters; null = join mode (wait to be added by POST /cluster/members). Used only on an empty DATA_DIR. */
  initialCluster: ConfigState | null;
  /** Join mode: Raft addresses of the members named by INITIAL_CLUSTER, to reach them until the log brings the configuration. */
  joinPeers: Record<string, string>;
  clusterSecret: string | null;
  tickMs: number;
  electionTicks: number;
  snapshotEveryEntries: number;
  snapshotEveryBytes: number;
  snapshotKeepEntries: number;
  raftSegmentBytes: number;
  proposalTimeoutMs: number;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  /** null: pretty on a terminal, JSON lines otherwise. */
  logFormat: LogFormat | null;
  /** `discard-and-rejoin`: on corruption found at start, move the log aside and rejoin from the leader's snapshot. */
  repair: 'discard-and-rejoin' | null;
  appendBodyBytesMax: number;
  appendEventsMax: number;
  eventBytesMax: number;
  /** Where the stream index lives: the heap, or run files with a bounded block cache. */
  streamIndex: 'memory' | 'disk';
  /** The block cache of the on-disk stream index. */
  streamIndexCacheBytes: number;
  /** Where partitioned projections keep partition states: the heap, or run files with a bounded block cache. */
  projectionState: 'memory' | 'disk';
  /** The block cache of partition states on disk (shared by every projection). */
  projectionCacheBytes: number;
  /**
   * The API tokens every HTTP request is checked against (TOKENS_FILE and API_TOKENS together), or null when
   * requests are not authenticated: no tokens configured (loopback only), or AUTH=off.
   */
  auth: { tokens: TokenEntry[] } | null;
  /** AUTH=off: unauthenticated on purpose (logged as unsafe at start). */
  authOff: boolean;
  /** TLS_CERT_FILE + TLS_KEY_FILE (+ TLS_CA_FILE): HTTPS on HTTP_ADDR; null = plain HTTP. */
  tls: TlsFiles | null;
  /** TLS on the Raft transport too (RAFT_TLS; on by default with TLS_CERT_FILE), with `tls`'s files. */
  raftTls: boolean;
  /** Per-client token bucket (RATE_LIMIT_PER_SEC, RATE_LIMIT_BURST); null = no rate limit. */
  rateLimit: { perSec: number; burst: number } | null;
}

export { ConfigError, isLoopbackHost, kebabFlag };

const mib = 1024 * 1024;
const nodeIdPattern = /^[A-Za-z0-9._-]{1,64}$/;

const int = intSetting;
/** A path or text setting where an empty value means unset (compose files pass `${X:-}`). */
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));
const hostPort = hostPortSetting('127.0.0.1:2114');

/** Every variable, its schema and default. Keys are the environment names; flags are their kebab-case forms. */
const schema = z.object({
  NODE_ID: z.string().regex(nodeIdPattern, 'expected 1-64 characters from [A-Za-z0-9._-]').default('n1'),
  DATA_DIR: z.string().min(1).optional(),
  HTTP_ADDR: hostPort.default('127.0.0.1:2113'),
  RAFT_ADDR: hostPort.default('127.0.0.1:2114'),
  INITIAL_CLUSTER: z.string().optional(),
  CLUSTER_SECRET: z.string().min(1).optional(),
  TICK_MS: int(1, 10_000).default(50),
  ELECTION_TICKS: int(2, 10_000).default(10),
  SNAPSHOT_EVERY_ENTRIES: int(1, Number.MAX_SAFE_INTEGER).default(100_000),
  SNAPSHOT_EVERY_BYTES: int(1, Number.MAX_SAFE_INTEGER).default(64 * mib),
  SNAPSHOT_KEEP_ENTRIES: int(0, Number.MAX_SAFE_INTEGER).default(10_000),
  RAFT_SEGMENT_BYTES: int(4 * 1024, 1024 * mib).default(64 * mib),
  PROPOSAL_TIMEOUT_MS: int(10, 600_000).default(5000),
  LOG_LEVEL: logLevelSetting,
  LOG_FORMAT: logFormatSetting,
  REPAIR: z.enum(['', 'discard-and-rejoin']).optional(),
  APPEND_BODY_BYTES_MAX: int(1024, 1024 * mib).default(4 * mib),
  APPEND_EVENTS_MAX: int(1, 1_000_000).default(1000),
  EVENT_BYTES_MAX: int(64, 1024 * mib).default(1 * mib),
  STREAM_INDEX: z.enum(['memory', 'disk']).default('disk'),
  STREAM_INDEX_CACHE_BYTES: int(64 * 1024, 64 * 1024 * mib).default(32 * mib),
  PROJECTION_STATE: z.enum(['memory', 'disk']).default('disk'),
  PROJECTION_CACHE_BYTES: int(64 * 1024, 64 * 1024 * mib).default(32 * mib),
  TOKENS_FILE: optionalText,
  API_TOKENS: optionalText,
  AUTH: z.enum(['', 'auto', 'on', 'off']).optional(),
  TLS_CERT_FILE: optionalText,
  TLS_KEY_FILE: optionalText,
  TLS_CA_FILE: optionalText,
  RAFT_TLS: z.enum(['', 'on', 'off']).optional(),
  RATE_LIMIT_PER_SEC: z.coerce.number().min(0).max(1_000_000).default(0),
  RATE_LIMIT_BURST: int(1, 10_000_000).optional(),
});
type RawConfig = z.infer<typeof schema>;
const variables = Object.keys(schema.shape) as (keyof RawConfig)[];

/** `--node-id n2`, `--node-id=n2`, or a bare `--repair` (true). Unknown flags are an error. */
export function parseFlags(argv: readonly string[]): Record<string, string> {
  return parseFlagsOf(argv, variables, { bareIsTrue: true });
}

function splitHostPort(addr: string): { host: string; port: number } {
  const colon = addr.lastIndexOf(':');
  return { host: addr.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(addr.slice(colon + 1)) };
}

/** `id=raftHost:port/httpUrl,…` → addresses by id, in the given order. */
export function parseInitialCluster(value: string): {
  ids: string[];
  addresses: Record<string, MemberAddress>;
} {
  const ids: string[] = [];
  const addresses: Record<string, MemberAddress> = {};
  for (const part of value.split(',').map((s) => s.trim())) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const slash = part.indexOf('/', eq + 1);
    if (eq <= 0 || slash < 0)
      throw new ConfigError('INITIAL_CLUSTER', `"${part}" is not id=raftHost:port/httpUrl`);
    const id = part.slice(0, eq);
    const raftAddress = part.slice(eq + 1, slash);
    const httpUrl = part.slice(slash + 1).replace(/\/+$/, '');
    if (!nodeIdPattern.test(id))
      throw new ConfigError('INITIAL_CLUSTER', `node id "${id}" must be 1-64 characters from [A-Za-z0-9._-]`);
    if (!hostPort.safeParse(raftAddress).success)
      throw new ConfigError('INITIAL_CLUSTER', `"${raftAddress}" (of ${id}) is not a raft host:port`);
    if (!/^https?:\/\/[^/\s]+$/.test(httpUrl))
      throw new ConfigError('INITIAL_CLUSTER', `"${httpUrl}" (of ${id}) is not an http(s)://host:port URL`);
    if (addresses[id]) throw new ConfigError('INITIAL_CLUSTER', `node id "${id}" appears twice`);
    ids.push(id);
    addresses[id] = { raftAddress, httpUrl };
  }
  return { ids, addresses };
}

/** Validates env + flags once; throws ConfigError naming the variable. */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  argv: readonly string[] = [],
): AppConfig {
  const input: Record<string, string | undefined> = {};
  for (const v of variables) input[v] = env[v];
  Object.assign(input, parseFlags(argv));
  const raw = parseSettings(schema, input);
  return build(raw, input.INITIAL_CLUSTER !== undefined);
}

function build(raw: RawConfig, initialClusterSet: boolean): AppConfig {
  const http = splitHostPort(raw.HTTP_ADDR);
  const raft = splitHostPort(raw.RAFT_ADDR);
  if (!isLoopbackHost(raft.host) && !raw.CLUSTER_SECRET) {
    throw new ConfigError(
      'CLUSTER_SECRET',
      `required because RAFT_ADDR ${raw.RAFT_ADDR} is not a loopback address`,
    );
  }
  const auth = readAuthSettings(raw, { variable: 'HTTP_ADDR', value: raw.HTTP_ADDR });
  const tls = readTlsFiles(
    { cert: 'TLS_CERT_FILE', key: 'TLS_KEY_FILE', ca: 'TLS_CA_FILE' },
    { cert: raw.TLS_CERT_FILE, key: raw.TLS_KEY_FILE, ca: raw.TLS_CA_FILE },
  );
  if (raw.RAFT_TLS === 'on' && tls === null)
    throw new ConfigError('RAFT_TLS', 'on needs TLS_CERT_FILE and TLS_KEY_FILE (the certificate peers see)');
  const raftTls = tls !== null && raw.RAFT_TLS !== 'off';
  if (raw.RATE_LIMIT_BURST !== undefined && raw.RATE_LIMIT_PER_SEC === 0)
    throw new ConfigError('RATE_LIMIT_BURST', 'set only with RATE_LIMIT_PER_SEC (the rate limit is off)');
  const scheme = tls ? 'https' : 'http';
  const ownHttpUrl = `${scheme}://${http.host.includes(':') ? `[${http.host}]` : http.host}:${http.port}`;
  let initialCluster: ConfigState | null;
  let httpUrl = ownHttpUrl;
  let raftAdvertiseAddr = raw.RAFT_ADDR;
  const joinPeers: Record<string, string> = {};
  if (!initialClusterSet) {
    initialCluster = {
      voters: [raw.NODE_ID],
      outgoing: [],
      learners: [],
      addresses: { [raw.NODE_ID]: { raftAddress: raw.RAFT_ADDR, httpUrl: ownHttpUrl } },
    };
  } else {
    const { ids, addresses } = parseInitialCluster(raw.INITIAL_CLUSTER ?? '');
    if (ids.includes(raw.NODE_ID)) {
      initialCluster = { voters: ids, outgoing: [], learners: [], addresses };
      httpUrl = addresses[raw.NODE_ID].httpUrl;
      if (!httpUrl.startsWith(`${scheme}://`))
        throw new ConfigError(
          'INITIAL_CLUSTER',
          `gives ${raw.NODE_ID}'s URL as ${httpUrl}, but this node serves ${scheme.toUpperCase()}${tls ? ' (TLS_CERT_FILE is set)' : ' (no TLS_CERT_FILE)'}: use ${scheme}://`,
        );
      raftAdvertiseAddr = addresses[raw.NODE_ID].raftAddress;
    } else {
      initialCluster = null; // join mode: empty, or a cluster this node is not part of yet
      for (const id of ids) joinPeers[id] = addresses[id].raftAddress;
    }
  }
  const dataDir = raw.DATA_DIR ?? `./data/${raw.NODE_ID}`;
  const config: AppConfig = {
    nodeId: raw.NODE_ID,
    dataDir,
    httpHost: http.host,
    httpPort: http.port,
    raftAddr: raw.RAFT_ADDR,
    raftAdvertiseAddr,
    httpUrl,
    initialCluster,
    joinPeers,
    clusterSecret: raw.CLUSTER_SECRET ?? null,
    tickMs: raw.TICK_MS,
    electionTicks: raw.ELECTION_TICKS,
    snapshotEveryEntries: raw.SNAPSHOT_EVERY_ENTRIES,
    snapshotEveryBytes: raw.SNAPSHOT_EVERY_BYTES,
    snapshotKeepEntries: raw.SNAPSHOT_KEEP_ENTRIES,
    raftSegmentBytes: raw.RAFT_SEGMENT_BYTES,
    proposalTimeoutMs: raw.PROPOSAL_TIMEOUT_MS,
    logLevel: raw.LOG_LEVEL,
    logFormat: raw.LOG_FORMAT ?? null,
    repair: raw.REPAIR ? raw.REPAIR : null,
    appendBodyBytesMax: raw.APPEND_BODY_BYTES_MAX,
    appendEventsMax: raw.APPEND_EVENTS_MAX,
    eventBytesMax: raw.EVENT_BYTES_MAX,
    streamIndex: raw.STREAM_INDEX,
    streamIndexCacheBytes: raw.STREAM_INDEX_CACHE_BYTES,
    projectionState: raw.PROJECTION_STATE,
    projectionCacheBytes: raw.PROJECTION_CACHE_BYTES,
    auth: auth.tokens ? { tokens: auth.tokens } : null,
    authOff: auth.off,
    tls,
    raftTls,
    rateLimit:
      raw.RATE_LIMIT_PER_SEC > 0
        ? {
            perSec: raw.RATE_LIMIT_PER_SEC,
            burst: raw.RATE_LIMIT_BURST ?? Math.max(1, Math.ceil(raw.RATE_LIMIT_PER_SEC)),
          }
        : null,
  };
  if (config.eventBytesMax > config.appendBodyBytesMax) {
    throw new ConfigError(
      'EVENT_BYTES_MAX',
      `must not exceed APPEND_BODY_BYTES_MAX (${config.appendBodyBytesMax})`,
    );
  }
  return config;
}
