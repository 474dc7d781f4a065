import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EventStoreClient, InvalidRequestError } from '@app/client';
import { waitFor } from '@app/consensus/testing';
import {
  ClusterHarness,
  freePorts,
  killProc,
  nodeMain,
  nodeRuntime,
  repoRoot,
  spawnTracked,
} from '../support/cluster-harness';
import { request, SseReader } from '../support/e2e-client';
import { mintToken, tokenLine } from '@app/config';

/**
 * API tokens on a real node (TOKENS_FILE with a read, a write and an admin token): 401 without a token or
 * with an unknown one, 403 for a role too low (on the append fast path and on fastify's routes alike), admin
 * routes admin-only, subscriptions and /metrics need read, /health and /ready open; the client and esctl
 * send the token; no token ever reaches the logs. A node on a non-loopback address without tokens does not
 * start (exit code 2), unless AUTH=off; a bad tokens file names the file and line. The rate limit answers
 * 429 with Retry-After, per token.
 */

jest.setTimeout(120_000);

const tokens = { read: mintToken(), write: mintToken(), admin: mintToken(), harness: mintToken() };
const unknownToken = mintToken();
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const esctlMain = path.join(repoRoot, 'dist', 'apps', 'esctl', 'src', 'main.js');
let dir: string;
let tokensFile: string;
let h: ClusterHarness;
let url: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'es-security-'));
  tokensFile = path.join(dir, 'tokens');
  fs.writeFileSync(
    tokensFile,
    [
      '# e2e tokens',
      tokenLine('reader', 'read', tokens.read),
      tokenLine('writer', 'write', tokens.write),
      tokenLine('operator', 'admin', tokens.admin),
      tokenLine('harness', 'read', tokens.harness),
      '',
    ].join('\n'),
  );
  h = await ClusterHarness.start({
    nodes: 1,
    env: { TOKENS_FILE: tokensFile, LOG_LEVEL: 'debug' },
    token: tokens.harness,
  });
  await h.waitForLeader();
  url = h.node('n1').url;
}, 90_000);

afterAll(async () => {
  await h?.cleanup();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const appendBody = (type = 'Tested') => ({ events: [{ type, data: { n: 1 } }] });

describe('a node with tokens', () => {
  it('answers 401 without a token, saying how to send one; /health and /ready need none', async () => {
    for (const [method, p] of [
      ['GET', '/streams/sec-1'],
      ['GET', '/streams/$all'],
      ['GET', '/cluster'],
      ['GET', '/projections'],
      ['GET', '/no-such-route'],
      ['POST', '/cluster/snapshot'],
    ]) {
      const r = await request(method, `${url}${p}`);
      expect([p, r.status]).toEqual([p, 401]);
      expect(r.body.error).toBe('unauthorized');
      expect(r.body.message).toContain('Authorization: Bearer <token>');
      expect(r.headers['www-authenticate']).toContain('Bearer');
    }
    const append = await request('POST', `${url}/streams/sec-1/events`, { body: appendBody() });
    expect(append.status).toBe(401);
    expect(append.body.message).toContain('write role');
    expect((await request('GET', `${url}/health`)).status).toBe(200);
    expect((await request('GET', `${url}/ready`)).status).toBe(200);
  });

  it('answers 401 to an unknown token and to a non-bearer Authorization', async () => {
    const r = await request('GET', `${url}/streams/sec-1`, { headers: bearer(unknownToken) });
    expect(r.status).toBe(401);
    expect(r.body.message).toMatch(/^unknown token/);
    const basic = await request('GET', `${url}/streams/sec-1`, { headers: { authorization: 'Basic dTpw' } });
    expect(basic.status).toBe(401);
    const fast = await request('POST', `${url}/streams/sec-1/events`, {
      body: appendBody(),
      headers: bearer(unknownToken),
    });
    expect(fast.status).toBe(401);
  });

  it('lets a read token read and refuses it an append with 403 naming both roles, on both append paths', async () => {
    expect((await request('GET', `${url}/streams/sec-1`, { headers: bearer(tokens.read) })).status).toBe(404);
    // the fast path (plain stream id, application/json, Content-Length) and fastify's route (a query string)
    for (const p of ['/streams/sec-1/events', '/streams/sec-1/events?via=fastify']) {
      const r = await request('POST', `${url}${p}`, { body: appendBody(), headers: bearer(tokens.read) });
      expect([p, r.status]).toEqual([p, 403]);
      expect(r.body).toEqual({
        error: 'forbidden',
        message: 'this request needs the write role; token "reader" has the read role',
        requiredRole: 'write',
        tokenRole: 'read',
      });
      expect(r.headers['x-request-id']).toBeTruthy();
    }
    expect((await request('GET', `${url}/streams/sec-1`, { headers: bearer(tokens.read) })).status).toBe(404);
  });

  it('lets a write token (and an admin token) append, on both paths', async () => {
    for (const [token, p] of [
      [tokens.write, '/streams/sec-1/events'],
      [tokens.write, '/streams/sec-1/events?via=fastify'],
      [tokens.admin, '/streams/sec-1/events'],
    ]) {
      const r = await request('POST', `${url}${p}`, { body: appendBody(), headers: bearer(token) });
      expect([p, r.status, r.text]).toEqual([p, 201, r.text]);
    }
    const read = await request('GET', `${url}/streams/sec-1`, { headers: bearer(tokens.write) });
    expect(read.status).toBe(200);
    expect(read.body.events).toHaveLength(3);
  });

  it('keeps admin routes to admin tokens: 403 to a write token, also through an escaped path', async () => {
    const adminRoutes: [string, string, unknown][] = [
      ['POST', '/cluster/snapshot', undefined],
      ['POST', '/cluster/%73napshot', undefined],
      ['POST', '/cluster/leadership-transfer', {}],
      ['POST', '/cluster/members', { id: 'n9', httpUrl: 'http://127.0.0.1:1', raftAddress: '127.0.0.1:2' }],
      ['DELETE', '/cluster/members/n9', undefined],
      ['POST', '/projections/streams/reset', undefined],
      ['POST', '/projections/%73treams/reset', undefined],
    ];
    for (const [method, p, body] of adminRoutes) {
      const r = await request(method, `${url}${p}`, { body, headers: bearer(tokens.write) });
      expect([method, p, r.status]).toEqual([method, p, 403]);
      expect(r.body.message).toBe('this request needs the admin role; token "writer" has the write role');
    }
    const snap = await request('POST', `${url}/cluster/%73napshot`, { headers: bearer(tokens.admin) });
    expect(snap.status).toBe(200);
    expect((await request('GET', `${url}/cluster`, { headers: bearer(tokens.read) })).status).toBe(200);
  });

  it('needs read for subscriptions (401 without a token) and for /metrics', async () => {
    for (const p of ['/streams/sec-1/subscribe?from=0', '/streams/$all/subscribe?from=0']) {
      const r = await request('GET', `${url}${p}`);
      expect([p, r.status]).toEqual([p, 401]);
    }
    const sse = new SseReader(`${url}/streams/sec-1/subscribe?from=0`, bearer(tokens.read));
    try {
      await sse.opened;
      expect(sse.status).toBe(200);
      await waitFor('three events', () => sse.messages.filter((m) => m.event === null).length >= 3);
    } finally {
      sse.close();
    }
    expect((await request('GET', `${url}/metrics`)).status).toBe(401);
    const metrics = await request('GET', `${url}/metrics`, { headers: bearer(tokens.read) });
    expect(metrics.status).toBe(200);
    expect(metrics.text).toContain('# TYPE');
  });

  it('the client sends its token on requests and subscriptions; without one it gets a 401', async () => {
    const client = new EventStoreClient({ urls: [url], token: tokens.write });
    const anonymous = new EventStoreClient({ urls: [url], retry: { attempts: 1 } });
    try {
      await client.append('sec-client', [{ type: 'ViaClient' }]);
      const sub = client.subscribeStream('sec-client', { from: 0 });
      const it = sub[Symbol.asyncIterator]();
      const first = await it.next();
      expect((first.value as { type: string }[])[0].type).toBe('ViaClient');
      sub.close();
      await expect(anonymous.readStream('sec-client')).rejects.toMatchObject({ status: 401 });
      const denied = anonymous.subscribeStream('sec-client', { from: 0 });
      await expect(denied[Symbol.asyncIterator]().next()).rejects.toBeInstanceOf(InvalidRequestError);
      denied.close();
    } finally {
      client.close();
      anonymous.close();
    }
  });

  it('esctl sends --token / ESCTL_TOKEN: a refused request is exit code 3 with the message', () => {
    const esctl = (args: string[], token?: string) =>
      spawnSync(process.execPath, [esctlMain, '--url', url, ...args], {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', ...(token ? { ESCTL_TOKEN: token } : {}) },
        encoding: 'utf8',
        timeout: 30_000,
      });
    const read = esctl(['read', 'sec-1', '--json'], tokens.read);
    expect(read.status).toBe(0);
    expect(JSON.parse(read.stdout).events).toHaveLength(3);
    const denied = esctl(['append', 'sec-1', 'X', '{}'], tokens.read);
    expect(denied.status).toBe(3);
    expect(denied.stderr).toContain('needs the write role');
    const anonymous = esctl(['read', 'sec-1']);
    expect(anonymous.status).toBe(3);
    expect(anonymous.stderr).toContain('Authorization: Bearer <token>');
    const created = spawnSync(
      process.execPath,
      [esctlMain, 'token', 'create', '--role', 'write', '--name', 'ci', '--json'],
      {
        cwd: repoRoot,
        encoding: 'utf8',
      },
    );
    expect(created.status).toBe(0);
    const doc = JSON.parse(created.stdout);
    expect(doc.line).toBe(tokenLine('ci', 'write', doc.token));
  });

  // Last in this describe: every token above has been sent by now.
  it('never writes a token to the logs (request lines at debug included)', async () => {
    await request('GET', `${url}/streams/sec-1`, {
      headers: { ...bearer(tokens.admin), 'x-request-id': 'sec-last' },
    });
    const lines = await waitFor('the last request logged', () => {
      const l = h.logLines('n1');
      return l.some((x) => x.includes('sec-last')) ? l : undefined;
    });
    const text = lines.join('\n');
    expect(text).toContain('"authorization":"[redacted]"');
    for (const t of [...Object.values(tokens), unknownToken]) expect(text).not.toContain(t);
    expect(text).not.toContain(tokens.admin.slice(4, 20));
  });
});

describe('start-up rules', () => {
  it('a node on a non-loopback HTTP_ADDR without tokens exits with code 2 saying how to configure them', async () => {
    const [httpPort, raftPort] = await freePorts(2);
    const run = spawnSync(process.execPath, [nodeMain], {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? '',
        DATA_DIR: path.join(dir, 'exposed'),
        HTTP_ADDR: `0.0.0.0:${httpPort}`,
        RAFT_ADDR: `127.0.0.1:${raftPort}`,
      },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(
      `TOKENS_FILE: required because HTTP_ADDR 0.0.0.0:${httpPort} is not a loopback address`,
    );
    expect(run.stderr).toContain('esctl token create');
    expect(run.stderr).toContain('AUTH=off');
  });

  it('with AUTH=off it starts there anyway, unauthenticated, and says so', async () => {
    const [httpPort, raftPort] = await freePorts(2);
    const log = path.join(dir, 'auth-off.log');
    const proc = spawnTracked(
      'auth-off',
      [process.execPath, ...nodeRuntime.execArgv, nodeMain],
      {
        ...nodeRuntime.env,
        DATA_DIR: path.join(dir, 'auth-off'),
        HTTP_ADDR: `0.0.0.0:${httpPort}`,
        RAFT_ADDR: `127.0.0.1:${raftPort}`,
        AUTH: 'off',
        RAFT_SEGMENT_BYTES: String(4 * 1024 * 1024),
      },
      log,
    );
    try {
      await waitFor(
        'the AUTH=off node answers',
        async () => {
          if (proc.exited) throw new Error(`exited: ${fs.readFileSync(log, 'utf8')}`);
          return (
            (await request('GET', `http://127.0.0.1:${httpPort}/cluster`).catch(() => null))?.status === 200
          );
        },
        { timeoutMs: 60_000 },
      );
      expect(fs.readFileSync(log, 'utf8')).toContain('AUTH=off');
    } finally {
      await killProc(proc);
    }
  });

  it('a bad tokens file stops start-up with exit code 2 naming the file and the line', async () => {
    const bad = path.join(dir, 'bad-tokens');
    fs.writeFileSync(bad, `${tokenLine('ok', 'read', mintToken())}\nci:write:${mintToken()}\n`);
    const [httpPort, raftPort] = await freePorts(2);
    const run = spawnSync(process.execPath, [nodeMain], {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? '',
        DATA_DIR: path.join(dir, 'bad'),
        HTTP_ADDR: `127.0.0.1:${httpPort}`,
        RAFT_ADDR: `127.0.0.1:${raftPort}`,
        TOKENS_FILE: bad,
      },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`TOKENS_FILE: ${bad} line 2: token "ci": the third field is a token itself`);
  });
});

describe('rate limit', () => {
  let limited: ClusterHarness;
  afterAll(async () => limited?.cleanup());

  it('answers 429 with Retry-After once a token spent its burst, on both append paths; other tokens go on', async () => {
    limited = await ClusterHarness.start({
      nodes: 1,
      env: { TOKENS_FILE: tokensFile, RATE_LIMIT_PER_SEC: '0.2', RATE_LIMIT_BURST: '3' },
      token: tokens.harness,
    });
    await limited.waitForLeader();
    const u = limited.node('n1').url;
    for (let i = 0; i < 3; i++) {
      const r = await request('POST', `${u}/streams/limited/events`, {
        body: appendBody(),
        headers: bearer(tokens.write),
      });
      expect(r.status).toBe(201);
    }
    for (const [method, p] of [
      ['POST', '/streams/limited/events'],
      ['POST', '/streams/limited/events?via=fastify'],
      ['GET', '/streams/limited'],
    ]) {
      const r = await request(method, `${u}${p}`, {
        body: method === 'POST' ? appendBody() : undefined,
        headers: bearer(tokens.write),
      });
      expect([p, r.status]).toEqual([p, 429]);
      expect(r.body.error).toBe('rate_limited');
      expect(r.body.message).toContain('token "writer"');
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    const other = await request('GET', `${u}/streams/limited`, { headers: bearer(tokens.admin) });
    expect(other.status).toBe(200);
    expect(other.body.events).toHaveLength(3);
    expect((await request('GET', `${u}/health`)).status).toBe(200);
  });
});
