import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { EventStoreClient } from '@app/client';
import { mintToken, tokenLine } from '@app/config';
import { makeTestCertificates, TestCertificates, waitFor } from '@app/consensus/testing';
import { ClusterHarness, freePorts, nodeMain, repoRoot } from '../support/cluster-harness';
import { request, requestTls } from '../support/e2e-client';

/**
 * TLS on a real 3-node cluster (a test CA and a certificate for 127.0.0.1 made with openssl): the nodes
 * elect and commit with Raft over TLS (the cluster secret still checked), serve HTTPS to a client that trusts
 * the CA and sends a token, and refuse plain HTTP and plain TCP; a missing certificate file stops start-up
 * with exit code 2 naming the setting and the file.
 */

jest.setTimeout(180_000);

const writeToken = mintToken();
const readToken = mintToken();
let dir: string;
let certs: TestCertificates;
let h: ClusterHarness;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'es-tls-'));
  certs = makeTestCertificates(path.join(dir, 'certs'));
  const tokensFile = path.join(dir, 'tokens');
  fs.writeFileSync(
    tokensFile,
    `${tokenLine('writer', 'write', writeToken)}\n${tokenLine('reader', 'read', readToken)}\n`,
  );
  h = await ClusterHarness.start({
    nodes: 3,
    env: { TOKENS_FILE: tokensFile, CLUSTER_SECRET: 'tls-e2e-secret' },
    token: readToken,
    tls: { certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.caFile, ca: certs.ca },
  });
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

it('elects a leader over Raft with TLS and commits appends made over HTTPS with a token', async () => {
  await h.waitForLeader();
  for (const n of h.all()) {
    expect(n.url).toMatch(/^https:\/\//);
    const lines = h.logLines(n.id).join('\n');
    expect(lines).toMatch(/listening for Raft peers on \S+ \(TLS\)/);
    expect(lines).toContain(`serving HTTPS on ${n.url}`);
  }
  const client = new EventStoreClient({ urls: h.urls(), token: writeToken, tls: { ca: certs.ca } });
  try {
    const sub = client.subscribeStream('tls-1', { from: 0 });
    for (let i = 0; i < 5; i++) await client.append('tls-1', [{ type: 'OverTls', data: { i } }]);
    const got: number[] = [];
    for await (const batch of sub) {
      got.push(...batch.map((e) => e.revision));
      if (got.length >= 5) break;
    }
    sub.close();
    expect(got).toEqual([0, 1, 2, 3, 4]);
    const leader = await h.waitForLeader();
    await h.waitForApplied((await h.clusterView(leader.id))!.commitIndex);
    for (const n of h.all()) {
      const r = await requestTls('GET', `${n.url}/streams/tls-1?consistency=local`, {
        ca: certs.ca,
        headers: { authorization: `Bearer ${readToken}` },
      });
      expect([n.id, r.status]).toEqual([n.id, 200]);
      expect(r.body.events).toHaveLength(5);
    }
  } finally {
    client.close();
  }
});

it('refuses plain HTTP, and HTTPS from a client that does not trust the CA', async () => {
  const n = h.node('n1');
  const plainUrl = n.url.replace('https://', 'http://');
  await expect(request('GET', `${plainUrl}/health`, { timeoutMs: 5000 })).rejects.toThrow();
  await expect(requestTls('GET', `${n.url}/health`, { timeoutMs: 5000 })).rejects.toThrow(
    /self[- ]signed|unable to verify|certificate/i,
  );
  const ok = await requestTls('GET', `${n.url}/health`, { ca: certs.ca });
  expect(ok.status).toBe(200);
  const noToken = await requestTls('GET', `${n.url}/cluster`, { ca: certs.ca });
  expect(noToken.status).toBe(401);
});

it('speaks TLS on the Raft port: a TLS client trusting the CA gets the handshake, a plain one nothing', async () => {
  const [host, port] = h.node('n2').raftAddress.split(':');
  const secure = tls.connect({ host, port: Number(port), ca: certs.ca });
  try {
    const hello = await new Promise<Buffer>((resolve, reject) => {
      secure.once('data', resolve);
      secure.once('error', reject);
    });
    expect(hello.length).toBeGreaterThan(0);
  } finally {
    secure.destroy();
  }
  const plain = net.connect({ host, port: Number(port) });
  try {
    const got: Buffer[] = [];
    plain.on('data', (c: Buffer) => got.push(c));
    plain.on('error', () => undefined);
    await new Promise<void>((resolve) => plain.once('connect', () => resolve()));
    plain.write('not a TLS client hello\r\n\r\n');
    await waitFor('the plain connection closed', () => plain.destroyed || plain.readableEnded, {
      timeoutMs: 10_000,
    });
    // whatever came back is a TLS alert, never the transport's Hello frame (kind 1 after a 4-byte length)
    const bytes = Buffer.concat(got);
    if (bytes.length > 0) expect(bytes[0]).toBe(0x15);
  } finally {
    plain.destroy();
  }
});

it('a missing certificate file stops start-up with exit code 2 naming the setting and the file', async () => {
  const [httpPort, raftPort] = await freePorts(2);
  const missing = path.join(dir, 'no-such-cert.pem');
  const run = spawnSync(process.execPath, [nodeMain], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? '',
      DATA_DIR: path.join(dir, 'bad'),
      HTTP_ADDR: `127.0.0.1:${httpPort}`,
      RAFT_ADDR: `127.0.0.1:${raftPort}`,
      TLS_CERT_FILE: missing,
      TLS_KEY_FILE: certs.keyFile,
    },
    encoding: 'utf8',
    timeout: 20_000,
  });
  expect(run.status).toBe(2);
  expect(run.stderr).toContain(`TLS_CERT_FILE: cannot read ${missing}: ENOENT`);
});
