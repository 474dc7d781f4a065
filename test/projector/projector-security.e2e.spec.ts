/**
 * The projector's own HTTP API takes the nodes' scheme (TOKENS_FILE / API_TOKENS, @app/config's access
 * control): its probes are open, every other GET needs read, a rebuild needs admin; 401 without a token or
 * with an unknown one, 403 for a read token on a rebuild; esctl's read-models commands send --token. Off
 * loopback it refuses to start without tokens (exit code 2) unless AUTH=off.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EventStoreClient } from '@app/client';
import { mintToken, tokenLine } from '@app/config';
import { waitFor } from '@app/consensus/testing';
import { ClusterHarness, freePorts, repoRoot } from '../support/cluster-harness';
import { request } from '../support/e2e-client';
import { createTestDatabase, TestDatabase } from '../support/pg-database';
import { ProjectorProcess } from '../support/projector-harness';
import { stableEnv } from '../support/workload';
import { projectorEnv, storeClient } from './projector-support';

jest.setTimeout(180_000);

const tokens = { read: mintToken(), admin: mintToken() };
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const esctlMain = path.join(repoRoot, 'dist', 'apps', 'esctl', 'src', 'main.js');

let dir: string;
let h: ClusterHarness;
let client: EventStoreClient;
let db: TestDatabase;
let p: ProjectorProcess;
const others: ProjectorProcess[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'projector-security-'));
  const tokensFile = path.join(dir, 'tokens');
  fs.writeFileSync(
    tokensFile,
    `${tokenLine('reader', 'read', tokens.read)}\n${tokenLine('operator', 'admin', tokens.admin)}\n`,
  );
  h = await ClusterHarness.start({ nodes: 1, env: { ...stableEnv } });
  await h.waitForLeader();
  client = storeClient(h);
  await client.append('order-1', [{ type: 'OrderPlaced', data: { customerId: 'ada' } }]);
  db = await createTestDatabase('proj_security');
  p = await ProjectorProcess.start({
    name: 'projector-security',
    env: projectorEnv(h, db.url, { TOKENS_FILE: tokensFile, LOG_LEVEL: 'debug' }),
  });
  // /ready needs no token: the harness polls it without one.
  await p.waitReady(90_000);
}, 150_000);

afterAll(async () => {
  for (const o of others) await o.destroy().catch(() => undefined);
  await p?.destroy().catch(() => undefined);
  client?.close();
  await h?.cleanup();
  await db?.drop().catch(() => undefined);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('a projector with tokens', () => {
  it('answers /health and /ready without a token', async () => {
    expect((await request('GET', `${p.url}/health`)).status).toBe(200);
    expect((await request('GET', `${p.url}/ready`)).status).toBe(200);
  });

  it('answers 401 without a token on every other route (unknown ones too), saying how to send one', async () => {
    for (const [method, route] of [
      ['GET', '/status'],
      ['GET', '/metrics'],
      ['GET', '/read-models'],
      ['GET', '/read-models/orders'],
      ['GET', '/read-models/orders/1'],
      ['POST', '/read-models/orders/rebuild'],
      ['GET', '/no-such-route'],
    ]) {
      const r = await request(method, `${p.url}${route}`);
      expect([method, route, r.status]).toEqual([method, route, 401]);
      expect(r.headers['www-authenticate']).toBe('Bearer realm="projector"');
      expect(r.body).toMatchObject({ error: 'unauthorized' });
      expect((r.body as { message: string }).message).toContain('Authorization: Bearer <token>');
    }
    const unknown = await request('GET', `${p.url}/read-models`, { headers: bearer(mintToken()) });
    expect(unknown.status).toBe(401);
    expect((unknown.body as { message: string }).message).toMatch(/^unknown token/);
  });

  it('lets a read token read, and refuses it a rebuild with 403 naming both roles', async () => {
    for (const route of ['/status', '/metrics', '/read-models', '/read-models/orders?limit=5']) {
      const r = await request('GET', `${p.url}${route}`, { headers: bearer(tokens.read) });
      expect([route, r.status]).toEqual([route, 200]);
    }
    // (the harness's status() sends no token: poll the row with one instead)
    const row = await waitFor(
      'order 1 in the orders read model',
      async () => {
        const r = await request('GET', `${p.url}/read-models/orders/1`, { headers: bearer(tokens.read) });
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    expect(row.body).toMatchObject({ customerId: 'ada' });
    const r = await request('POST', `${p.url}/read-models/orders/rebuild`, { headers: bearer(tokens.read) });
    expect(r.status).toBe(403);
    expect(r.body).toEqual({
      error: 'forbidden',
      message: 'this request needs the admin role; token "reader" has the read role',
      requiredRole: 'admin',
      tokenRole: 'read',
    });
  });

  it('lets an admin token rebuild (202)', async () => {
    const r = await request('POST', `${p.url}/read-models/stream_summaries/rebuild`, {
      headers: bearer(tokens.admin),
    });
    expect(r.status).toBe(202);
  });

  it('esctl read-models sends --token: a read token lists, a rebuild with it is refused (exit code 3)', () => {
    const esctl = (args: string[], token?: string) =>
      spawnSync(process.execPath, [esctlMain, ...args, '--projector-url', p.url, '--url', h.urls()[0]], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '', ...(token ? { ESCTL_TOKEN: token } : {}) },
        timeout: 30_000,
      });
    const list = esctl(['read-models', 'list', '--json'], tokens.read);
    expect(list.status).toBe(0);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((m) => m.name)).toContain('orders');
    const anonymous = esctl(['read-models', 'list']);
    expect(anonymous.status).toBe(3);
    expect(anonymous.stderr).toContain('Authorization: Bearer <token>');
    const denied = esctl(['read-models', 'rebuild', 'orders', '--no-wait'], tokens.read);
    expect(denied.status).toBe(3);
    expect(denied.stderr).toContain('needs the admin role');
  });

  it('never writes a token to its logs', () => {
    const text = p.logs.join('\n');
    for (const t of Object.values(tokens)) expect(text).not.toContain(t);
  });
});

describe("the projector's start-up rules", () => {
  it('off loopback without tokens it exits with code 2 saying how to configure them', async () => {
    const [port] = await freePorts(1);
    const o = await ProjectorProcess.start({
      name: 'projector-exposed',
      env: projectorEnv(h, db.url, { PROJECTOR_HTTP_ADDR: `0.0.0.0:${port}` }),
    });
    others.push(o);
    expect(await o.waitExit(30_000)).toBe(2);
    const text = o.logs.join('\n');
    expect(text).toContain(
      `projector: bad configuration: TOKENS_FILE: required because PROJECTOR_HTTP_ADDR 0.0.0.0:${port} is not a loopback address`,
    );
    expect(text).toContain('esctl token create');
    expect(text).toContain('AUTH=off');
  });

  it('with AUTH=off it starts there anyway, unauthenticated, and says so', async () => {
    const [port] = await freePorts(1);
    const o = await ProjectorProcess.start({
      name: 'projector-auth-off',
      env: projectorEnv(h, db.url, {
        PROJECTOR_HTTP_ADDR: `0.0.0.0:${port}`,
        AUTH: 'off',
        PROJECTOR_SCHEMA: 'projector_off',
      }),
    });
    others.push(o);
    await o.waitHealthy(60_000);
    expect((await request('GET', `http://127.0.0.1:${port}/read-models`)).status).toBe(200);
    expect(o.logs.join('\n')).toContain('AUTH=off');
  });
});
