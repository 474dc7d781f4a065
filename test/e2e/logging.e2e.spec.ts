import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { waitFor } from '@app/consensus/testing';
import { ClusterHarness, freePorts, nodeMain, repoRoot } from '../support/cluster-harness';
import { request } from '../support/e2e-client';
import { runProjectorExpectingExit } from '../support/projector-harness';

/**
 * The logs of a real node whose stdout is a pipe (not a terminal): one JSON object per line, each naming
 * the node; request lines (LOG_LEVEL=debug) carry the request id a client sent in `x-request-id`, which the
 * response echoes, on the fastify routes and on the append fast path alike; an `authorization` header is
 * never written; a graceful stop's last line gets out before the exit; a bad LOG_FORMAT stops start-up.
 */

jest.setTimeout(120_000);

const secret = 'e2e-sekret-token';
let h: ClusterHarness;

beforeAll(async () => {
  h = await ClusterHarness.start({ nodes: 1, env: { LOG_LEVEL: 'debug' } });
  await h.waitForLeader();
}, 90_000);

afterAll(async () => {
  await h?.cleanup();
});

type Line = Record<string, any>;

/** The node's stdout lines since its latest start, each parsed as JSON (a line that is not fails the test). */
function jsonLines(): Line[] {
  return h
    .logsSinceStart('n1')
    .filter((l) => l.startsWith(' '))
    .map((l) => {
      try {
        return JSON.parse(l.slice(1)) as Line;
      } catch {
        throw new Error(`not a JSON line: ${l}`);
      }
    });
}

async function lineWithReqId(reqId: string): Promise<Line> {
  return waitFor(`a log line with reqId ${reqId}`, async () => jsonLines().find((l) => l.reqId === reqId), {
    timeoutMs: 10_000,
  });
}

it('writes one JSON object per line, each with the node id; the start-up line keeps its text', () => {
  const lines = jsonLines();
  expect(lines.length).toBeGreaterThan(5);
  for (const l of lines) {
    expect(l).toMatchObject({ node: 'n1' });
    expect(typeof l.msg).toBe('string');
    expect(['debug', 'info', 'warn', 'error', 'fatal']).toContain(l.level);
  }
  const started = lines.find((l) => l.msg.includes(' started in '));
  expect(started?.msg).toMatch(/^node n1 started in \d+ ms: modules \d+, raft-storage \d+, event-store \d+/);
  // Nest's route map is there at debug only (so not at the default level, info).
  const mapped = lines.filter((l) => l.msg.startsWith('Mapped {'));
  expect(mapped.length).toBeGreaterThan(5);
  for (const l of mapped) expect(l.level).toBe('debug');
});

it("logs a request with the client's x-request-id, echoes it, and never writes the authorization header", async () => {
  const url = h.node('n1').url;
  const read = await request('GET', `${url}/streams/log-e2e?consistency=local`, {
    headers: { 'x-request-id': 'e2e-read-1', authorization: `Bearer ${secret}` },
  });
  expect(read.status).toBe(404);
  expect(read.headers['x-request-id']).toBe('e2e-read-1');
  const readLine = await lineWithReqId('e2e-read-1');
  expect(readLine).toMatchObject({
    level: 'debug',
    node: 'n1',
    req: { method: 'GET', url: '/streams/log-e2e?consistency=local' },
    res: { statusCode: 404 },
  });
  expect(readLine.req.headers.authorization).toBe('[redacted]');

  // POST /streams/{id}/events takes the append fast path (not fastify): the same id handling.
  const append = await request('POST', `${url}/streams/log-e2e/events`, {
    headers: { 'x-request-id': 'e2e-append-1', authorization: `Bearer ${secret}` },
    body: { events: [{ type: 'Logged', data: { secret: 'e2e-body-secret' } }] },
  });
  expect(append.status).toBe(201);
  expect(append.headers['x-request-id']).toBe('e2e-append-1');
  const appendLine = await lineWithReqId('e2e-append-1');
  expect(appendLine).toMatchObject({
    level: 'debug',
    req: { method: 'POST', url: '/streams/log-e2e/events' },
    res: { statusCode: 201 },
  });
  expect(appendLine.req.headers.authorization).toBe('[redacted]');

  // Without the header the node makes an id up, and still sends it back.
  const health = await request('GET', `${url}/health`);
  const made = health.headers['x-request-id'];
  expect(made).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
  expect((await lineWithReqId(made)).req.url).toBe('/health');

  const all = h.logLines('n1').join('\n');
  expect(all).not.toContain(secret);
  expect(all).not.toContain('e2e-body-secret');
});

it('a graceful stop (SIGTERM) still writes its last lines, JSON and pretty alike', async () => {
  expect(await h.stop('n1')).toBe(0);
  expect(jsonLines().at(-1)).toMatchObject({ node: 'n1', context: 'main', msg: 'stopped' });

  await h.restart('n1', { LOG_FORMAT: 'pretty', LOG_LEVEL: 'info' });
  expect(await h.stop('n1')).toBe(0);
  const out = h.logsSinceStart('n1').filter((l) => l.startsWith(' '));
  expect(out.some((l) => l.includes(' started in '))).toBe(true);
  expect(out.some((l) => l.includes('Mapped {'))).toBe(false);
  expect(out.at(-1)).toMatch(/INFO.*n1 main: stopped$/);
  expect(() => JSON.parse(out.at(-1)!.slice(1))).toThrow();
});

it('LOG_FORMAT other than json or pretty stops the node and the projector, naming LOG_FORMAT', async () => {
  // Its own ports and data directory: were the setting accepted, the node would start and run.
  const [httpPort, raftPort] = await freePorts(2);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'log-format-'));
  try {
    const node = spawnSync(process.execPath, [nodeMain], {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? '',
        LOG_FORMAT: 'bogus',
        DATA_DIR: dataDir,
        HTTP_ADDR: `127.0.0.1:${httpPort}`,
        RAFT_ADDR: `127.0.0.1:${raftPort}`,
      },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(node.status).toBe(2);
    expect(node.stderr).toContain('LOG_FORMAT');
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }

  const projector = await runProjectorExpectingExit({ LOG_FORMAT: 'bogus' }, [], 20_000);
  expect(projector.code).toBe(2);
  expect(projector.stderr).toContain('LOG_FORMAT');
});
