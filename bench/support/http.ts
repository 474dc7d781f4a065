/** A small keep-alive JSON client on node:http for the benchmarks' control traffic (not the load: wrk does that). */
import * as http from 'node:http';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export function requestJson(
  method: string,
  url: string,
  body?: unknown,
  timeoutMs = 10_000,
  useAgent: http.Agent = agent,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      url,
      {
        method,
        agent: useAgent,
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : null;
          } catch {
            /* not JSON: keep the text */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () =>
      req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)),
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export const getJson = (url: string, timeoutMs?: number) => requestJson('GET', url, undefined, timeoutMs);
export const postJson = (url: string, body: unknown, timeoutMs?: number) =>
  requestJson('POST', url, body, timeoutMs);
