import { randomUUID } from 'node:crypto';
import { Prng } from '@app/consensus/testing';
import { ClusterHarness } from '../support/cluster-harness';
import { E2EClient, event, request } from '../support/e2e-client';
import { convergedAll, rawRequest, stableEnv } from '../support/workload';

/**
 * Seeded fuzzing of the HTTP input: random and malformed JSON, huge and odd stream ids, wrong types,
 * oversized bodies, unicode, broken HTTP on raw sockets. Every answer is a 4xx (or 2xx when the random
 * input happens to be valid) — 307/503/504 are what leadership changes under load legitimately answer
 * and are allowed; a 500 or a crashed node fails. The data written before the run is unchanged after.
 */

jest.setTimeout(300_000);

const seed = Number(process.env.FUZZ_SEED ?? 20_261_123);
const requestsPerRun = 300;
const MiB = 1024 * 1024;

let h: ClusterHarness;
let client: E2EClient;

beforeAll(async () => {
  h = await ClusterHarness.start({ nodes: 3, env: stableEnv });
  client = new E2EClient(() => h.urls());
  await h.waitForLeader();
}, 180_000);

afterAll(async () => {
  await h?.cleanup();
});

const allowedTransient = new Set([307, 503, 504]);

function acceptable(status: number): boolean {
  return (status >= 200 && status < 300) || (status >= 400 && status < 500) || allowedTransient.has(status);
}

function generators(rnd: () => number) {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
  const int = (n: number) => Math.floor(rnd() * n);
  const oddChars = [
    'é',
    '日本',
    '🙂',
    '\u0000',
    '\u202e',
    '%',
    '%2F',
    '..',
    '/',
    '?',
    '#',
    ' ',
    '"',
    "'",
    '<',
    '\\',
    '$',
    '\ud800',
  ];
  /** encodeURIComponent, except that a lone surrogate becomes its (invalid) UTF-8 bytes instead of throwing. */
  const enc = (x: string) => {
    try {
      return encodeURIComponent(x);
    } catch {
      return 'lone-%ED%A0%80';
    }
  };
  const randomString = (max: number) =>
    Array.from({ length: int(max) }, () =>
      rnd() < 0.3 ? pick(oddChars) : String.fromCharCode(32 + int(95)),
    ).join('');
  const streamId = () =>
    pick([
      () => `fuzz-${int(1e6)}`,
      () => 'x'.repeat(pick([255, 256, 257, 1000, 5000])),
      () => randomString(40),
      () => '$all',
      () => '$system',
      () => '',
      () => 'a'.repeat(int(300)) + pick(oddChars),
    ])();
  const jsonValue = (depth: number): unknown => {
    const kinds = depth > 3 ? 5 : 7;
    switch (int(kinds)) {
      case 0:
        return null;
      case 1:
        return rnd() < 0.5;
      case 2:
        return pick([0, -1, 1.5, 1e308, -0, 2 ** 53, 4096, 4097]);
      case 3:
        return randomString(20);
      case 4:
        return pick(['any', 'no_stream', 'stream_exists', 'ANY', '']);
      case 5:
        return Array.from({ length: int(4) }, () => jsonValue(depth + 1));
      default:
        return Object.fromEntries(
          Array.from({ length: int(4) }, () => [
            pick([
              'type',
              'id',
              'data',
              'events',
              'expectedRevision',
              '__proto__',
              'constructor',
              randomString(8),
            ]),
            jsonValue(depth + 1),
          ]),
        );
    }
  };
  const body = (): { raw?: string; json?: unknown; contentType?: string } =>
    pick([
      () => ({ json: jsonValue(0) }),
      () => ({ json: { events: jsonValue(1), expectedRevision: jsonValue(2) } }),
      () => ({
        json: {
          events: [{ type: jsonValue(2), id: jsonValue(2), data: jsonValue(1), metadata: jsonValue(1) }],
        },
      }),
      () => ({ json: { events: [{ type: 'T', id: randomString(36) }] } }),
      () => ({ raw: '{"events":[{"type":"A"' }),
      () => ({ raw: '{"__proto__":{"polluted":true},"events":[{"type":"A"}]}' }),
      () => ({ raw: '\u0000\u0001\u0002' }),
      () => ({ raw: '['.repeat(int(5000)) }),
      () => ({
        raw: JSON.stringify({ events: [{ type: 'A' }] }),
        contentType: pick([
          'text/plain',
          'application/xml',
          'multipart/form-data',
          'application/json; charset=latin1',
          '',
        ]),
      }),
      () => ({ raw: '' }),
    ])();
  const query = () =>
    pick([
      '',
      `?from=${pick(['-1', 'abc', '1e3', '99999999999999999999', '0'])}`,
      `?limit=${pick(['0', '4097', 'x', '10'])}`,
      `?direction=${randomString(6)}`,
      `?consistency=${pick(['local', 'linearizable', 'weird'])}`,
      `?types=${'a,'.repeat(int(200))}`,
      `?streamPrefix=${enc(randomString(300))}`,
      '?from=1&from=2',
    ]);
  return { pick, int, streamId, body, query, randomString, enc };
}

it(`answers random and malformed requests with 4xx only (seed ${seed}), stays up, keeps its data`, async () => {
  const keep = `keep-${randomUUID()}`;
  await client.appendOk(keep, { events: [event('Kept', { n: 1 }), event('Kept', { n: 2 })] });
  const before = await convergedAll(h, client);

  const rnd = new Prng(seed).asFunction();
  const g = generators(rnd);
  const failures: string[] = [];
  const statuses: Record<number, number> = {};
  for (let i = 0; i < requestsPerRun; i++) {
    const node = g.pick(h.running());
    const id = g.streamId();
    const encodedStream = rnd() < 0.8 ? g.enc(id) : id.replace(/[?#]/g, '');
    const kind = g.int(6);
    const method = ['POST', 'GET', 'GET', 'POST', 'DELETE', 'PUT'][kind];
    const path =
      g.pick([
        `/streams/${encodedStream}/events`,
        `/streams/${encodedStream}`,
        `/projections/${encodedStream}`,
        `/projections/streams/${encodedStream}`,
        '/cluster/members',
        `/cluster/members/${encodedStream}`,
      ]) + g.query();
    const b = method === 'GET' || method === 'DELETE' ? {} : g.body();
    const headers: Record<string, string> = {};
    let rawBody: string | undefined;
    if (b.json !== undefined) {
      rawBody = JSON.stringify(b.json);
      headers['content-type'] = 'application/json';
    } else if (b.raw !== undefined) {
      rawBody = b.raw;
      if (b.contentType !== '') headers['content-type'] = b.contentType ?? 'application/json';
    }
    let status: number;
    try {
      status = (await request(method, `${node.url}${path}`, { rawBody, headers, timeoutMs: 30_000 })).status;
    } catch (err) {
      // The client refused to build the URL (lone surrogates etc.) or the socket broke: the node must be up.
      const health = await request('GET', `${node.url}/health`).catch(() => null);
      if (health?.status !== 200)
        failures.push(`#${i} ${method} ${path.slice(0, 80)}: ${(err as Error).message} and the node is down`);
      continue;
    }
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (!acceptable(status))
      failures.push(`#${i} ${method} ${path.slice(0, 120)} ${rawBody?.slice(0, 120)} → ${status}`);
  }
  expect(failures).toEqual([]);
  process.stderr.write(`http-fuzz seed ${seed}: statuses ${JSON.stringify(statuses)}\n`);
  expect(statuses[400] ?? 0).toBeGreaterThan(requestsPerRun / 10); // the inputs really are rejected as invalid

  // Oversized bodies, declared and chunked, and broken HTTP on raw sockets.
  const target = h.running()[0];
  const declared = await rawRequest(
    target.httpPort,
    `POST /streams/big/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${64 * MiB}\r\n\r\n`,
  );
  expect(declared.status).toBe(413);
  const chunk = Buffer.from('x'.repeat(MiB));
  const chunks: Buffer[] = [
    Buffer.from(
      'POST /streams/big/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
    ),
  ];
  for (let i = 0; i < 6; i++)
    chunks.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'));
  const chunked = await rawRequest(target.httpPort, Buffer.concat(chunks), 10_000);
  expect([413, null]).toContain(chunked.status); // 413, or the connection is cut once over the limit
  for (const junk of [
    'GARBAGE\r\n\r\n',
    'GET / HTTP/9.9\r\n\r\n',
    'GET /health HTTP/1.1\r\nHost: x\r\nX: ' + 'a'.repeat(100_000) + '\r\n\r\n',
    '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03',
    'POST /streams/a/events HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"ev',
  ]) {
    const r = await rawRequest(target.httpPort, junk, 3000);
    if (r.status !== null) expect(r.status).toBeGreaterThanOrEqual(400);
    if (r.status !== null) expect(r.status).toBeLessThan(500);
  }

  // Every node is still up, and the data written before the run is unchanged.
  for (const n of h.nodes.values()) {
    expect(n.state).toBe('running');
    expect((await request('GET', `${n.url}/health`)).status).toBe(200);
  }
  const after = await convergedAll(h, client);
  expect(after.slice(0, before.length)).toEqual(before);
  const kept = await client.readStreamFrom(h.running()[0].url, keep, 'linearizable');
  expect(kept!.map((e) => e.data)).toEqual([{ n: 1 }, { n: 2 }]);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
});
