import type { IncomingMessage, Server, ServerResponse } from 'node:http';
// fastify's own JSON parser (a dependency of fastify): same BOM and prototype-poisoning handling.
import secureJsonParse from 'secure-json-parse';
import { AccessControl, requestIdHeader, RequestLog } from '@app/config';
import { DEFAULT_LIMITS } from '@app/event-store';
import { AppendResponse, StreamsService } from '../services/streams.service';
import { ApiError } from './api-error';
import { appendBodySchema, AppendBodyDto, ZodPipe } from './dto';
import { LeaderLocator, toApiResponse } from './error-mapping';

/**
 * The hot route `POST /streams/{streamId}/events` served straight from node:http, without Nest's and
 * fastify's per-request machinery (router, hooks, content-type parser, pipes, interceptors, reply
 * serialization), which cost most of a single-event append's CPU.
 *
 * Taken only when the request head alone shows that the general path would reach the controller: a
 * plain stream id in the path (no escapes, no query), `Content-Type: application/json`, a declared
 * Content-Length within the limit, no transfer encoding. Everything else goes to fastify untouched.
 * From there it does what the general path does, with the same functions: the body parsed like
 * fastify's JSON parser (BOM, `__proto__`/`constructor` poisoning refused), validated by the same zod
 * schema (only when the cheap exact check below cannot vouch for it), appended by StreamsService, every
 * error mapped by toApiResponse, the request counted under the same route label, its id (`x-request-id`)
 * made and echoed and the request logged by the same RequestLog, the token and the rate limit checked by
 * the same AccessControl (the write role) before any byte of the body is read.
 */

const routeLabel = '/streams/:streamId/events';
/** Only ids that need no decoding; anything else (escapes, `$`, a query) takes the general path. */
const appendUrl = new RegExp(`^/streams/([A-Za-z0-9._:@-]{1,${DEFAULT_LIMITS.streamIdCharsMax}})/events$`);
const contentLengthDigits = /^\d{1,12}$/;
const jsonContentTypes = new Set(['application/json', 'application/json; charset=utf-8']);
const contentTypeJson = 'application/json; charset=utf-8';
/** The general path's answer to a body that is not JSON (fastify's FST_ERR_CTP_INVALID_JSON_BODY, connection closed). */
const invalidJsonMessage = "Body is not valid JSON but content-type is set to 'application/json'";
/** appendEventSchema's `type` bound. */
const eventTypeCharsMax = 256;

/** One request on the fast path: its id (echoed as `x-request-id`) and when it began, for its log line. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  reqId: string;
  started: number;
}

export class AppendFastPath {
  private readonly validate = new ZodPipe(appendBodySchema, 'body');

  constructor(
    private readonly streams: StreamsService,
    private readonly leader: LeaderLocator,
    private readonly bodyBytesMax: number,
    private readonly count: (method: string, route: string, status: number) => void,
    private readonly requests: RequestLog,
    private readonly access: AccessControl,
  ) {}

  /** Puts the fast path in front of fastify's request listener on `server`. */
  install(server: Server): void {
    const listeners = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
    if (listeners.length !== 1)
      throw new Error(
        `append fast path: expected one request listener on the HTTP server, found ${listeners.length}`,
      );
    const general = listeners[0];
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (!this.maybeHandle(req, res)) general.call(server, req, res);
    });
  }

  /** Serves the request and returns true when it qualifies (see the class comment); false otherwise. */
  maybeHandle(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST') return false;
    const url = req.url ?? '';
    const m = appendUrl.exec(url);
    if (m === null) return false;
    const h = req.headers;
    const declared = h['content-length'];
    if (declared === undefined || h['transfer-encoding'] !== undefined || !contentLengthDigits.test(declared))
      return false;
    const length = Number(declared);
    if (length === 0 || length > this.bodyBytesMax) return false;
    const ct = h['content-type'];
    if (ct === undefined || !jsonContentTypes.has(ct.toLowerCase())) return false;
    const streamId = m[1];
    const x: Exchange = { req, res, reqId: this.requests.genReqId(req), started: performance.now() };
    const refusal = this.access.check(h, req.socket.remoteAddress, 'write');
    if (refusal !== null) {
      // The unread body is drained by node:http once the answer is sent; the connection stays usable.
      this.send(x, refusal.status, JSON.stringify(refusal.body), refusal.headers);
      return true;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      this.serve(streamId, body, x).catch((err: Error) => this.requests.failed(x.reqId, req, err));
    });
    req.on('error', () => res.destroy());
    return true;
  }

  private async serve(streamId: string, raw: Buffer, x: Exchange): Promise<void> {
    let out: AppendResponse;
    try {
      out = await this.streams.append(streamId, this.parse(raw), x.started);
    } catch (err) {
      this.fail(err, x);
      return;
    }
    const resultMs = performance.now();
    this.send(x, 201, JSON.stringify(out), null);
    const sentMs = performance.now();
    const stages = this.streams.stages;
    stages.observe('answer', sentMs - resultMs);
    stages.observe('total', sentMs - x.started);
  }

  private parse(raw: Buffer): AppendBodyDto {
    let body: unknown;
    try {
      body = secureJsonParse(raw, undefined, { protoAction: 'error', constructorAction: 'error' });
    } catch {
      throw new ApiError(400, 'invalid_request', invalidJsonMessage, undefined, { connection: 'close' });
    }
    return isValidAppendBody(body) ? body : this.validate.transform(body);
  }

  private fail(err: unknown, x: Exchange): void {
    const r = toApiResponse(err, { url: x.req.url ?? '' }, this.leader);
    if (r.unexpected) this.requests.failed(x.reqId, x.req, err);
    this.send(x, r.status, r.body === null ? null : JSON.stringify(r.body), r.headers);
  }

  private send(
    x: Exchange,
    status: number,
    json: string | null,
    headers: Record<string, string> | null,
  ): void {
    const res = x.res;
    if (res.destroyed || res.headersSent) return;
    const head: Record<string, string | number> = { ...headers, [requestIdHeader]: x.reqId };
    if (json === null) {
      head['content-length'] = 0;
    } else {
      head['content-type'] = contentTypeJson;
      head['content-length'] = Buffer.byteLength(json);
    }
    res.writeHead(status, head);
    res.end(json ?? undefined);
    this.count('POST', routeLabel, status);
    this.requests.finished(
      x.reqId,
      'POST',
      x.req.url ?? '',
      x.req.headers,
      status,
      performance.now() - x.started,
    );
  }
}

/**
 * True only for a body that `appendBodySchema` accepts unchanged for what the service reads (so the zod
 * pass can be skipped); anything doubtful returns false and goes through zod for its exact message.
 */
export function isValidAppendBody(b: unknown): b is AppendBodyDto {
  if (typeof b !== 'object' || b === null || Array.isArray(b)) return false;
  const body = b as Record<string, unknown>;
  const e = body.expectedRevision;
  if (
    e !== undefined &&
    e !== 'any' &&
    e !== 'no_stream' &&
    e !== 'stream_exists' &&
    !(typeof e === 'number' && Number.isSafeInteger(e) && e >= 0)
  )
    return false;
  const events = body.events;
  if (!Array.isArray(events) || events.length === 0) return false;
  for (let i = 0; i < events.length; i++) {
    const ev = events[i] as Record<string, unknown> | null;
    if (typeof ev !== 'object' || ev === null || Array.isArray(ev)) return false;
    if (ev.id !== undefined && typeof ev.id !== 'string') return false;
    const t = ev.type;
    if (typeof t !== 'string' || t.length === 0 || t.length > eventTypeCharsMax) return false;
  }
  return true;
}
