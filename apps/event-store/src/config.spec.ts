import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hashToken } from '@app/config';
import { makeTestCertificates, TestCertificates } from '@app/consensus/testing';
import { ConfigError, loadConfig, parseInitialCluster } from './config';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error(`no ConfigError for ${JSON.stringify(env)}`);
}

describe('node configuration (API.md "Running a node")', () => {
  it('defaults to a single node n1 on 127.0.0.1:2113 / :2114 with data in ./data/n1', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      nodeId: 'n1',
      dataDir: './data/n1',
      httpHost: '127.0.0.1',
      httpPort: 2113,
      raftAddr: '127.0.0.1:2114',
      httpUrl: 'http://127.0.0.1:2113',
    });
    expect(c.initialCluster).toEqual({
      voters: ['n1'],
      outgoing: [],
      learners: [],
      addresses: { n1: { raftAddress: '127.0.0.1:2114', httpUrl: 'http://127.0.0.1:2113' } },
    });
    expect(c).toMatchObject({
      tickMs: 50,
      electionTicks: 10,
      snapshotEveryEntries: 100_000,
      snapshotKeepEntries: 10_000,
      proposalTimeoutMs: 5000,
      repair: null,
    });
  });

  it('DATA_DIR defaults to ./data/<NODE_ID>', () => {
    expect(loadConfig({ NODE_ID: 'n7' }).dataDir).toBe('./data/n7');
  });

  it("parses INITIAL_CLUSTER and takes this node's advertised URL from it", () => {
    const c = loadConfig({
      NODE_ID: 'n2',
      INITIAL_CLUSTER: 'n1=127.0.0.1:7101/http://127.0.0.1:7001,n2=127.0.0.1:7102/http://127.0.0.1:7002',
    });
    expect(c.initialCluster?.voters).toEqual(['n1', 'n2']);
    expect(c.initialCluster?.addresses.n1).toEqual({
      raftAddress: '127.0.0.1:7101',
      httpUrl: 'http://127.0.0.1:7001',
    });
    expect(c.httpUrl).toBe('http://127.0.0.1:7002');
  });

  it('is in join mode when INITIAL_CLUSTER is set empty or does not name this node', () => {
    expect(loadConfig({ INITIAL_CLUSTER: '' }).initialCluster).toBeNull();
    expect(
      loadConfig({ NODE_ID: 'n4', INITIAL_CLUSTER: 'n1=127.0.0.1:7101/http://127.0.0.1:7001' })
        .initialCluster,
    ).toBeNull();
  });

  it('requires CLUSTER_SECRET when RAFT_ADDR is not loopback', () => {
    expect(() => loadConfig({ RAFT_ADDR: '0.0.0.0:2114' })).toThrow(/CLUSTER_SECRET/);
    expect(loadConfig({ RAFT_ADDR: '0.0.0.0:2114', CLUSTER_SECRET: 's3cret' }).clusterSecret).toBe('s3cret');
    expect(loadConfig({ RAFT_ADDR: 'localhost:2114' }).clusterSecret).toBeNull();
  });

  it.each([
    ['HTTP_ADDR', { HTTP_ADDR: 'nope' }],
    ['RAFT_ADDR', { RAFT_ADDR: '127.0.0.1:99999' }],
    ['NODE_ID', { NODE_ID: 'bad id!' }],
    ['TICK_MS', { TICK_MS: 'fast' }],
    ['LOG_LEVEL', { LOG_LEVEL: 'loud' }],
    ['LOG_FORMAT', { LOG_FORMAT: 'bogus' }],
    ['INITIAL_CLUSTER', { INITIAL_CLUSTER: 'n1=127.0.0.1:7101' }],
  ])('names the bad variable %s', (variable, env) => {
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as Error).message).toContain(variable);
  });

  it('LOG_FORMAT is json or pretty; unset leaves it to whether stdout is a terminal', () => {
    expect(loadConfig({}).logFormat).toBeNull();
    expect(loadConfig({ LOG_FORMAT: 'json' }).logFormat).toBe('json');
    expect(loadConfig({}, ['--log-format', 'pretty']).logFormat).toBe('pretty');
  });

  it('accepts --kebab-case flags, which win over the environment', () => {
    const c = loadConfig({ NODE_ID: 'n1' }, [
      '--node-id',
      'n3',
      '--http-addr=127.0.0.1:9000',
      '--repair=discard-and-rejoin',
    ]);
    expect(c).toMatchObject({ nodeId: 'n3', httpPort: 9000, repair: 'discard-and-rejoin' });
    expect(() => loadConfig({ REPAIR: 'yes' })).toThrow(/REPAIR/);
    expect(() => loadConfig({}, ['--nope'])).toThrow(ConfigError);
  });

  it('rejects a duplicated id in INITIAL_CLUSTER', () => {
    expect(() => parseInitialCluster('n1=127.0.0.1:1/http://a:1,n1=127.0.0.1:2/http://a:2')).toThrow(/twice/);
  });
});

describe('node configuration: tokens, TLS, rate limit', () => {
  let dir: string;
  let certs: TestCertificates;
  const line = (name: string, role: string, token: string) =>
    `${name}:${role}:${hashToken(token).toString('hex')}`;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'es-config-'));
    certs = makeTestCertificates(path.join(dir, 'certs'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };

  it('no tokens on loopback: requests are not checked (as before)', () => {
    expect(loadConfig({})).toMatchObject({
      auth: null,
      authOff: false,
      tls: null,
      raftTls: false,
      rateLimit: null,
    });
  });

  it('refuses a non-loopback HTTP_ADDR without tokens, saying how to configure them; AUTH=off allows it', () => {
    const err = configError({ HTTP_ADDR: '0.0.0.0:2113' });
    expect(err.variable).toBe('TOKENS_FILE');
    expect(err.message).toContain('HTTP_ADDR 0.0.0.0:2113 is not a loopback address');
    expect(err.message).toContain('esctl token create');
    expect(err.message).toContain('AUTH=off');
    expect(configError({ HTTP_ADDR: '10.1.2.3:2113' }).variable).toBe('TOKENS_FILE');
    expect(loadConfig({ HTTP_ADDR: '0.0.0.0:2113', AUTH: 'off' })).toMatchObject({
      auth: null,
      authOff: true,
    });
    expect(loadConfig({ HTTP_ADDR: 'localhost:2113' }).auth).toBeNull();
    expect(loadConfig({ HTTP_ADDR: '[::1]:2113' }).auth).toBeNull();
    expect(configError({ AUTH: 'on' }).variable).toBe('TOKENS_FILE');
    expect(configError({ AUTH: 'maybe' }).variable).toBe('AUTH');
  });

  it('reads TOKENS_FILE and API_TOKENS together', () => {
    const f = file('tokens', `# ops\n${line('ci', 'write', 't1')}\n${line('ops', 'admin', 't2')}\n`);
    const c = loadConfig({
      HTTP_ADDR: '0.0.0.0:2113',
      TOKENS_FILE: f,
      API_TOKENS: line('graf', 'read', 't3'),
    });
    expect(c.auth?.tokens.map((t) => `${t.name}:${t.role}`)).toEqual(['ci:write', 'ops:admin', 'graf:read']);
    expect(configError({ TOKENS_FILE: f, API_TOKENS: line('ci', 'read', 't4') }).message).toContain(
      'token name "ci" is also in TOKENS_FILE',
    );
  });

  it('names the tokens file and the line of a bad entry; a missing file by its path', () => {
    const f = file('bad-tokens', `${line('ci', 'write', 't1')}\n\nci:superuser:${'0'.repeat(64)}\n`);
    const err = configError({ TOKENS_FILE: f });
    expect(err.variable).toBe('TOKENS_FILE');
    expect(err.message).toBe(
      `TOKENS_FILE: ${f} line 3: token "ci": unknown role "superuser"; expected read, write or admin`,
    );
    expect(configError({ API_TOKENS: 'ci:read' }).message).toMatch(
      /^API_TOKENS: entry 1: expected name:role/,
    );
    const missing = path.join(dir, 'nope');
    expect(configError({ TOKENS_FILE: missing }).message).toBe(`TOKENS_FILE: cannot read ${missing}: ENOENT`);
  });

  it('TLS: reads and checks the files; https in the node URL; Raft TLS on unless RAFT_TLS=off', () => {
    const c = loadConfig({
      TLS_CERT_FILE: certs.certFile,
      TLS_KEY_FILE: certs.keyFile,
      TLS_CA_FILE: certs.caFile,
    });
    expect(c.tls?.cert.toString()).toContain('BEGIN CERTIFICATE');
    expect(c.tls?.ca?.toString()).toContain('BEGIN CERTIFICATE');
    expect(c.httpUrl).toBe('https://127.0.0.1:2113');
    expect(c.raftTls).toBe(true);
    expect(
      loadConfig({ TLS_CERT_FILE: certs.certFile, TLS_KEY_FILE: certs.keyFile, RAFT_TLS: 'off' }).raftTls,
    ).toBe(false);
    expect(configError({ RAFT_TLS: 'on' }).variable).toBe('RAFT_TLS');
    expect(
      configError({
        TLS_CERT_FILE: certs.certFile,
        TLS_KEY_FILE: certs.keyFile,
        INITIAL_CLUSTER: 'n1=127.0.0.1:2114/http://127.0.0.1:2113',
      }).message,
    ).toContain("gives n1's URL as http://127.0.0.1:2113, but this node serves HTTPS");
  });

  it.each([
    [
      'TLS_CERT_FILE',
      'cannot read',
      () => ({ TLS_CERT_FILE: path.join(dir, 'none.pem'), TLS_KEY_FILE: certs.keyFile }),
    ],
    [
      'TLS_KEY_FILE',
      'cannot read',
      () => ({ TLS_CERT_FILE: certs.certFile, TLS_KEY_FILE: path.join(dir, 'none.key') }),
    ],
    [
      'TLS_CERT_FILE',
      'holds no PEM certificate',
      () => ({ TLS_CERT_FILE: certs.keyFile, TLS_KEY_FILE: certs.keyFile }),
    ],
    [
      'TLS_KEY_FILE',
      'not an unencrypted PEM private key',
      () => ({ TLS_CERT_FILE: certs.certFile, TLS_KEY_FILE: certs.certFile }),
    ],
    [
      'TLS_KEY_FILE',
      'is not the private key of',
      () => ({ TLS_CERT_FILE: certs.caFile, TLS_KEY_FILE: certs.keyFile }),
    ],
    [
      'TLS_CA_FILE',
      'holds no PEM certificate',
      () => ({ TLS_CERT_FILE: certs.certFile, TLS_KEY_FILE: certs.keyFile, TLS_CA_FILE: certs.keyFile }),
    ],
    ['TLS_KEY_FILE', 'required with TLS_CERT_FILE', () => ({ TLS_CERT_FILE: certs.certFile })],
    ['TLS_CERT_FILE', 'required with TLS_KEY_FILE', () => ({ TLS_KEY_FILE: certs.keyFile })],
    ['TLS_CA_FILE', 'set only with TLS_CERT_FILE', () => ({ TLS_CA_FILE: certs.caFile })],
  ])('a bad TLS setting names %s: %s', (variable, text, env) => {
    const err = configError(env());
    expect(err.variable).toBe(variable);
    expect(err.message).toContain(text);
  });

  it('RATE_LIMIT_PER_SEC turns on a token bucket (burst: one second of requests unless set)', () => {
    expect(loadConfig({ RATE_LIMIT_PER_SEC: '50' }).rateLimit).toEqual({ perSec: 50, burst: 50 });
    expect(loadConfig({ RATE_LIMIT_PER_SEC: '0.5', RATE_LIMIT_BURST: '5' }).rateLimit).toEqual({
      perSec: 0.5,
      burst: 5,
    });
    expect(configError({ RATE_LIMIT_PER_SEC: '-1' }).variable).toBe('RATE_LIMIT_PER_SEC');
    expect(configError({ RATE_LIMIT_BURST: '5' }).variable).toBe('RATE_LIMIT_BURST');
  });
});
