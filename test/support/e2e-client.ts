import * as http from 'node:http';
import * as https from 'node:https';
import { randomUUID } from 'node:crypto';

/**
 * A small HTTP client for the e2e suites, written against API.md. Everything that is not what a test
 * is about — 307 to the leader, 503 during an election, 504 of an in-flight proposal — is retried
 * with bounded attempts and time, so a brief election under CPU load never fails a test.
 */

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface HttpResult {
  status: number;
  headers: Record<string, string>;
  text: string;
  body: any;
}

export interface RequestOptions {
  body?: unknown;
  /** Sent as is (no JSON encoding). */
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

const requestTimeoutMsDefault = 30_000;

/** One request, no retries, redirects not followed. Throws only on network errors. */
export async function request(method: string, url: string, opts: RequestOptions = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  let body: string | Buffer | undefined;
  if (opts.rawBody !== undefined) body = opts.rawBody;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(url, {
    method,
    headers,
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(opts.timeoutMs ?? requestTimeoutMsDefault),
  });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  const h: Record<string, string> = {};
  res.headers.forEach((v, k) => (h[k] = v));
  return { status: res.status, headers: h, text, body: parsed };
}

/**
 * One request through node:http(s) (fetch cannot be given a CA): for https nodes with a private CA. No
 * retries, redirects not followed; throws on network and TLS errors.
 */
export function requestTls(
  method: string,
  url: string,
  opts: RequestOptions & { ca?: Buffer } = {},
): Promise<HttpResult> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  let body: string | Buffer | undefined = opts.rawBody;
  if (body === undefined && opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      u,
      { method, headers, ca: opts.ca, agent: false, timeout: opts.timeoutMs ?? requestTimeoutMsDefault },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = undefined;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          const h: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h[k] = String(v);
          resolve({ status: res.statusCode ?? 0, headers: h, text, body: parsed });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} in time`)));
    req.on('error', reject);
    req.end(body);
  });
}

export function getJson(url: string, timeoutMs = requestTimeoutMsDefault): Promise<HttpResult> {
  return request('GET', url, { timeoutMs });
}

/** Statuses that only say "ask again, maybe elsewhere": leadership moves, elections, unknown outcomes. */
export const transientStatuses = new Set([307, 503, 504]);

export interface RetryOptions {
  attempts?: number;
  /** Overall bound across attempts. */
  timeoutMs?: number;
  /** Bound of one attempt: a request to a paused (SIGSTOP) node must not hold a caller for long. */
  attemptTimeoutMs?: number;
}

const attemptTimeoutMsDefault = 15_000;

export interface AppendEvent {
  id?: string;
  type: string;
  data?: unknown;
  metadata?: unknown;
}

export interface AppendBody {
  expectedRevision?: 'any' | 'no_stream' | 'stream_exists' | number;
  events: AppendEvent[];
}

export function event(type: string, data: unknown = {}, id: string = randomUUID()): AppendEvent {
  return { id, type, data };
}

export class E2EClient {
  /** Every status each retried call saw, for tests that want to look. */
  readonly seen: number[] = [];

  /** `urls` is asked on every attempt, so restarts and new nodes are followed. */
  constructor(private readonly urls: () => string[]) {}

  private pick(i: number): string {
    const all = this.urls();
    if (all.length === 0) throw new Error('no running node to send to');
    return all[i % all.length];
  }

  /**
   * Sends a request until the answer is not transient (307 is followed; 503/504 and network errors are
   * retried on the next node with the same body — appends with event ids are idempotent).
   */
  async send(
    method: string,
    path: string,
    opts: RequestOptions & RetryOptions & { startAt?: string } = {},
  ): Promise<HttpResult> {
    const attempts = opts.attempts ?? 200;
    const deadline = Date.now() + (opts.timeoutMs ?? 90_000);
    let target: string | null = opts.startAt ? opts.startAt + path : null;
    let last: HttpResult | null = null;
    let lastErr: unknown = null;
    for (let i = 0; i < attempts && Date.now() < deadline; i++) {
      const url = target ?? this.pick(i) + path;
      target = null;
      try {
        const r = await request(method, url, {
          ...opts,
          timeoutMs: opts.attemptTimeoutMs ?? attemptTimeoutMsDefault,
        });
        this.seen.push(r.status);
        last = r;
        if (r.status === 307 && r.headers.location) {
          target = r.headers.location;
          continue;
        }
        if (!transientStatuses.has(r.status)) return r;
      } catch (err) {
        lastErr = err;
      }
      await sleep(Math.min(50 * (i + 1), 500));
    }
    throw new Error(
      `${method} ${path}: no definitive answer after ${attempts} attempts / deadline; last status ${last?.status ?? 'none'} ${last?.text?.slice(0, 200) ?? ''} ${lastErr ? `last error ${(lastErr as Error).message}` : ''}`,
    );
  }

  append(
    streamId: string,
    body: AppendBody,
    opts: RetryOptions & { startAt?: string } = {},
  ): Promise<HttpResult> {
    return this.send('POST', `/streams/${encodeURIComponent(streamId)}/events`, { ...opts, body });
  }

  /** Appends and insists on 201. */
  async appendOk(streamId: string, body: AppendBody, opts: RetryOptions = {}): Promise<AppendResult> {
    const r = await this.append(streamId, body, opts);
    if (r.status !== 201) throw new Error(`append to ${streamId} answered ${r.status}: ${r.text}`);
    return r.body as AppendResult;
  }

  get(path: string, opts: RetryOptions & { startAt?: string } = {}): Promise<HttpResult> {
    return this.send('GET', path, opts);
  }

  /** Every event of $all from one node (local reads: what that node applied), paging until the end. */
  async readAllFrom(
    nodeUrl: string,
    consistency: 'local' | 'linearizable' = 'local',
    pageLimit = 1000,
  ): Promise<Envelope[]> {
    const out: Envelope[] = [];
    let from = 0;
    for (let page = 0; page < 100_000; page++) {
      const r = await this.send(
        'GET',
        `/streams/$all?from=${from}&limit=${pageLimit}&consistency=${consistency}`,
        {
          startAt: nodeUrl,
          attempts: 50,
        },
      );
      if (r.status !== 200) throw new Error(`GET $all from ${nodeUrl} answered ${r.status}: ${r.text}`);
      out.push(...(r.body.events as Envelope[]));
      if (r.body.next === null || r.body.next === undefined) return out;
      if (r.body.next <= from)
        throw new Error(`$all paging did not advance: from ${from} next ${r.body.next}`);
      from = r.body.next;
    }
    throw new Error('$all paging did not end');
  }

  /** Every event of one stream from one node. */
  async readStreamFrom(
    nodeUrl: string,
    streamId: string,
    consistency: 'local' | 'linearizable' = 'local',
  ): Promise<Envelope[] | null> {
    const out: Envelope[] = [];
    let from = 0;
    for (let page = 0; page < 100_000; page++) {
      const r = await this.send(
        'GET',
        `/streams/${encodeURIComponent(streamId)}?from=${from}&limit=1000&consistency=${consistency}`,
        { startAt: nodeUrl, attempts: 50 },
      );
      if (r.status === 404) return null;
      if (r.status !== 200) throw new Error(`GET ${streamId} answered ${r.status}: ${r.text}`);
      out.push(...(r.body.events as Envelope[]));
      if (r.body.next === null || r.body.next === undefined) return out;
      from = r.body.next;
    }
    throw new Error('stream paging did not end');
  }
}

export interface AppendResult {
  streamId: string;
  firstRevision: number;
  lastRevision: number;
  firstPosition: number;
  lastPosition: number;
}

export interface Envelope {
  id: string;
  streamId: string;
  type: string;
  revision: number;
  position: number;
  timestamp: string;
  data: unknown;
  metadata?: unknown;
}

export interface SseMessage {
  id: string | null;
  event: string | null;
  data: string;
}

/** A Server-Sent Events reader on node:http: collects messages and comment lines until closed. */
export class SseReader {
  readonly messages: SseMessage[] = [];
  comments = 0;
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  ended = false;
  error: Error | null = null;
  private req: http.ClientRequest;
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;

  constructor(url: string, headers: Record<string, string> = {}) {
    let resolveOpened!: () => void;
    let resolveClosed!: () => void;
    this.opened = new Promise((r) => (resolveOpened = r));
    this.closed = new Promise((r) => (resolveClosed = r));
    const finish = () => {
      this.ended = true;
      resolveOpened();
      resolveClosed();
    };
    this.req = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      this.status = res.statusCode ?? 0;
      this.headers = res.headers;
      resolveOpened();
      res.setEncoding('utf8');
      let buf = '';
      let cur: SseMessage = { id: null, event: null, data: '' };
      let hasData = false;
      res.on('data', (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (hasData || cur.event) this.messages.push(cur);
            cur = { id: null, event: null, data: '' };
            hasData = false;
          } else if (line.startsWith(':')) this.comments++;
          else {
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'id') cur.id = value;
            else if (field === 'event') cur.event = value;
            else if (field === 'data') {
              cur.data = hasData ? `${cur.data}\n${value}` : value;
              hasData = true;
            }
          }
        }
      });
      res.on('end', finish);
      res.on('close', finish);
      res.on('error', (e) => {
        this.error = e;
        finish();
      });
    });
    this.req.on('error', (e) => {
      this.error = e;
      finish();
    });
  }

  /** Parsed envelopes of the data messages received so far (error events excluded). */
  envelopes(): Envelope[] {
    return this.messages
      .filter((m) => m.event === null || m.event === 'message')
      .map((m) => JSON.parse(m.data) as Envelope);
  }

  lastId(): string | null {
    for (let i = this.messages.length - 1; i >= 0; i--)
      if (this.messages[i].id !== null) return this.messages[i].id;
    return null;
  }

  close(): void {
    this.req.destroy();
  }
}
