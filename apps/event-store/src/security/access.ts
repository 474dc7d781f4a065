import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { findToken, Role, roleAllows, TokenEntry } from '@app/config';

/**
 * Who may call what, and how often: bearer tokens with roles, and a per-client token bucket. One
 * AccessControl serves both ways into the node, the fastify routes (an onRequest hook, before any byte of a
 * body is read) and the append fast path (append-fast-path.ts), so the two cannot disagree.
 *
 * Roles by route (admin implies write implies read):
 * - none: `GET /health`, `GET /ready` (probes) and the OpenAPI document and UI under `/docs` (they describe
 *   the API, not its data);
 * - read: every other GET (streams, $all, subscriptions, projections, `/cluster`, `/metrics`);
 * - write: `POST /streams/{streamId}/events`;
 * - admin: every other method on a route that exists (cluster membership, leadership transfer, snapshot,
 *   projection reset) — a new route is admin-only until listed here.
 * A request for a route that does not exist needs read (so only a client with a token learns it is a 404).
 * Routes are told apart by fastify's matched route pattern, not by the raw URL, so an escaped path
 * (`/cluster/%73napshot`) gets the role of the route it reaches.
 */

/** Routes that answer without a token (GET/HEAD only). */
const publicRoutes = new Set(['/health', '/ready', '/docs', '/docs/:file', '/docs-json', '/docs-yaml']);
export const appendRoute = '/streams/:streamId/events';

/** The role a request needs (null: none), from its method and fastify's matched route pattern. */
export function requiredRole(method: string, route: string | undefined): Role | null {
  const read = method === 'GET' || method === 'HEAD';
  if (route === undefined) return 'read';
  if (read) return publicRoutes.has(route) ? null : 'read';
  if (method === 'POST' && route === appendRoute) return 'write';
  return 'admin';
}

/** An answer that ends a request before its handler: status, headers and an API.md error body. */
export interface Refusal {
  status: number;
  headers: Record<string, string>;
  body: { error: string; message: string } & Record<string, unknown>;
}

const bearer = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;
const howToSend = 'send it as "Authorization: Bearer <token>"';

/**
 * A token bucket per key: `perSec` tokens a second, at most `burst` saved up. Buckets that would be full
 * again are dropped from time to time, so the map holds only clients seen in the last `burst / perSec` s.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private sweepAt = 1024;

  constructor(
    readonly perSec: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(perSec > 0) || !(burst >= 1)) throw new RangeError('RateLimiter: perSec > 0 and burst >= 1');
  }

  /** Takes one token for `key`: 0 when there was one, else the ms until there will be. */
  take(key: string): number {
    const t = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.sweepAt) this.sweep(t);
      b = { tokens: this.burst, at: t };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) * this.perSec) / 1000);
      b.at = t;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - b.tokens) * 1000) / this.perSec));
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(t: number): void {
    for (const [k, b] of this.buckets)
      if (b.tokens + ((t - b.at) * this.perSec) / 1000 >= this.burst) this.buckets.delete(k);
    this.sweepAt = Math.max(1024, this.buckets.size * 2);
  }
}

export class AccessControl {
  constructor(
    /** null: requests are not authenticated (no tokens configured, or AUTH=off). */
    private readonly tokens: readonly TokenEntry[] | null,
    private readonly limiter: RateLimiter | null,
  ) {}

  get authenticating(): boolean {
    return this.tokens !== null;
  }

  /**
   * Null when the request may go on; else the 401, 403 or 429 to send. `needed` null: a public route (no
   * token, no rate limit). Without tokens, the rate limit is per remote address.
   */
  check(
    headers: IncomingHttpHeaders,
    remoteAddress: string | undefined,
    needed: Role | null,
  ): Refusal | null {
    if (needed === null) return null;
    let client: string;
    if (this.tokens === null) {
      client = remoteAddress ?? 'unknown';
    } else {
      const header = headers.authorization;
      if (header === undefined || header === '')
        return unauthorized(`this request needs a token with the ${needed} role: ${howToSend}`, false);
      const m = bearer.exec(header);
      if (m === null)
        return unauthorized(`the Authorization header is not a bearer token: ${howToSend}`, true);
      const entry = findToken(this.tokens, m[1]);
      if (entry === null)
        return unauthorized(`unknown token: ${howToSend} with a token listed in the node's tokens`, true);
      if (!roleAllows(entry.role, needed))
        return {
          status: 403,
          headers: {},
          body: {
            error: 'forbidden',
            message: `this request needs the ${needed} role; token "${entry.name}" has the ${entry.role} role`,
            requiredRole: needed,
            tokenRole: entry.role,
          },
        };
      client = `token "${entry.name}"`;
    }
    if (this.limiter === null) return null;
    const waitMs = this.limiter.take(client);
    if (waitMs === 0) return null;
    const retryAfterS = Math.max(1, Math.ceil(waitMs / 1000));
    return {
      status: 429,
      headers: { 'Retry-After': String(retryAfterS) },
      body: {
        error: 'rate_limited',
        message: `over the rate limit of ${this.limiter.perSec} requests/s (burst ${this.limiter.burst}) for ${client}; retry after ${retryAfterS} s`,
      },
    };
  }
}

function unauthorized(message: string, badToken: boolean): Refusal {
  return {
    status: 401,
    headers: {
      'WWW-Authenticate': badToken
        ? 'Bearer realm="event-store", error="invalid_token"'
        : 'Bearer realm="event-store"',
    },
    body: { error: 'unauthorized', message },
  };
}

/**
 * The fastify side: checks every request in an onRequest hook (added right after the request log's, so a
 * refused request is logged, and before the body guards, so nothing of a refused body is read).
 */
export function guardAccess(fastify: FastifyInstance, access: AccessControl): void {
  fastify.addHook('onRequest', (req, reply, done) => {
    const refusal = access.check(
      req.headers,
      req.socket.remoteAddress,
      requiredRole(req.method, req.routeOptions?.url),
    );
    if (refusal === null) {
      done();
      return;
    }
    reply.code(refusal.status).header('content-type', 'application/json; charset=utf-8');
    for (const [k, v] of Object.entries(refusal.headers)) reply.header(k, v);
    reply.send(JSON.stringify(refusal.body));
  });
}
