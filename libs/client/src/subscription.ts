import * as http from 'node:http';
import * as https from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import { backoffDelayMs, RetryPolicy, sleep } from './backoff';
import { EventStoreError, InvalidRequestError, UnavailableError } from './errors';
import { createParser, EventSourceMessage } from './sse-parser';
import { errorBodyBytesMax } from './transport';
import type { ClientLogger, ClientTlsOptions, EventEnvelope, SubscribeOptions, Subscription } from './types';

/** A connection that receives no byte (not even `: heartbeat`, sent every <= 15 s) for this long is dropped. */
export const idleTimeoutMsDefault = 35_000;
/** Most events per yielded batch. */
export const maxBatchEventsDefault = 1000;
/** Largest SSE message the parser buffers, in characters (one event is at most 1 MiB of data + metadata). */
export const sseMessageCharsMax = 8 * 1024 * 1024;
/** A connection that stayed up this long counts as healthy: the reconnect budget starts over after it. */
export const healthyConnectionMs = 10_000;

export interface SubscriptionTarget {
  kind: 'all' | 'stream';
  /** Path of the subscribe endpoint, starting with `/`. */
  path: string;
  /** Extra query parameters ($all filters). */
  filters: Record<string, string | undefined>;
  /** Ids are gapless (unfiltered $all, or a stream): a missing id is reported as an error. */
  contiguous: boolean;
  /** The first id committed after now (for the default `from`). */
  startAfterNow: () => Promise<number>;
}

export interface SubscriptionContext {
  /** Node base URLs in the order to try them. */
  urls: () => string[];
  headers: () => Record<string, string>;
  /** For https:// nodes: the CA(s) to trust. */
  tls: ClientTlsOptions;
  retry: RetryPolicy;
  connectTimeoutMs: number;
  logger?: ClientLogger;
  onClose: (s: SseSubscription) => void;
}

/** Why one connection ended without an error worth surfacing: the subscription reconnects. */
class Disconnect extends Error {}

/**
 * An SSE subscription that survives node failures: it reconnects to the next node with backoff and resumes
 * with `Last-Event-ID`, drops ids already delivered, and reports a gap in gapless ids as an error. It reads the
 * socket only when the consumer asks for the next batch (HTTP response in paused mode), so a slow consumer
 * stalls the TCP stream instead of growing a buffer: at most the current chunk's events are held.
 */
export class SseSubscription implements Subscription {
  private _lastId = -1;
  private _connectedUrl: string | null = null;
  private _reconnects = 0;
  /** The first id still to deliver; undefined until known (default `from` = after "now"). */
  private nextId: number | undefined;
  private closed = false;
  private started = false;
  private req: http.ClientRequest | null = null;
  private res: http.IncomingMessage | null = null;
  /** Wakes a pending read or backoff wait when the subscription is closed. */
  private readonly closer = new AbortController();
  private readonly maxBatchEvents: number;
  private readonly idleTimeoutMs: number;
  private readonly onAbort = () => this.close();

  constructor(
    private readonly ctx: SubscriptionContext,
    private readonly target: SubscriptionTarget,
    private readonly opts: SubscribeOptions,
  ) {
    this.maxBatchEvents = opts.maxBatchEvents ?? maxBatchEventsDefault;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? idleTimeoutMsDefault;
    if (!Number.isInteger(this.maxBatchEvents) || this.maxBatchEvents < 1)
      throw new RangeError('maxBatchEvents must be an integer >= 1');
    if (!(this.idleTimeoutMs > 0)) throw new RangeError('idleTimeoutMs must be > 0');
    if (opts.from !== undefined) {
      if (!Number.isSafeInteger(opts.from) || opts.from < 0)
        throw new RangeError('from must be an integer >= 0');
      this.nextId = opts.from;
    }
    if (opts.signal?.aborted) this.close();
    else opts.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  get lastId(): number {
    return this._lastId;
  }

  get connectedUrl(): string | null {
    return this._connectedUrl;
  }

  get reconnects(): number {
    return this._reconnects;
  }

  /** Bytes received from the socket and not yet handed to the parser (for tests and metrics). */
  get bufferedBytes(): number {
    const res = this.res;
    if (!res) return 0;
    return res.readableLength + (res.socket?.readableLength ?? 0);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    this.closer.abort();
    this.dropConnection();
    this.ctx.onClose(this);
  }

  [Symbol.asyncIterator](): AsyncIterator<EventEnvelope[]> {
    if (this.started) throw new EventStoreError('a subscription can be iterated only once');
    this.started = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<EventEnvelope[], void, undefined> {
    try {
      let failures = 0;
      let streakStartedAt = 0;
      let connections = 0;
      let urlIndex = 0;
      // The client's rotation at the start (leader or last good node first), fixed so urlIndex visits each node.
      const urls = this.ctx.urls();
      // Bounded: every failed connection counts; the budget (attempts, totalTimeoutMs) only starts over after
      // a connection that delivered events or stayed up for healthyConnectionMs.
      while (!this.closed) {
        const base = urls[urlIndex % urls.length];
        let openedAt = 0;
        let progressed = false;
        let problem: string;
        try {
          if (this.nextId === undefined) this.nextId = await this.target.startAfterNow();
          if (this.closed) return;
          const res = await this.open(base);
          if (connections++ > 0) this._reconnects++;
          openedAt = Date.now();
          this._connectedUrl = base;
          this.ctx.logger?.debug?.(
            `subscription ${this.target.path}: connected to ${base} after ${this._lastId}`,
          );
          const decoder = new StringDecoder('utf8');
          const received: EventSourceMessage[] = [];
          let serverError: string | null = null;
          const parser = createParser({
            maxBufferSize: sseMessageCharsMax,
            onEvent: (m) => {
              if (m.event === 'error') serverError ??= m.data;
              else if (serverError === null && (m.event === undefined || m.event === 'message'))
                received.push(m);
            },
            // SSE ignores unknown fields; only a message over the size bound makes the stream unreadable.
            onError: (err) => {
              if (err.type === 'max-buffer-size-exceeded')
                serverError ??= `unreadable stream: ${err.message}`;
              else this.ctx.logger?.debug?.(`subscription ${this.target.path}: ${err.message}`);
            },
          });
          for (;;) {
            const chunk = await this.readChunk(res);
            if (chunk === null) throw new Disconnect(`${base} closed the stream`);
            parser.feed(decoder.write(chunk));
            const fresh = this.accept(received.splice(0, received.length));
            for (let i = 0; i < fresh.length; i += this.maxBatchEvents) {
              const batch = fresh.slice(i, i + this.maxBatchEvents);
              const last = batch[batch.length - 1];
              this._lastId = this.idOf(last);
              this.nextId = this._lastId + 1;
              progressed = true;
              yield batch;
              if (this.closed) return;
            }
            if (serverError !== null)
              throw new Disconnect(`${base} ended the stream with an error: ${serverError}`);
          }
        } catch (err) {
          if (this.closed) return;
          if (!isRetryable(err)) throw err;
          problem = (err as Error).message;
        } finally {
          this.dropConnection();
        }
        if (progressed || (openedAt > 0 && Date.now() - openedAt >= healthyConnectionMs)) failures = 0;
        if (failures === 0) streakStartedAt = Date.now();
        failures++;
        const elapsed = Date.now() - streakStartedAt;
        if (failures >= this.ctx.retry.attempts || elapsed >= this.ctx.retry.totalTimeoutMs)
          throw new UnavailableError(
            `subscription ${this.target.path}: gave up after ${failures} failed connections in ${elapsed} ms; last: ${problem}`,
          );
        urlIndex++;
        const delay = Math.min(
          backoffDelayMs(this.ctx.retry, failures - 1),
          this.ctx.retry.totalTimeoutMs - elapsed,
        );
        this.ctx.logger?.warn(
          `subscription ${this.target.path}: ${problem}; resuming after id ${this.nextId === undefined ? '(now)' : this.nextId - 1} on ${urls[urlIndex % urls.length]} in ${delay} ms`,
        );
        await sleep(delay, this.closer.signal);
      }
    } finally {
      this.close();
    }
  }

  private idOf(e: EventEnvelope): number {
    return this.target.kind === 'all' ? e.position : e.revision;
  }

  /** Parses messages; drops ids already delivered; throws on a gap or on an id that does not match its event. */
  private accept(messages: EventSourceMessage[]): EventEnvelope[] {
    const out: EventEnvelope[] = [];
    let next = this.nextId!;
    for (const m of messages) {
      let e: EventEnvelope;
      try {
        e = JSON.parse(m.data) as EventEnvelope;
      } catch (err) {
        throw new EventStoreError(`subscription ${this.target.path}: a message is not JSON (id ${m.id})`, {
          cause: err,
        });
      }
      const id = this.idOf(e);
      if (!Number.isSafeInteger(id) || (m.id !== undefined && Number(m.id) !== id))
        throw new EventStoreError(
          `subscription ${this.target.path}: message id ${m.id} does not match its event (${id})`,
        );
      if (id < next) continue; // already delivered (defensive: the server resumes after Last-Event-ID)
      if (this.target.contiguous && id !== next)
        throw new EventStoreError(
          `subscription ${this.target.path}: gap: expected id ${next}, received ${id} (after ${this._lastId})`,
        );
      out.push(e);
      next = id + 1;
    }
    return out;
  }

  /** Opens the SSE response (status 200) at `base`, resuming after the last delivered id. */
  private open(base: string): Promise<http.IncomingMessage> {
    if (this.closed) return Promise.reject(new Disconnect('closed'));
    const params = new URLSearchParams();
    const headers: Record<string, string> = {
      accept: 'text/event-stream',
      'cache-control': 'no-cache',
      ...this.ctx.headers(),
    };
    if (this._lastId >= 0) headers['last-event-id'] = String(this._lastId);
    else params.set('from', String(this.nextId));
    for (const [k, v] of Object.entries(this.target.filters)) if (v !== undefined) params.set(k, v);
    const qs = params.toString();
    const url = new URL(`${base}${this.target.path}${qs ? `?${qs}` : ''}`);
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err: Error | null, res?: http.IncomingMessage) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.closer.signal.removeEventListener('abort', onClose);
        if (err) reject(err);
        else resolve(res!);
      };
      const onClose = () => settle(new Disconnect('closed'));
      // A connection of its own (agent: false): long-lived streams stay out of the request pool.
      const req = mod.request(url, {
        method: 'GET',
        headers,
        agent: false,
        ...(url.protocol === 'https:' ? { ca: this.ctx.tls.ca } : {}),
      });
      this.req = req;
      this.closer.signal.addEventListener('abort', onClose, { once: true });
      const timer = setTimeout(() => {
        settle(new Disconnect(`${base}: no answer within ${this.ctx.connectTimeoutMs} ms`));
        req.destroy();
      }, this.ctx.connectTimeoutMs);
      this.closer.signal.addEventListener('abort', onClose, { once: true });
      // Errors after the response are seen by readChunk through the response; this keeps them handled.
      req.on('error', (err) =>
        settle(new Disconnect(`${base}: ${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`)),
      );
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (status === 200) {
          // Failures after this point are seen by readChunk (end/close); this keeps them handled meanwhile.
          res.on('error', () => undefined);
          this.res = res;
          settle(null, res);
          return;
        }
        readSmallBody(res).then((text) => {
          const msg = `${base}${this.target.path}: ${status} ${text.slice(0, 300)}`;
          // 429: over the node's rate limit; reconnect after the backoff like any other refused connection.
          if (status >= 400 && status < 500 && status !== 429) {
            let body: any;
            try {
              body = JSON.parse(text);
            } catch {
              body = text;
            }
            settle(new InvalidRequestError(msg, status, body?.details ?? body));
          } else settle(new Disconnect(msg));
        });
      });
      req.end();
    });
  }

  /**
   * The next chunk of the response, null at its end. Reads only when asked (the response stays paused in
   * between, so TCP flow control holds the server back). Fails when nothing arrives for idleTimeoutMs.
   */
  private readChunk(res: http.IncomingMessage): Promise<Buffer | null> {
    const now = res.read() as Buffer | null;
    if (now !== null) return Promise.resolve(now);
    if (res.readableEnded || res.destroyed || this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const done = (err: Error | null, chunk: Buffer | null = null) => {
        clearTimeout(timer);
        res.off('readable', onReadable);
        res.off('end', onEnd);
        res.off('close', onEnd);
        res.off('error', onError);
        this.closer.signal.removeEventListener('abort', onEnd);
        if (err) reject(err);
        else resolve(chunk);
      };
      const onReadable = () => {
        const c = res.read() as Buffer | null;
        if (c !== null) done(null, c);
        else if (res.readableEnded) done(null, null);
      };
      const onEnd = () => done(null, null);
      const onError = (err: Error) => done(new Disconnect(`connection failed: ${err.message}`));
      const timer = setTimeout(
        () => done(new Disconnect(`no byte (not even a heartbeat) for ${this.idleTimeoutMs} ms`)),
        this.idleTimeoutMs,
      );
      res.on('readable', onReadable);
      res.once('end', onEnd);
      res.once('close', onEnd);
      res.once('error', onError);
      this.closer.signal.addEventListener('abort', onEnd, { once: true });
    });
  }

  private dropConnection(): void {
    this._connectedUrl = null;
    const req = this.req;
    this.req = null;
    this.res = null;
    if (req && !req.destroyed) req.destroy();
  }
}

function isRetryable(err: unknown): boolean {
  if (err instanceof Disconnect) return true;
  // Transient failures of the call that resolves the default start (headPosition / stream head).
  return err instanceof UnavailableError;
}

function readSmallBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      if (size < errorBodyBytesMax) chunks.push(c);
      size += c.length;
    });
    const done = () => resolve(Buffer.concat(chunks).toString('utf8'));
    res.once('end', done);
    res.once('close', done);
    res.once('error', done);
  });
}
