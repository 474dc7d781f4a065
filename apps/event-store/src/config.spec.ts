import { ConfigError, loadConfig, parseInitialCluster } from './config';

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
