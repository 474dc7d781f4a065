import * as http from 'node:http';
import * as net from 'node:net';

/** A recorded request of a scripted server. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type ScriptedHandler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  body: string,
  n: number,
) => void | Promise<void>;

/** A node:http server on 127.0.0.1:0 whose answers a test scripts (for the client's unit tests). */
export class ScriptedServer {
  readonly requests: SeenRequest[] = [];
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    readonly server: http.Server,
    readonly url: string,
  ) {
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  static async start(handler: ScriptedHandler): Promise<ScriptedServer> {
    let self: ScriptedServer | null = null;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const n = self!.requests.length;
        self!.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        void Promise.resolve(handler(req, res, body, n)).catch((err: Error) => {
          res.destroy(err);
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as net.AddressInfo).port;
    self = new ScriptedServer(server, `http://127.0.0.1:${port}`);
    return self;
  }

  /** Drops every open connection (as a crashed node would). */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A URL on which nothing listens (connection refused). */
export async function refusingUrl(): Promise<string> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

export function json(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: http.OutgoingHttpHeaders = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(text);
}

/** An envelope for $all position `p` (revision = position, one stream). */
export function envelope(p: number, streamId = 's-1', data: unknown = { p }): Record<string, unknown> {
  return {
    id: `00000000-0000-4000-8000-${String(p).padStart(12, '0')}`,
    streamId,
    type: 'T',
    revision: p,
    position: p,
    timestamp: '2026-01-01T00:00:00.000Z',
    data,
    metadata: {},
  };
}

export function sseMessage(p: number, data?: unknown): string {
  return `id: ${p}\ndata: ${JSON.stringify(envelope(p, 's-1', data))}\n\n`;
}

export function sseHead(res: http.ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  res.write(': subscribed\n\n');
}
