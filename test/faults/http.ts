import * as http from 'node:http';

/**
 * One HTTP request of the fault workload, on a fresh connection (`agent: false`), reporting whether
 * anything was sent: the history's outcome classes depend on it. An error before the TCP connection was
 * established (refused, unreachable, no connection within the timeout) means the request never left this
 * process; anything after means the node may have acted on it.
 */

export type RawResult =
  | { kind: 'response'; status: number; headers: http.IncomingHttpHeaders; text: string; json: any }
  | { kind: 'error'; sent: boolean; code: string; message: string };

export interface RawRequest {
  method: 'GET' | 'POST';
  url: string;
  token: string;
  body?: unknown;
  timeoutMs: number;
}

export function rawRequest(req: RawRequest): Promise<RawResult> {
  return new Promise((resolve) => {
    let settled = false;
    let connected = false;
    const done = (r: RawResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const payload = req.body === undefined ? undefined : JSON.stringify(req.body);
    const headers: Record<string, string> = {
      authorization: `Bearer ${req.token}`,
      accept: 'application/json',
    };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    let r: http.ClientRequest;
    try {
      r = http.request(req.url, { method: req.method, headers, agent: false });
    } catch (err) {
      resolve({ kind: 'error', sent: false, code: 'EINVAL', message: (err as Error).message });
      return;
    }
    const timer = setTimeout(() => {
      done({
        kind: 'error',
        sent: connected,
        code: 'TIMEOUT',
        message: `no answer within ${req.timeoutMs} ms${connected ? '' : ' (not connected)'}`,
      });
      r.destroy();
    }, req.timeoutMs);
    r.on('socket', (s) => {
      s.once('connect', () => (connected = true));
    });
    r.on('error', (err: NodeJS.ErrnoException) => {
      done({ kind: 'error', sent: connected, code: err.code ?? 'ERROR', message: err.message });
    });
    r.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err: NodeJS.ErrnoException) =>
        done({
          kind: 'error',
          sent: true,
          code: err.code ?? 'ERROR',
          message: `while reading the body: ${err.message}`,
        }),
      );
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = undefined;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        done({ kind: 'response', status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    r.end(payload);
  });
}

/**
 * Sends `req`, following up to `maxHops` 307 redirects (each hop a fresh request with its own timeout).
 * Returns the last result and the URLs visited. A 307 means that node did not act on the request, so only
 * the last hop decides the outcome.
 */
export async function requestFollowing(
  req: RawRequest,
  maxHops = 4,
): Promise<{ result: RawResult; hops: string[] }> {
  const hops: string[] = [];
  let url = req.url;
  for (let i = 0; ; i++) {
    hops.push(url);
    const result = await rawRequest({ ...req, url });
    if (result.kind !== 'response' || result.status !== 307 || i >= maxHops) return { result, hops };
    const location = result.headers.location;
    if (!location) return { result, hops };
    url = new URL(location, url).toString();
  }
}
