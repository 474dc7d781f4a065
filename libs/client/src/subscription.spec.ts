import type * as http from 'node:http';
import { EventStoreClient, EventStoreError, InvalidRequestError, UnavailableError } from './index';
import type { EventEnvelope, Subscription } from './index';
import { json, refusingUrl, ScriptedServer, sseHead, sseMessage } from './testing/scripted-server';
import type { SseSubscription } from './subscription';

jest.setTimeout(20_000);

const servers: ScriptedServer[] = [];
const clients: EventStoreClient[] = [];
const warnings: string[] = [];

async function server(handler: Parameters<typeof ScriptedServer.start>[0]): Promise<ScriptedServer> {
  const s = await ScriptedServer.start(handler);
  servers.push(s);
  return s;
}

function client(urls: string[], extra: Partial<ConstructorParameters<typeof EventStoreClient>[0]> = {}) {
  const c = new EventStoreClient({
    urls,
    requestTimeoutMs: 2000,
    retry: { attempts: 5, initialDelayMs: 5, maxDelayMs: 20, totalTimeoutMs: 5000 },
    logger: { warn: (m) => warnings.push(m) },
    ...extra,
  });
  clients.push(c);
  return c;
}

afterEach(async () => {
  warnings.length = 0;
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** Collects delivered positions until `n` were seen (bounded by the jest timeout). */
async function take(sub: Subscription, n: number): Promise<number[]> {
  const out: number[] = [];
  if (n <= 0) return out;
  for await (const batch of sub) {
    out.push(...batch.map((e) => e.position));
    if (out.length >= n) break;
  }
  return out;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** The position to start after, from the Last-Event-ID header or the `from` query (as the server does). */
function startOf(req: http.IncomingMessage): number {
  const last = req.headers['last-event-id'];
  if (typeof last === 'string') return Number(last) + 1;
  return Number(new URL(req.url!, 'http://x').searchParams.get('from') ?? 0);
}

describe('subscribeAll', () => {
  it('parses messages split across chunks, skips comments, yields batches in order', async () => {
    const s = await server(async (_req, res) => {
      sseHead(res);
      const text = range(0, 5)
        .map((p) => sseMessage(p))
        .join(': heartbeat\n\n');
      // Split at awkward places: inside a field name, inside the JSON, between the two newlines.
      res.write(text.slice(0, 3));
      res.write(text.slice(3, 17));
      res.write(text.slice(17, 200));
      await new Promise((r) => setTimeout(r, 20));
      res.write(text.slice(200));
    });
    const c = client([s.url]);
    const sub = c.subscribeAll({ from: 0, types: ['T'], streamPrefix: 's-' });
    const seen: EventEnvelope[] = [];
    for await (const batch of sub) {
      seen.push(...batch);
      if (seen.length >= 5) break;
    }
    expect(seen.map((e) => e.position)).toEqual([0, 1, 2, 3, 4]);
    expect(seen[2]).toMatchObject({ streamId: 's-1', type: 'T', revision: 2, data: { p: 2 } });
    expect(sub.lastId).toBe(4);
    expect(s.requests[0].url).toBe('/streams/$all/subscribe?from=0&types=T&streamPrefix=s-');
    expect(s.requests[0].headers.accept).toBe('text/event-stream');
  });

  it('caps batches at maxBatchEvents', async () => {
    const s = await server((_req, res) => {
      sseHead(res);
      res.write(
        range(0, 25)
          .map((p) => sseMessage(p))
          .join(''),
      );
    });
    const c = client([s.url]);
    const sizes: number[] = [];
    let total = 0;
    for await (const batch of c.subscribeAll({ from: 0, maxBatchEvents: 10 })) {
      sizes.push(batch.length);
      total += batch.length;
      if (total >= 25) break;
    }
    expect(Math.max(...sizes)).toBeLessThanOrEqual(10);
    expect(total).toBe(25);
  });

  it('resumes with Last-Event-ID on the next node when the connection drops mid-message', async () => {
    const a = await server((_req, res) => {
      sseHead(res);
      res.write(
        range(0, 3)
          .map((p) => sseMessage(p))
          .join(''),
      );
      const partial = sseMessage(3);
      res.write(partial.slice(0, partial.length - 10)); // message 3 is cut: it must come from b
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const b = await server((req, res) => {
      sseHead(res);
      res.write(
        range(startOf(req), 6)
          .map((p) => sseMessage(p))
          .join(''),
      );
    });
    const c = client([a.url, b.url]);
    const sub = c.subscribeAll({ from: 0 });
    expect(await take(sub, 6)).toEqual(range(0, 6));
    expect(b.requests[0].headers['last-event-id']).toBe('2');
    expect(b.requests[0].url).toBe('/streams/$all/subscribe');
    expect(sub.reconnects).toBe(1);
    expect(warnings.join('\n')).toMatch(/resuming after id 2/);
  });

  it('drops events already delivered when a node resends them (defensive dedup)', async () => {
    let connection = 0;
    const s = await server((_req, res) => {
      connection++;
      sseHead(res);
      if (connection === 1) {
        res.write(
          range(0, 4)
            .map((p) => sseMessage(p))
            .join(''),
        );
        setTimeout(() => res.socket?.destroy(), 30);
      } else
        res.write(
          range(0, 8)
            .map((p) => sseMessage(p))
            .join(''),
        ); // ignores Last-Event-ID
    });
    const c = client([s.url]);
    const sub = c.subscribeAll({ from: 0 });
    expect(await take(sub, 8)).toEqual(range(0, 8));
    expect(s.requests[1].headers['last-event-id']).toBe('3');
  });

  it('reports a gap in $all positions as an error from the iterator', async () => {
    const s = await server((_req, res) => {
      sseHead(res);
      res.write([0, 1, 3].map((p) => sseMessage(p)).join(''));
    });
    const c = client([s.url]);
    const got: number[] = [];
    const err = await (async () => {
      for await (const batch of c.subscribeAll({ from: 0 })) got.push(...batch.map((e) => e.position));
    })().catch((e) => e);
    expect(err).toBeInstanceOf(EventStoreError);
    expect(err.message).toMatch(/gap: expected id 2, received 3/);
    expect(got).toEqual([]); // the whole chunk is checked before it is delivered
  });

  it('does not treat filtered $all positions as gaps', async () => {
    const s = await server((_req, res) => {
      sseHead(res);
      res.write([2, 5, 9].map((p) => sseMessage(p)).join(''));
    });
    const c = client([s.url]);
    expect(await take(c.subscribeAll({ from: 0, types: ['T'] }), 3)).toEqual([2, 5, 9]);
  });

  it('reconnects after `event: error` from the server', async () => {
    const s = await server((req, res) => {
      sseHead(res);
      const start = startOf(req);
      if (start === 0) {
        res.write(sseMessage(0) + sseMessage(1));
        res.end(`event: error\ndata: {"error":"slow_reader"}\n\n`);
      } else
        res.write(
          range(start, 4)
            .map((p) => sseMessage(p))
            .join(''),
        );
    });
    const c = client([s.url]);
    const sub = c.subscribeAll({ from: 0 });
    expect(await take(sub, 4)).toEqual(range(0, 4));
    expect(s.requests[1].headers['last-event-id']).toBe('1');
    expect(warnings.join('\n')).toMatch(/slow_reader/);
  });

  it('drops a connection that stays silent longer than idleTimeoutMs and resumes elsewhere', async () => {
    const a = await server((_req, res) => {
      sseHead(res);
      res.write(sseMessage(0)); // then silence: no heartbeat
    });
    const b = await server((req, res) => {
      sseHead(res);
      res.write(
        range(startOf(req), 3)
          .map((p) => sseMessage(p))
          .join(''),
      );
    });
    const c = client([a.url, b.url]);
    const sub = c.subscribeAll({ from: 0, idleTimeoutMs: 300 });
    const t0 = Date.now();
    expect(await take(sub, 3)).toEqual([0, 1, 2]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(warnings.join('\n')).toMatch(/no byte/);
  });

  it('heartbeats keep a quiet connection alive', async () => {
    const s = await server((_req, res) => {
      sseHead(res);
      const t = setInterval(() => res.write(': heartbeat\n\n'), 50);
      setTimeout(() => {
        clearInterval(t);
        res.write(sseMessage(0));
      }, 600);
      res.once('close', () => clearInterval(t));
    });
    const c = client([s.url]);
    const sub = c.subscribeAll({ from: 0, idleTimeoutMs: 200 });
    expect(await take(sub, 1)).toEqual([0]);
    expect(sub.reconnects).toBe(0);
  });

  it('without `from` starts after the current head, and resumes from there even before any event', async () => {
    let subscribes = 0;
    const s = await server((req, res) => {
      if (!req.url!.includes('/subscribe')) return json(res, 200, { events: [], lastPosition: 41, next: 40 });
      subscribes++;
      sseHead(res);
      if (subscribes === 1) setTimeout(() => res.socket?.destroy(), 20);
      else
        res.write(
          range(startOf(req), 45)
            .map((p) => sseMessage(p))
            .join(''),
        );
    });
    const c = client([s.url]);
    const sub = c.subscribeAll();
    expect(await take(sub, 3)).toEqual([42, 43, 44]);
    expect(s.requests[0].url).toBe('/streams/$all?limit=1&direction=backward');
    expect(s.requests[1].url).toBe('/streams/$all/subscribe?from=42');
    expect(s.requests[2].url).toBe('/streams/$all/subscribe?from=42');
  });

  it('applies backpressure: a consumer that does not pull stops the socket reads, buffers stay bounded', async () => {
    const payload = { pad: 'x'.repeat(1000) };
    let written = 0;
    let blocked = false;
    let stop = false;
    const s = await server(async (_req, res) => {
      sseHead(res);
      res.once('close', () => (stop = true));
      // Bounded: at most 200k events (~230 MB) - far more than a bounded reader lets through.
      for (let p = 0; p < 200_000 && !stop; p++) {
        const text = sseMessage(p, payload);
        written += text.length;
        if (!res.write(text)) {
          const drained = await new Promise<boolean>((resolve) => {
            const t = setTimeout(() => resolve(false), 700);
            res.once('drain', () => {
              clearTimeout(t);
              resolve(true);
            });
          });
          if (!drained) {
            blocked = true;
            await new Promise((resolve) => res.once('drain', resolve));
            blocked = false;
          }
        }
      }
    });
    const c = client([s.url]);
    const sub = c.subscribeAll({ from: 0, maxBatchEvents: 10 });
    const it = sub[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value.map((e: EventEnvelope) => e.position)).toEqual(range(0, 10));
    // The consumer holds on to the batch and does not ask for the next one.
    await new Promise((r) => setTimeout(r, 1500));
    expect(blocked).toBe(true);
    const writtenWhileBlocked = written;
    const buffered = (sub as SseSubscription).bufferedBytes;
    expect(buffered).toBeLessThan(1024 * 1024);
    // Kernel socket buffers on loopback are at most a few MB; an unbounded reader would take everything.
    expect(writtenWhileBlocked).toBeLessThan(32 * 1024 * 1024);
    // Pulling again resumes the stream in order.
    let next = 10;
    for (let i = 0; i < 100; i++) {
      const r = await it.next();
      for (const e of r.value as EventEnvelope[]) expect(e.position).toBe(next++);
    }
    expect(next).toBeGreaterThanOrEqual(110);
    await it.return!();
  });

  it('close() and an aborted signal end the iterator cleanly (return, not throw)', async () => {
    const s = await server((_req, res) => {
      sseHead(res);
      res.write(sseMessage(0));
    });
    const c = client([s.url]);
    const sub = c.subscribeAll({ from: 0 });
    const got: number[] = [];
    const done = (async () => {
      for await (const batch of sub) got.push(...batch.map((e) => e.position));
      return 'returned';
    })();
    await new Promise((r) => setTimeout(r, 100));
    sub.close();
    await expect(done).resolves.toBe('returned');
    expect(got).toEqual([0]);
    expect(sub.connectedUrl).toBeNull();

    const ac = new AbortController();
    const sub2 = c.subscribeAll({ from: 0, signal: ac.signal });
    const done2 = (async () => {
      for await (const _batch of sub2);
      return 'returned';
    })();
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    await expect(done2).resolves.toBe('returned');
  });

  it('close() during the reconnect backoff ends the iterator too', async () => {
    const c = client([await refusingUrl()], {
      retry: { attempts: 100, initialDelayMs: 10_000, maxDelayMs: 10_000, totalTimeoutMs: 60_000 },
    });
    const sub = c.subscribeAll({ from: 0 });
    const done = (async () => {
      for await (const _batch of sub);
      return 'returned';
    })();
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    sub.close();
    await expect(done).resolves.toBe('returned');
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('gives up with UnavailableError when no node accepts the subscription', async () => {
    const c = client([await refusingUrl(), await refusingUrl()]);
    const err = await (async () => {
      for await (const _batch of c.subscribeAll({ from: 0 }));
    })().catch((e) => e);
    expect(err).toBeInstanceOf(UnavailableError);
  });

  it('a 400 answer is an InvalidRequestError, not retried', async () => {
    const s = await server((_req, res) => json(res, 400, { error: 'invalid_request', message: 'bad from' }));
    const c = client([s.url]);
    const err = await (async () => {
      for await (const _batch of c.subscribeAll({ from: 0 }));
    })().catch((e) => e);
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect(s.requests).toHaveLength(1);
  });
});

describe('subscribeStream', () => {
  it('uses revisions as ids, starts after the stream head by default (0 when it does not exist)', async () => {
    const s = await server((req, res) => {
      if (!req.url!.includes('/subscribe')) return json(res, 404, { error: 'stream_not_found' });
      sseHead(res);
      res.write(
        range(startOf(req), 3)
          .map((p) => sseMessage(p))
          .join(''),
      );
    });
    const c = client([s.url]);
    const sub = c.subscribeStream('order-7');
    const got: number[] = [];
    for await (const batch of sub) {
      got.push(...batch.map((e) => e.revision));
      if (got.length >= 3) break;
    }
    expect(got).toEqual([0, 1, 2]);
    expect(sub.lastId).toBe(2);
    expect(s.requests[0].url).toBe('/streams/order-7?limit=1&direction=backward');
    expect(s.requests[1].url).toBe('/streams/order-7/subscribe?from=0');
  });
});
