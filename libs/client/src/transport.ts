import * as http from 'node:http';
import * as https from 'node:https';
import type { ClientTlsOptions } from './types';

/** Largest response body one request reads, in bytes (a page of 4096 events of up to 1 MiB each fits). */
export const responseBytesMax = 1024 * 1024 * 1024;
/** Largest body read from an error answer (4xx/5xx), in bytes: only the JSON error is of interest. */
export const errorBodyBytesMax = 64 * 1024;
/** Keep-alive sockets per node for request/response calls. */
export const socketsPerNodeMax = 64;

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A connection-level failure of one attempt (no HTTP answer). */
export class TransportError extends Error {
  constructor(
    message: string,
    readonly code: string,
    /** True when the request certainly never reached the server (connection refused, no route…). */
    readonly notDelivered: boolean,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}

/** Error codes meaning the request never reached a server process. */
const notDeliveredCodes = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
]);

export function toTransportError(err: unknown): TransportError {
  if (err instanceof TransportError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? 'EUNKNOWN';
  return new TransportError(e?.message ?? String(err), code, notDeliveredCodes.has(code));
}

export class Agents {
  readonly http = new http.Agent({ keepAlive: true, maxSockets: socketsPerNodeMax });
  readonly https: https.Agent;

  constructor(readonly tls: ClientTlsOptions = {}) {
    this.https = new https.Agent({ keepAlive: true, maxSockets: socketsPerNodeMax, ca: tls.ca });
  }

  moduleFor(url: URL): typeof http | typeof https {
    return url.protocol === 'https:' ? https : http;
  }

  agentFor(url: URL): http.Agent {
    return url.protocol === 'https:' ? this.https : this.http;
  }

  destroy(): void {
    this.http.destroy();
    this.https.destroy();
  }
}

/**
 * One HTTP exchange, redirects not followed. Rejects with a TransportError on a connection failure or when
 * the whole exchange (connect, send, answer) takes longer than `timeoutMs`.
 */
export function sendOnce(
  agents: Agents,
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: Buffer | undefined,
  timeoutMs: number,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: TransportError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(err);
    };
    const h: Record<string, string | number> = { accept: 'application/json', ...headers };
    if (body) h['content-length'] = body.length;
    const req = agents.moduleFor(url).request(url, { method, headers: h, agent: agents.agentFor(url) });
    const timer = setTimeout(
      () => fail(new TransportError(`no answer within ${timeoutMs} ms`, 'ETIMEDOUT', false)),
      timeoutMs,
    );
    req.on('error', (err) => fail(toTransportError(err)));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const cap = status >= 400 ? errorBodyBytesMax : responseBytesMax;
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > cap) {
          if (status >= 400) return; // the start of an error body is enough
          fail(new TransportError(`response larger than ${cap} bytes`, 'ETOOLARGE', false));
          return;
        }
        chunks.push(c);
      });
      res.on('error', (err) => fail(toTransportError(err)));
      res.on('aborted', () => fail(new TransportError('connection closed mid-answer', 'ECONNRESET', false)));
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ status, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
    req.end(body);
  });
}
