import { hashToken, TokenEntry } from '@app/config';
import { AccessControl, RateLimiter, requiredRole } from './access';

const entry = (name: string, role: TokenEntry['role'], token: string): TokenEntry => ({
  name,
  role,
  hash: hashToken(token),
});
const tokens = [entry('r', 'read', 'tok-r'), entry('w', 'write', 'tok-w'), entry('a', 'admin', 'tok-a')];
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

describe('requiredRole (by method and the route fastify matched)', () => {
  it.each([
    ['GET', '/health', null],
    ['GET', '/ready', null],
    ['GET', '/docs', null],
    ['GET', '/docs-json', null],
    ['HEAD', '/health', null],
    ['GET', '/metrics', 'read'],
    ['GET', '/cluster', 'read'],
    ['GET', '/streams/:streamId', 'read'],
    ['GET', '/streams/$all/subscribe', 'read'],
    ['GET', '/streams/:streamId/subscribe', 'read'],
    ['GET', '/projections/:name', 'read'],
    ['POST', '/streams/:streamId/events', 'write'],
    ['POST', '/cluster/members', 'admin'],
    ['DELETE', '/cluster/members/:id', 'admin'],
    ['POST', '/cluster/leadership-transfer', 'admin'],
    ['POST', '/cluster/snapshot', 'admin'],
    ['POST', '/projections/:name/reset', 'admin'],
    ['POST', '/health', 'admin'],
    ['GET', undefined, 'read'],
    ['POST', undefined, 'read'],
  ])('%s %s needs %s', (method, route, role) => {
    expect(requiredRole(method, route)).toBe(role);
  });
});

describe('AccessControl with tokens', () => {
  const access = new AccessControl(tokens, null);

  it('401 without a token, with a non-bearer header, with an unknown token: saying how to send one', () => {
    for (const headers of [{}, { authorization: '' }, { authorization: 'Basic dTpw' }, bearer('nope')]) {
      const r = access.check(headers, '127.0.0.1', 'read');
      expect(r?.status).toBe(401);
      expect(r?.body.error).toBe('unauthorized');
      expect(r?.body.message).toContain('Authorization: Bearer <token>');
      expect(r?.headers['WWW-Authenticate']).toMatch(/^Bearer realm="event-store"/);
    }
    expect(access.check({}, '127.0.0.1', 'write')?.body.message).toContain(
      'needs a token with the write role',
    );
    expect(access.check(bearer('nope'), '127.0.0.1', 'read')?.body.message).toMatch(/^unknown token/);
  });

  it('403 naming the role needed and the role held', () => {
    const r = access.check(bearer('tok-r'), '127.0.0.1', 'write');
    expect(r).toEqual({
      status: 403,
      headers: {},
      body: {
        error: 'forbidden',
        message: 'this request needs the write role; token "r" has the read role',
        requiredRole: 'write',
        tokenRole: 'read',
      },
    });
    expect(access.check(bearer('tok-w'), '127.0.0.1', 'admin')?.status).toBe(403);
  });

  it('lets a sufficient role through (scheme case-insensitive), and public routes without a token', () => {
    expect(access.check(bearer('tok-r'), '127.0.0.1', 'read')).toBeNull();
    expect(access.check(bearer('tok-w'), '127.0.0.1', 'read')).toBeNull();
    expect(access.check(bearer('tok-w'), '127.0.0.1', 'write')).toBeNull();
    expect(access.check(bearer('tok-a'), '127.0.0.1', 'admin')).toBeNull();
    expect(access.check({ authorization: 'bearer tok-a' }, '127.0.0.1', 'admin')).toBeNull();
    expect(access.check({}, '127.0.0.1', null)).toBeNull();
  });

  it('never puts the token in an answer', () => {
    for (const t of ['tok-r', 'nope'])
      for (const role of ['read', 'write', 'admin'] as const)
        expect(JSON.stringify(access.check(bearer(t), '127.0.0.1', role))).not.toContain(t);
  });
});

describe('AccessControl without tokens', () => {
  it('lets everything through (AUTH=off or a loopback node without tokens), an Authorization header ignored', () => {
    const access = new AccessControl(null, null);
    expect(access.check({}, '127.0.0.1', 'admin')).toBeNull();
    expect(access.check(bearer('whatever'), '127.0.0.1', 'write')).toBeNull();
  });
});

describe('rate limit', () => {
  it('is a token bucket: burst, then one request per 1/rate s; 429 with Retry-After in whole seconds', () => {
    let now = 0;
    const limiter = new RateLimiter(2, 3, () => now);
    expect([limiter.take('k'), limiter.take('k'), limiter.take('k')]).toEqual([0, 0, 0]);
    expect(limiter.take('k')).toBe(500);
    expect(limiter.take('other')).toBe(0);
    now += 500;
    expect(limiter.take('k')).toBe(0);
    expect(limiter.take('k')).toBe(500);
    now += 10_000;
    expect([limiter.take('k'), limiter.take('k'), limiter.take('k'), limiter.take('k')]).toEqual([
      0, 0, 0, 500,
    ]);
  });

  it('keys by token name with tokens, by remote address without', () => {
    let now = 0;
    const withTokens = new AccessControl(tokens, new RateLimiter(1, 1, () => now));
    expect(withTokens.check(bearer('tok-w'), '10.0.0.1', 'write')).toBeNull();
    const r = withTokens.check(bearer('tok-w'), '10.0.0.2', 'read');
    expect(r?.status).toBe(429);
    expect(r?.headers['Retry-After']).toBe('1');
    expect(r?.body).toMatchObject({ error: 'rate_limited' });
    expect(r?.body.message).toContain('token "w"');
    expect(withTokens.check(bearer('tok-r'), '10.0.0.2', 'read')).toBeNull();
    // a refused token does not spend the bucket of anyone; a public route is not limited
    expect(withTokens.check(bearer('nope'), '10.0.0.2', 'read')?.status).toBe(401);
    expect(withTokens.check({}, '10.0.0.2', null)).toBeNull();

    const noTokens = new AccessControl(null, new RateLimiter(1, 1, () => now));
    expect(noTokens.check({}, '10.0.0.1', 'write')).toBeNull();
    expect(noTokens.check({}, '10.0.0.1', 'read')?.status).toBe(429);
    expect(noTokens.check({}, '10.0.0.2', 'read')).toBeNull();
    now += 1000;
    expect(noTokens.check({}, '10.0.0.1', 'read')).toBeNull();
  });

  it('forgets clients whose bucket is full again, so many addresses do not grow the map for ever', () => {
    let now = 0;
    const limiter = new RateLimiter(10, 10, () => now);
    for (let i = 0; i < 5000; i++) {
      limiter.take(`10.0.${i >> 8}.${i & 255}`);
      now += 10;
    }
    expect(limiter.size).toBeLessThan(2100);
  });
});
