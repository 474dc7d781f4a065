import * as fs from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { findToken, parseTokenLines, Role, roleAllows, TokenEntry, TokenListError } from './api-tokens';
import { ConfigError } from './config-error';

/**
 * Who may call what, and how often: bearer tokens with roles, and a per-client token bucket. Shared by the
 * event-store node and the projector, so both HTTP APIs take the same tokens, give the same 401/403/429
 * answers and refuse to start the same way. Each app says which role each of its routes needs (a
 * `RequiredRole` function over the method and fastify's matched route pattern, so an escaped path gets the
 * role of the route it reaches); the settings (TOKENS_FILE, API_TOKENS, AUTH) are read by `readAuthSettings`.
 */

/** The role a request needs (null: none), from its method and fastify's matched route pattern (undefined: no route). */
export type RequiredRole = (method: string, route: string | undefined) => Role | null;

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The raw settings of access: TOKENS_FILE, API_TOKENS and AUTH (empty values count as unset). */
export interface AuthInput {
  TOKENS_FILE?: string;
  API_TOKENS?: string;
  /** `auto` (or unset): tokens checked when configured; `on`: required; `off`: never checked. */
  AUTH?: '' | 'auto' | 'on' | 'off';
}

export interface AuthSettings {
  /** The tokens every request is checked against, or null: not authenticated (none configured on loopback, or AUTH=off). */
  tokens: TokenEntry[] | null;
  /** AUTH=off: unauthenticated on purpose (to be logged as unsafe at start). */
  off: boolean;
}

/** Where to read about configuring tokens, in the errors that ask for them. */
const tokensHowTo =
  'mint one with `esctl token create --role admin --name ops` and put the line it prints in a file named by TOKENS_FILE (or in API_TOKENS)';

/**
 * The tokens of TOKENS_FILE and API_TOKENS, and whether requests are checked: with tokens (AUTH unset or
 * `on`), not at all with AUTH=off. A process whose HTTP address (`addr`: the variable naming it and its
 * value) is not loopback needs tokens unless AUTH=off. Throws ConfigError naming the variable.
 */
export function readAuthSettings(raw: AuthInput, addr: { variable: string; value: string }): AuthSettings {
  const mode = raw.AUTH || 'auto';
  const tokens: TokenEntry[] = [];
  if (raw.TOKENS_FILE !== undefined && raw.TOKENS_FILE.trim() !== '') {
    const file = raw.TOKENS_FILE;
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new ConfigError('TOKENS_FILE', `cannot read ${file}: ${e.code ?? e.message}`);
    }
    tokens.push(...parseTokens('TOKENS_FILE', text, (n) => `${file} line ${n}`, false));
  }
  if (raw.API_TOKENS !== undefined && raw.API_TOKENS.trim() !== '')
    tokens.push(...parseTokens('API_TOKENS', raw.API_TOKENS, (n) => `entry ${n}`, true));
  const names = new Set<string>();
  for (const t of tokens) {
    if (names.has(t.name))
      throw new ConfigError(
        'API_TOKENS',
        `token name "${t.name}" is also in TOKENS_FILE; names must be unique`,
      );
    names.add(t.name);
  }
  if (mode === 'off') return { tokens: null, off: true };
  if (tokens.length > 0) return { tokens, off: false };
  if (mode === 'on') throw new ConfigError('TOKENS_FILE', `AUTH=on needs at least one token: ${tokensHowTo}`);
  const host = addr.value.slice(0, addr.value.lastIndexOf(':'));
  if (!isLoopbackHost(host))
    throw new ConfigError(
      'TOKENS_FILE',
      `required because ${addr.variable} ${addr.value} is not a loopback address: ${tokensHowTo}; AUTH=off serves every request unauthenticated instead (unsafe)`,
    );
  return { tokens: null, off: false };
}

function parseTokens(
  variable: string,
  text: string,
  where: (n: number) => string,
  commas: boolean,
): TokenEntry[] {
  try {
    return parseTokenLines(text, where, { commas });
  } catch (err) {
    if (err instanceof TokenListError) throw new ConfigError(variable, err.message);
    throw err;
  }
}

/** Tokens by role (never the tokens or their hashes), or why there are none: for the start-up log line. */
export function describeAuth(auth: AuthSettings): string {
  if (auth.tokens === null) return auth.off ? 'no tokens (AUTH=off)' : 'no tokens configured (loopback only)';
  const byRole = new Map<string, number>();
  for (const t of auth.tokens) byRole.set(t.role, (byRole.get(t.role) ?? 0) + 1);
  return `tokens required (${[...byRole].map(([r, n]) => `${n} ${r}`).join(', ')})`;
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
    /** Who answers: the realm of WWW-Authenticate and whose tokens a 401 refers to. */
    private readonly who: { realm: string; owner: string } = { realm: 'event-store', owner: 'node' },
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
        return this.unauthorized(`this request needs a token with the ${needed} role: ${howToSend}`, false);
      const m = bearer.exec(header);
      if (m === null)
        return this.unauthorized(`the Authorization header is not a bearer token: ${howToSend}`, true);
      const entry = findToken(this.tokens, m[1]);
      if (entry === null)
        return this.unauthorized(
          `unknown token: ${howToSend} with a token listed in the ${this.who.owner}'s tokens`,
          true,
        );
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

  private unauthorized(message: string, badToken: boolean): Refusal {
    const realm = `Bearer realm="${this.who.realm}"`;
    return {
      status: 401,
      headers: { 'WWW-Authenticate': badToken ? `${realm}, error="invalid_token"` : realm },
      body: { error: 'unauthorized', message },
    };
  }
}

/**
 * The fastify side: checks every request in an onRequest hook (added right after the request log's, so a
 * refused request is logged, and before the body guards, so nothing of a refused body is read).
 */
export function guardAccess(
  fastify: FastifyInstance,
  access: AccessControl,
  requiredRole: RequiredRole,
): void {
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
