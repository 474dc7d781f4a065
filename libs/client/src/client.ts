import { randomUUID } from 'node:crypto';
import { backoffDelayMs, retryAfterMs, RetryPolicy, retryPolicy, sleep } from './backoff';
import {
  EventStoreError,
  InvalidRequestError,
  StreamNotFoundError,
  UnavailableError,
  UnknownOutcomeError,
  WrongExpectedRevisionError,
} from './errors';
import { SseSubscription, SubscriptionTarget } from './subscription';
import { Agents, RawResponse, sendOnce, TransportError } from './transport';
import type {
  AllPage,
  AppendResult,
  ClientLogger,
  ClientOptions,
  ClusterView,
  Consistency,
  EventEnvelope,
  ExpectedRevision,
  NewEvent,
  ReadAllOptions,
  ReadStreamOptions,
  RequestOptions,
  StreamPage,
  SubscribeAllOptions,
  SubscribeOptions,
  Subscription,
} from './types';

/** Bound of one attempt, in ms. */
export const requestTimeoutMsDefault = 10_000;
/** 307 hops followed within one attempt before it counts as failed (a leader change mid-way). */
export const redirectHopsMax = 5;

type Kind = 'append' | 'write' | 'read';

interface CallSpec {
  method: 'GET' | 'POST' | 'DELETE';
  /** Path and query, starting with `/`. */
  path: string;
  body?: Buffer;
  kind: Kind;
  /** Start at the leader when one is known (writes and linearizable reads). */
  preferLeader: boolean;
  /** Maps a 404 to a specific error. */
  notFound?: () => EventStoreError;
}

/** A typed client of the event store's HTTP API (API.md v1) with failover, retries and SSE subscriptions. */
export class EventStoreClient {
  private readonly urls: string[];
  private readonly retry: RetryPolicy;
  private readonly requestTimeoutMs: number;
  private readonly logger?: ClientLogger;
  private readonly token?: string;
  private readonly agents: Agents;
  private readonly subscriptions = new Set<SseSubscription>();
  /** Index in `urls` of the node tried first when no leader is known. */
  private cursor = 0;
  /** Base URL of the leader as the last 307 named it. */
  private leaderUrl: string | null = null;
  private closed = false;

  constructor(opts: ClientOptions) {
    if (!opts || !Array.isArray(opts.urls) || opts.urls.length === 0)
      throw new RangeError('ClientOptions.urls must name at least one node');
    this.urls = opts.urls.map(normalizeBase);
    this.retry = retryPolicy(opts.retry);
    this.requestTimeoutMs = opts.requestTimeoutMs ?? requestTimeoutMsDefault;
    if (!(this.requestTimeoutMs > 0)) throw new RangeError('requestTimeoutMs must be > 0');
    this.logger = opts.logger;
    this.token = opts.token;
    this.agents = new Agents(opts.tls ?? {});
  }

  /**
   * Appends `events` atomically. Every event without an id gets a random UUID before the first attempt, so
   * retries (after a 504, a lost connection, a leader change) are deduplicated by the server.
   */
  async append(
    streamId: string,
    events: NewEvent[],
    opts: { expectedRevision?: ExpectedRevision } = {},
  ): Promise<AppendResult> {
    if (!Array.isArray(events)) throw new TypeError('events must be an array');
    const body: Record<string, unknown> = {
      events: events.map((e) => ({ ...e, id: e.id ?? randomUUID() })),
    };
    if (opts.expectedRevision !== undefined) body.expectedRevision = opts.expectedRevision;
    return this.call<AppendResult>({
      method: 'POST',
      path: `/streams/${encodeURIComponent(streamId)}/events`,
      body: Buffer.from(JSON.stringify(body)),
      kind: 'append',
      preferLeader: true,
    });
  }

  /** One page of a stream. Throws StreamNotFoundError when the stream does not exist. */
  readStream(streamId: string, opts: ReadStreamOptions = {}): Promise<StreamPage> {
    const q = query({
      from: opts.from,
      limit: opts.limit,
      direction: opts.direction,
      consistency: opts.consistency,
    });
    return this.call<StreamPage>({
      method: 'GET',
      path: `/streams/${encodeURIComponent(streamId)}${q}`,
      kind: 'read',
      preferLeader: opts.consistency !== 'local',
      notFound: () => new StreamNotFoundError(streamId),
    });
  }

  /** One page of $all (positions), optionally filtered by types / stream prefix. */
  readAll(opts: ReadAllOptions = {}): Promise<AllPage> {
    const q = query({
      from: opts.from,
      limit: opts.limit,
      direction: opts.direction,
      consistency: opts.consistency,
      types: opts.types && opts.types.length > 0 ? opts.types.join(',') : undefined,
      streamPrefix: opts.streamPrefix || undefined,
    });
    return this.call<AllPage>({
      method: 'GET',
      path: `/streams/$all${q}`,
      kind: 'read',
      preferLeader: opts.consistency !== 'local',
    });
  }

  /** Every page of $all from `from`, following `next` until it is null (empty pages are skipped). */
  async *readAllPages(opts: ReadAllOptions = {}): AsyncIterable<EventEnvelope[]> {
    let from = opts.from;
    const backward = opts.direction === 'backward';
    // Bounded by progress: every page must move `from` strictly towards the end.
    for (;;) {
      const page = await this.readAll({ ...opts, from });
      if (page.events.length > 0) yield page.events;
      if (page.next === null || page.next === undefined) return;
      if (from !== undefined && (backward ? page.next >= from : page.next <= from))
        throw new EventStoreError(`$all paging did not advance: from ${from}, next ${page.next}`);
      from = page.next;
    }
  }

  /** The last position in the store, -1 when it is empty. */
  async headPosition(opts: { consistency?: Consistency } = {}): Promise<number> {
    const page = await this.readAll({ direction: 'backward', limit: 1, consistency: opts.consistency });
    return page.lastPosition;
  }

  /** The next revision of a stream (0 when it does not exist). */
  private async nextRevision(streamId: string): Promise<number> {
    try {
      const page = await this.readStream(streamId, { direction: 'backward', limit: 1 });
      return page.lastRevision + 1;
    } catch (err) {
      if (err instanceof StreamNotFoundError) return 0;
      throw err;
    }
  }

  /** Every event of $all from `from` (default: those committed after this call), in order, exactly once. */
  subscribeAll(opts: SubscribeAllOptions = {}): Subscription {
    return this.subscribe(
      {
        kind: 'all',
        path: '/streams/$all/subscribe',
        filters: {
          types: opts.types && opts.types.length > 0 ? opts.types.join(',') : undefined,
          streamPrefix: opts.streamPrefix || undefined,
        },
        contiguous: !(opts.types && opts.types.length > 0) && !opts.streamPrefix,
        startAfterNow: async () => (await this.headPosition()) + 1,
      },
      opts,
    );
  }

  /** Every event of one stream from revision `from` (default: those committed after this call). */
  subscribeStream(streamId: string, opts: SubscribeOptions = {}): Subscription {
    return this.subscribe(
      {
        kind: 'stream',
        path: `/streams/${encodeURIComponent(streamId)}/subscribe`,
        filters: {},
        contiguous: true,
        startAfterNow: () => this.nextRevision(streamId),
      },
      opts,
    );
  }

  /** The cluster as one node sees it. */
  cluster(): Promise<ClusterView> {
    return this.call<ClusterView>({ method: 'GET', path: '/cluster', kind: 'read', preferLeader: false });
  }

  /**
   * Any other route of the API (cluster admin, projections; or another service with the same error
   * bodies, such as the projector) with the typed calls' failover, 307 following, retries and errors:
   * 4xx → InvalidRequestError (409 `wrong_expected_revision` → WrongExpectedRevisionError), gave up →
   * UnavailableError, or UnknownOutcomeError for a `write` whose answer was lost. `path` starts with `/` and
   * is sent as given (encode its parts).
   */
  request<T = unknown>(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    opts: RequestOptions = {},
  ): Promise<T> {
    if (!path.startsWith('/')) throw new RangeError(`path must start with '/': ${path}`);
    return this.call<T>({
      method,
      path,
      body: opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body)),
      kind: opts.write ? 'write' : 'read',
      preferLeader: opts.leader ?? false,
    });
  }

  /** Ends every subscription and closes the pooled connections; the client cannot be used afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.subscriptions]) s.close();
    this.agents.destroy();
  }

  private subscribe(target: SubscriptionTarget, opts: SubscribeOptions): Subscription {
    if (this.closed) throw new EventStoreError('the client is closed');
    const sub = new SseSubscription(
      {
        urls: () => this.rotation(),
        headers: () => this.authHeaders(),
        tls: this.agents.tls,
        retry: this.retry,
        connectTimeoutMs: this.requestTimeoutMs,
        logger: this.logger,
        onClose: (s) => this.subscriptions.delete(s),
      },
      target,
      opts,
    );
    this.subscriptions.add(sub);
    return sub;
  }

  /** The node URLs starting at the cursor (subscriptions rotate through them). */
  private rotation(): string[] {
    return this.urls.map((_, i) => this.urls[(this.cursor + i) % this.urls.length]);
  }

  private authHeaders(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  private pickBase(preferLeader: boolean): string {
    if (preferLeader && this.leaderUrl) return this.leaderUrl;
    return this.urls[this.cursor % this.urls.length];
  }

  /** The node at `base` failed at the connection level (or has no leader): try the next one. */
  private moveOn(base: string): void {
    if (this.leaderUrl === base) this.leaderUrl = null;
    const i = this.urls.indexOf(base);
    this.cursor = ((i >= 0 ? i : this.cursor) + 1) % this.urls.length;
  }

  /** Follows 307s, retries transient failures with backoff, maps the answer to a value or an error. */
  private async call<T>(spec: CallSpec): Promise<T> {
    if (this.closed) throw new EventStoreError('the client is closed');
    const what = `${spec.method} ${spec.path}`;
    const started = Date.now();
    const deadline = started + this.retry.totalTimeoutMs;
    const headers: Record<string, string> = { ...this.authHeaders() };
    if (spec.body) headers['content-type'] = 'application/json';
    /** Some attempt may have been applied (504, timeout, connection lost after sending). */
    let maybeApplied = false;
    let problem = 'no attempt made';
    let attemptsMade = 0;
    for (let attempt = 0; attempt < this.retry.attempts; attempt++) {
      attemptsMade = attempt + 1;
      let base = this.pickBase(spec.preferLeader);
      let url = new URL(base + spec.path);
      let waitHintMs: number | null = null;
      for (let hop = 0; ; hop++) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) break;
        // A retry with only a sliver of the total budget left would most likely time out, turning a clean
        // "unavailable" into "unknown outcome" for an append: it is not started.
        if (attempt > 0 && hop === 0 && remaining < Math.min(attemptBudgetMsMin, this.requestTimeoutMs))
          break;
        let res: RawResponse;
        try {
          res = await sendOnce(
            this.agents,
            url,
            spec.method,
            headers,
            spec.body,
            Math.min(this.requestTimeoutMs, remaining),
          );
        } catch (err) {
          if (this.closed) throw new EventStoreError('the client is closed', { cause: err });
          const te = err as TransportError;
          if (!te.notDelivered) maybeApplied = true;
          problem = `${url.origin}: ${te.code} ${te.message}`;
          this.moveOn(base);
          break;
        }
        const status = res.status;
        if (status >= 200 && status < 300) return parseJson<T>(res, what);
        if (status === 307 || status === 308) {
          const location = headerValue(res.headers.location);
          if (!location) {
            problem = `${url.origin}: ${status} without Location`;
            this.moveOn(base);
            break;
          }
          if (hop + 1 >= redirectHopsMax) {
            problem = `more than ${redirectHopsMax} redirects (last to ${location})`;
            break;
          }
          const next = new URL(location, url);
          base = baseOf(next, spec.path);
          this.leaderUrl = base;
          this.logger?.debug?.(`${what}: redirected to the leader at ${base}`);
          url = next;
          continue;
        }
        const body = parseBody(res);
        if (status === 409) {
          if (body?.error === 'wrong_expected_revision')
            throw new WrongExpectedRevisionError(body.streamId, body.expectedRevision, body.actualRevision);
          throw new InvalidRequestError(`${what}: 409 ${messageOf(body, res)}`, status, body);
        }
        if (status === 404 && spec.notFound) throw spec.notFound();
        if (status === 429) {
          // Over this node's rate limit: nothing was done; wait as told and ask the same node again.
          problem = `${url.origin}: 429 ${messageOf(body, res)}`;
          waitHintMs = retryAfterMs(res.headers['retry-after']);
          break;
        }
        if (status >= 400 && status < 500)
          throw new InvalidRequestError(
            `${what}: ${status} ${messageOf(body, res)}`,
            status,
            body?.details ?? body,
          );
        problem = `${url.origin}: ${status} ${messageOf(body, res)}`;
        if (status === 503) {
          waitHintMs = retryAfterMs(res.headers['retry-after']);
          this.moveOn(base);
        } else {
          // 504: the proposal timed out in flight; any other answer is unexpected. Either may have applied.
          maybeApplied = true;
          if (status !== 504) this.moveOn(base);
        }
        break;
      }
      if (attempt + 1 >= this.retry.attempts) break;
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      let delay = backoffDelayMs(this.retry, attempt);
      if (waitHintMs !== null && waitHintMs <= this.retry.maxDelayMs) delay = waitHintMs;
      delay = Math.min(delay, remaining);
      this.logger?.debug?.(`${what}: attempt ${attempt + 1} failed (${problem}); retrying in ${delay} ms`);
      await sleep(delay);
      if (this.closed) throw new EventStoreError('the client is closed');
    }
    const elapsed = Date.now() - started;
    const msg = `${what}: gave up after ${attemptsMade} attempt${attemptsMade === 1 ? '' : 's'} in ${elapsed} ms (limits: ${this.retry.attempts} attempts, ${this.retry.totalTimeoutMs} ms); last: ${problem}`;
    this.logger?.warn(msg);
    if (spec.kind === 'append' && maybeApplied)
      throw new UnknownOutcomeError(
        `${msg}; the append may have been committed (retry with the same event ids)`,
      );
    if (spec.kind === 'write' && maybeApplied)
      throw new UnknownOutcomeError(`${msg}; the request may have taken effect`);
    throw new UnavailableError(msg);
  }
}

/** A retry is started only with at least this much of retry.totalTimeoutMs left (or the request timeout, if less). */
const attemptBudgetMsMin = 50;

function normalizeBase(u: string): string {
  const url = new URL(u);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RangeError(`not an http(s) URL: ${u}`);
  return (url.origin + url.pathname).replace(/\/+$/, '');
}

/** The base URL of a redirect target: the Location minus the path we asked for (else its origin). */
function baseOf(location: URL, pathAndQuery: string): string {
  const full = location.toString();
  if (full.endsWith(pathAndQuery))
    return full.slice(0, full.length - pathAndQuery.length).replace(/\/+$/, '');
  return location.origin;
}

function query(params: Record<string, string | number | undefined>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params))
    if (v !== undefined) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

function headerValue(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

function parseBody(res: RawResponse): any {
  try {
    return res.body.length > 0 ? JSON.parse(res.body.toString('utf8')) : undefined;
  } catch {
    return undefined;
  }
}

function parseJson<T>(res: RawResponse, what: string): T {
  try {
    return JSON.parse(res.body.toString('utf8')) as T;
  } catch (err) {
    throw new EventStoreError(`${what}: ${res.status} with a body that is not JSON`, { cause: err });
  }
}

function messageOf(body: any, res: RawResponse): string {
  if (body && typeof body === 'object') return `${body.error ?? ''} ${body.message ?? ''}`.trim();
  return res.body.subarray(0, 200).toString('utf8');
}
