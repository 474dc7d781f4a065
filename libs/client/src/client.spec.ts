import { backoffDelayMs, retryPolicy } from './backoff';
import {
  EventStoreClient,
  InvalidRequestError,
  StreamNotFoundError,
  UnavailableError,
  UnknownOutcomeError,
  WrongExpectedRevisionError,
} from './index';
import { json, refusingUrl, ScriptedServer } from './testing/scripted-server';

const servers: ScriptedServer[] = [];
const clients: EventStoreClient[] = [];

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
    logger: { warn: () => undefined },
    ...extra,
  });
  clients.push(c);
  return c;
}

const appended = {
  streamId: 'order-1',
  firstRevision: 0,
  lastRevision: 0,
  firstPosition: 7,
  lastPosition: 7,
};

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('append', () => {
  it('follows a 307 with the same method and body, then sends the next writes to the leader directly', async () => {
    const leader = await server((_req, res) => json(res, 201, appended));
    const follower = await server((req, res) => {
      res.writeHead(307, { location: `${leader.url}${req.url}`, 'raft-leader': 'n1' });
      res.end();
    });
    const c = client([follower.url]);
    const r = await c.append('order-1', [{ type: 'OrderPlaced', data: { a: 1 } }], {
      expectedRevision: 'no_stream',
    });
    expect(r).toEqual(appended);
    expect(follower.requests).toHaveLength(1);
    expect(leader.requests).toHaveLength(1);
    expect(leader.requests[0].method).toBe('POST');
    expect(leader.requests[0].url).toBe('/streams/order-1/events');
    expect(leader.requests[0].body).toBe(follower.requests[0].body);
    const sent = JSON.parse(leader.requests[0].body);
    expect(sent.expectedRevision).toBe('no_stream');
    expect(sent.events[0]).toMatchObject({ type: 'OrderPlaced', data: { a: 1 } });
    expect(sent.events[0].id).toMatch(/^[0-9a-f-]{36}$/);

    await c.append('order-1', [{ type: 'OrderShipped' }]);
    expect(follower.requests).toHaveLength(1);
    expect(leader.requests).toHaveLength(2);
  });

  it('gives up after a bounded number of redirect hops', async () => {
    const loop = await server((req, res) => {
      res.writeHead(307, { location: `${loop.url}${req.url}` });
      res.end();
    });
    const c = client([loop.url], { retry: { attempts: 2, initialDelayMs: 1, maxDelayMs: 1 } });
    await expect(c.append('s', [{ type: 'T' }])).rejects.toBeInstanceOf(UnavailableError);
    expect(loop.requests.length).toBe(10); // 5 hops per attempt, 2 attempts
  });

  it('retries 503 and 504 with backoff, with the same event ids, until it succeeds', async () => {
    const s = await server((_req, res, _body, n) => {
      if (n === 0) json(res, 503, { error: 'unavailable', message: 'election' });
      else if (n === 1) json(res, 504, { error: 'timeout', message: 'in flight' });
      else json(res, 201, appended);
    });
    const c = client([s.url]);
    await expect(c.append('order-1', [{ type: 'A' }, { type: 'B', id: 'fixed-id' }])).resolves.toEqual(
      appended,
    );
    expect(s.requests).toHaveLength(3);
    const bodies = s.requests.map((r) => JSON.parse(r.body));
    expect(bodies[1]).toEqual(bodies[0]);
    expect(bodies[2]).toEqual(bodies[0]);
    expect(bodies[0].events[1].id).toBe('fixed-id');
  });

  it('honours Retry-After when it is below the backoff cap', async () => {
    const s = await server((_req, res, _body, n) => {
      if (n === 0) json(res, 503, { error: 'unavailable' }, { 'retry-after': '1' });
      else json(res, 201, appended);
    });
    const c = client([s.url], { retry: { attempts: 3, initialDelayMs: 1, maxDelayMs: 5000 } });
    const t0 = Date.now();
    await c.append('order-1', [{ type: 'A' }]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
  });

  it('ignores a Retry-After above the cap (uses the capped backoff)', async () => {
    const s = await server((_req, res, _body, n) => {
      if (n === 0) json(res, 503, { error: 'unavailable' }, { 'retry-after': '60' });
      else json(res, 201, appended);
    });
    const c = client([s.url], { retry: { attempts: 3, initialDelayMs: 10, maxDelayMs: 50 } });
    const t0 = Date.now();
    await c.append('order-1', [{ type: 'A' }]);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('gives up on persistent 503 with UnavailableError after `attempts` attempts', async () => {
    const s = await server((_req, res) => json(res, 503, { error: 'unavailable', message: 'no quorum' }));
    const c = client([s.url]);
    const err = await c.append('s', [{ type: 'T' }]).catch((e) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toMatch(/no quorum/);
    expect(err.message).toMatch(/gave up after 5 attempts in \d+ ms \(limits: 5 attempts, /);
    expect(s.requests).toHaveLength(5);
  });

  it('gives up on persistent 504 with UnknownOutcomeError (the append may have committed)', async () => {
    const s = await server((_req, res) => json(res, 504, { error: 'timeout', message: 'in flight' }));
    const c = client([s.url]);
    await expect(c.append('s', [{ type: 'T' }])).rejects.toBeInstanceOf(UnknownOutcomeError);
    expect(s.requests).toHaveLength(5);
  });

  it('an attempt that times out counts as an unknown outcome for an append, unavailable for a read', async () => {
    const s = await server(() => undefined); // never answers
    const c = client([s.url], {
      requestTimeoutMs: 100,
      retry: { attempts: 2, initialDelayMs: 1, maxDelayMs: 1 },
    });
    await expect(c.append('s', [{ type: 'T' }])).rejects.toBeInstanceOf(UnknownOutcomeError);
    await expect(c.readAll()).rejects.toBeInstanceOf(UnavailableError);
  });

  it('stops at totalTimeoutMs even when attempts remain', async () => {
    const s = await server((_req, res) => json(res, 503, { error: 'unavailable' }));
    const c = client([s.url], {
      retry: { attempts: 1_000_000, initialDelayMs: 50, maxDelayMs: 50, totalTimeoutMs: 300 },
    });
    const t0 = Date.now();
    await expect(c.append('s', [{ type: 'T' }])).rejects.toBeInstanceOf(UnavailableError);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(s.requests.length).toBeLessThan(100);
  });

  it('maps 409 wrong_expected_revision to WrongExpectedRevisionError, without retrying', async () => {
    const s = await server((_req, res) =>
      json(res, 409, {
        error: 'wrong_expected_revision',
        streamId: 'order-1',
        expectedRevision: 3,
        actualRevision: 5,
      }),
    );
    const c = client([s.url]);
    const err = await c.append('order-1', [{ type: 'T' }], { expectedRevision: 3 }).catch((e) => e);
    expect(err).toBeInstanceOf(WrongExpectedRevisionError);
    expect([err.streamId, err.expectedRevision, err.actualRevision]).toEqual(['order-1', 3, 5]);
    expect(s.requests).toHaveLength(1);
  });

  it('400 and 413 are InvalidRequestError, never retried', async () => {
    const s = await server((_req, res, _body, n) =>
      n === 0
        ? json(res, 400, {
            error: 'invalid_request',
            message: 'missing type',
            details: [{ field: 'events.0.type' }],
          })
        : json(res, 413, { error: 'payload_too_large', message: 'too big' }),
    );
    const c = client([s.url]);
    const e400 = await c.append('s', [{ type: '' }]).catch((e) => e);
    expect(e400).toBeInstanceOf(InvalidRequestError);
    expect(e400.status).toBe(400);
    expect(e400.details).toEqual([{ field: 'events.0.type' }]);
    const e413 = await c.append('s', [{ type: 'T' }]).catch((e) => e);
    expect(e413).toBeInstanceOf(InvalidRequestError);
    expect(e413.status).toBe(413);
    expect(s.requests).toHaveLength(2);
  });

  it('fails over to the next URL when the first refuses connections, and stays there', async () => {
    const dead = await refusingUrl();
    const s = await server((_req, res) => json(res, 201, appended));
    const c = client([dead, s.url]);
    await expect(c.append('order-1', [{ type: 'T' }])).resolves.toEqual(appended);
    await expect(c.append('order-1', [{ type: 'T' }])).resolves.toEqual(appended);
    expect(s.requests).toHaveLength(2);
  });

  it('forgets a leader that stopped answering and rotates through the URLs', async () => {
    const leader = await server((_req, res) => json(res, 201, appended));
    const follower = await server((req, res, _b, n) => {
      if (n === 0) {
        res.writeHead(307, { location: `${leader.url}${req.url}` });
        res.end();
      } else json(res, 201, appended);
    });
    const c = client([follower.url]);
    await c.append('s', [{ type: 'T' }]);
    await leader.close();
    servers.splice(servers.indexOf(leader), 1);
    await expect(c.append('s', [{ type: 'T' }])).resolves.toEqual(appended);
    expect(follower.requests).toHaveLength(2);
  });

  it('connection refused everywhere: UnavailableError (nothing was sent)', async () => {
    const c = client([await refusingUrl(), await refusingUrl()]);
    await expect(c.append('s', [{ type: 'T' }])).rejects.toBeInstanceOf(UnavailableError);
  });

  it('sends the bearer token', async () => {
    const s = await server((_req, res) => json(res, 201, appended));
    const c = client([s.url], { token: 'sekret' });
    await c.append('s', [{ type: 'T' }]);
    expect(s.requests[0].headers.authorization).toBe('Bearer sekret');
  });
});

describe("429 (over a node's rate limit)", () => {
  it('waits for Retry-After and asks the same node again; nothing was done, so an append just succeeds', async () => {
    let calls = 0;
    const s = await server((_req, res) => {
      if (++calls === 1) {
        res.setHeader('retry-after', '0');
        return json(res, 429, { error: 'rate_limited', message: 'slow down' });
      }
      json(res, 201, appended);
    });
    const c = client([s.url], { token: 't' });
    expect(await c.append('s', [{ type: 'T' }])).toEqual(appended);
    expect(s.requests).toHaveLength(2);
    expect(s.requests[1].headers.authorization).toBe('Bearer t');
  });

  it('ends in UnavailableError (not an unknown outcome) when the limit outlasts the retries', async () => {
    const s = await server((_req, res) => json(res, 429, { error: 'rate_limited', message: 'slow down' }));
    const c = client([s.url]);
    await expect(c.append('s', [{ type: 'T' }])).rejects.toBeInstanceOf(UnavailableError);
  });
});

describe('reads', () => {
  it('readStream builds the query and throws StreamNotFoundError on 404', async () => {
    const s = await server((req, res) =>
      req.url!.startsWith('/streams/missing')
        ? json(res, 404, { error: 'stream_not_found' })
        : json(res, 200, { streamId: 'a b', events: [], lastRevision: 3, next: null }),
    );
    const c = client([s.url]);
    await expect(
      c.readStream('a b', { from: 2, limit: 5, direction: 'backward', consistency: 'local' }),
    ).resolves.toEqual({ streamId: 'a b', events: [], lastRevision: 3, next: null });
    expect(s.requests[0].url).toBe('/streams/a%20b?from=2&limit=5&direction=backward&consistency=local');
    await expect(c.readStream('missing')).rejects.toBeInstanceOf(StreamNotFoundError);
    expect(s.requests).toHaveLength(2);
  });

  it('readAllPages follows next until null; headPosition reads lastPosition', async () => {
    const s = await server((req, res) => {
      const u = new URL(req.url!, 'http://x');
      const from = Number(u.searchParams.get('from') ?? 0);
      if (u.searchParams.get('direction') === 'backward')
        return json(res, 200, { events: [], lastPosition: 4, next: 3 });
      const events = [from, from + 1].filter((p) => p <= 4).map((p) => ({ position: p }));
      json(res, 200, { events, lastPosition: 4, next: from + 2 <= 4 ? from + 2 : null });
    });
    const c = client([s.url]);
    const pages: number[][] = [];
    for await (const page of c.readAllPages({ limit: 2, types: ['A', 'B'], streamPrefix: 'order-' }))
      pages.push(page.map((e) => e.position));
    expect(pages).toEqual([[0, 1], [2, 3], [4]]);
    expect(s.requests[0].url).toBe('/streams/$all?limit=2&types=A%2CB&streamPrefix=order-');
    await expect(c.headPosition()).resolves.toBe(4);
  });
});

describe('request (routes without a typed method)', () => {
  it('sends method, JSON body and token; with leader: true follows a 307 and goes to the leader next time', async () => {
    const leader = await server((req, res) => json(res, 200, { method: req.method, url: req.url }));
    const follower = await server((req, res) => {
      res.writeHead(307, { location: `${leader.url}${req.url}` });
      res.end();
    });
    const c = client([follower.url], { token: 't0k' });
    await expect(
      c.request('POST', '/cluster/leadership-transfer', { body: { to: 'n2' }, leader: true, write: true }),
    ).resolves.toEqual({ method: 'POST', url: '/cluster/leadership-transfer' });
    expect(leader.requests[0].body).toBe('{"to":"n2"}');
    expect(leader.requests[0].headers['content-type']).toBe('application/json');
    expect(leader.requests[0].headers.authorization).toBe('Bearer t0k');
    await c.request('DELETE', '/cluster/members/n3', { leader: true, write: true });
    expect(follower.requests).toHaveLength(1);
    expect(leader.requests[1]).toMatchObject({ method: 'DELETE', url: '/cluster/members/n3', body: '' });
  });

  it('maps a 4xx to InvalidRequestError (status and body) and a 409 wrong_expected_revision to its error', async () => {
    const s = await server((req, res) =>
      req.url === '/projections/nope'
        ? json(res, 404, { error: 'projection_not_found', message: 'no projection named "nope"' })
        : json(res, 409, {
            error: 'wrong_expected_revision',
            streamId: 'a',
            expectedRevision: 0,
            actualRevision: 2,
          }),
    );
    const c = client([s.url]);
    const err = (await c.request('GET', '/projections/nope').catch((e) => e)) as InvalidRequestError;
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect(err.status).toBe(404);
    expect(err.details).toMatchObject({ error: 'projection_not_found' });
    await expect(c.request('POST', '/x', { body: {} })).rejects.toBeInstanceOf(WrongExpectedRevisionError);
    expect(() => c.request('GET', 'cluster')).toThrow(RangeError);
  });

  it('a lost answer is an unknown outcome for a write, unavailable otherwise', async () => {
    const s = await server(() => undefined); // never answers
    const c = client([s.url], {
      requestTimeoutMs: 100,
      retry: { attempts: 2, initialDelayMs: 1, maxDelayMs: 1 },
    });
    await expect(c.request('POST', '/cluster/snapshot', { write: true })).rejects.toBeInstanceOf(
      UnknownOutcomeError,
    );
    await expect(c.request('GET', '/projections')).rejects.toBeInstanceOf(UnavailableError);
  });
});

describe('backoff', () => {
  it('full jitter below min(cap, initial * 2^n)', () => {
    const p = retryPolicy({ initialDelayMs: 100, maxDelayMs: 1000 });
    expect(backoffDelayMs(p, 0, () => 0.999)).toBe(99);
    expect(backoffDelayMs(p, 3, () => 0.999)).toBe(799);
    expect(backoffDelayMs(p, 10, () => 0.999)).toBe(999);
    expect(backoffDelayMs(p, 1000, () => 0.5)).toBe(500);
    expect(backoffDelayMs(p, 5, () => 0)).toBe(0);
  });
});
