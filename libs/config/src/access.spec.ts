import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AccessControl, describeAuth, isLoopbackHost, RateLimiter, readAuthSettings } from './access';
import { hashToken, mintToken, TokenEntry, tokenLine } from './api-tokens';
import { ConfigError } from './config-error';

const entry = (name: string, role: TokenEntry['role'], token: string): TokenEntry => ({
  name,
  role,
  hash: hashToken(token),
});
const tokens = [entry('r', 'read', 'tok-r'), entry('w', 'write', 'tok-w'), entry('a', 'admin', 'tok-a')];
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

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

describe('AccessControl of another process (the projector)', () => {
  it('names its own realm and its own tokens in a 401', () => {
    const access = new AccessControl(tokens, null, { realm: 'projector', owner: 'projector' });
    const none = access.check({}, '127.0.0.1', 'read');
    expect(none?.headers['WWW-Authenticate']).toBe('Bearer realm="projector"');
    const unknown = access.check(bearer('nope'), '127.0.0.1', 'read');
    expect(unknown?.headers['WWW-Authenticate']).toBe('Bearer realm="projector", error="invalid_token"');
    expect(unknown?.body.message).toContain("listed in the projector's tokens");
  });
});

describe('readAuthSettings (TOKENS_FILE, API_TOKENS, AUTH)', () => {
  const loopback = { variable: 'PROJECTOR_HTTP_ADDR', value: '127.0.0.1:2150' };
  const open = { variable: 'PROJECTOR_HTTP_ADDR', value: '0.0.0.0:2150' };
  const fail = (f: () => unknown): ConfigError => {
    try {
      f();
    } catch (err) {
      if (err instanceof ConfigError) return err;
      throw err;
    }
    throw new Error('expected a ConfigError');
  };

  it('needs tokens off loopback, naming the address variable and saying how; AUTH=off opts out', () => {
    const err = fail(() => readAuthSettings({}, open));
    expect(err.variable).toBe('TOKENS_FILE');
    expect(err.message).toContain(
      'required because PROJECTOR_HTTP_ADDR 0.0.0.0:2150 is not a loopback address',
    );
    expect(err.message).toContain('esctl token create');
    expect(err.message).toContain('AUTH=off');
    expect(readAuthSettings({ AUTH: 'off' }, open)).toEqual({ tokens: null, off: true });
    expect(readAuthSettings({}, loopback)).toEqual({ tokens: null, off: false });
    expect(fail(() => readAuthSettings({ AUTH: 'on' }, loopback)).variable).toBe('TOKENS_FILE');
  });

  it('reads TOKENS_FILE and API_TOKENS together; errors name the file and line; names are unique', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'access-spec-'));
    try {
      const file = path.join(dir, 'tokens');
      fs.writeFileSync(file, `# ops\n${tokenLine('ops', 'admin', mintToken())}\n`);
      const auth = readAuthSettings(
        { TOKENS_FILE: file, API_TOKENS: tokenLine('graf', 'read', mintToken()) },
        open,
      );
      expect(auth.tokens?.map((t) => `${t.name}:${t.role}`)).toEqual(['ops:admin', 'graf:read']);
      expect(describeAuth(auth)).toBe('tokens required (1 admin, 1 read)');
      fs.writeFileSync(file, 'ops:root:00\n');
      expect(fail(() => readAuthSettings({ TOKENS_FILE: file }, open)).message).toContain(`${file} line 1`);
      const dup = tokenLine('ops', 'read', mintToken());
      fs.writeFileSync(file, `${tokenLine('ops', 'admin', mintToken())}\n`);
      expect(fail(() => readAuthSettings({ TOKENS_FILE: file, API_TOKENS: dup }, open)).message).toContain(
        'token name "ops" is also in TOKENS_FILE',
      );
      expect(
        fail(() => readAuthSettings({ TOKENS_FILE: path.join(dir, 'missing') }, open)).message,
      ).toContain('ENOENT');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('tells loopback hosts apart', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]'])
      expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['0.0.0.0', '10.0.0.1', '::', 'example.com']) expect(isLoopbackHost(h)).toBe(false);
    expect(describeAuth({ tokens: null, off: true })).toBe('no tokens (AUTH=off)');
  });
});
