import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mintToken, tokenLine } from '@app/config';
import { ConfigError, loadConfig } from './config';

describe('projector configuration', () => {
  it('has the defaults of the contract', () => {
    const c = loadConfig({});
    expect(c.eventStoreUrls).toEqual([
      'http://127.0.0.1:2113',
      'http://127.0.0.1:2123',
      'http://127.0.0.1:2133',
    ]);
    expect([c.httpHost, c.httpPort]).toEqual(['127.0.0.1', 2150]);
    expect(c.databaseUrl).toBeNull();
    expect(c.dataDir).toBe('./data/projector');
    expect(c.kafkaBrokers).toBeNull();
    expect(c.kafkaTopic).toBe('events');
    expect(c.sinks).toEqual({ postgres: true, kafka: false });
  });

  it('turns Kafka on when brokers are set, and PROJECTOR_SINKS picks sinks', () => {
    expect(loadConfig({ KAFKA_BROKERS: '127.0.0.1:9092' }).sinks).toEqual({ postgres: true, kafka: true });
    expect(loadConfig({ KAFKA_BROKERS: 'a:1,b:2', PROJECTOR_SINKS: 'kafka' }).sinks).toEqual({
      postgres: false,
      kafka: true,
    });
    expect(loadConfig({ KAFKA_BROKERS: 'a:1,b:2' }).kafkaBrokers).toEqual(['a:1', 'b:2']);
  });

  it('LOG_FORMAT is json or pretty; unset (or empty) leaves it to whether stdout is a terminal', () => {
    expect(loadConfig({}).logFormat).toBeNull();
    expect(loadConfig({ LOG_FORMAT: '' }).logFormat).toBeNull();
    expect(loadConfig({ LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
  });

  it('EVENT_STORE_TOKEN and EVENT_STORE_CA_FILE: the token and the CA for the nodes (none by default)', () => {
    expect([loadConfig({}).eventStoreToken, loadConfig({}).eventStoreCa]).toEqual([null, null]);
    expect(loadConfig({ EVENT_STORE_TOKEN: 'est_abc' }).eventStoreToken).toBe('est_abc');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'projector-ca-'));
    try {
      const notPem = path.join(dir, 'ca.pem');
      fs.writeFileSync(notPem, 'not a certificate');
      expect(() => loadConfig({ EVENT_STORE_CA_FILE: notPem })).toThrow(
        `EVENT_STORE_CA_FILE: ${notPem} holds no PEM certificate`,
      );
      const missing = path.join(dir, 'missing.pem');
      expect(() => loadConfig({ EVENT_STORE_CA_FILE: missing })).toThrow(
        `EVENT_STORE_CA_FILE: cannot read ${missing}: ENOENT`,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('TOKENS_FILE / API_TOKENS / AUTH: tokens for its own API, required off loopback unless AUTH=off', () => {
    expect([loadConfig({}).tokens, loadConfig({}).authOff]).toEqual([null, false]);
    const c = loadConfig({
      API_TOKENS: `${tokenLine('ops', 'admin', mintToken())},${tokenLine('graf', 'read', mintToken())}`,
    });
    expect(c.tokens?.map((t) => `${t.name}:${t.role}`)).toEqual(['ops:admin', 'graf:read']);
    expect(() => loadConfig({ PROJECTOR_HTTP_ADDR: '0.0.0.0:2150' })).toThrow(
      'TOKENS_FILE: required because PROJECTOR_HTTP_ADDR 0.0.0.0:2150 is not a loopback address',
    );
    expect(loadConfig({ PROJECTOR_HTTP_ADDR: '0.0.0.0:2150', AUTH: 'off' })).toMatchObject({
      tokens: null,
      authOff: true,
    });
    const line = tokenLine('x', 'read', mintToken());
    expect(loadConfig({ PROJECTOR_HTTP_ADDR: '0.0.0.0:2150', API_TOKENS: line }).tokens).toHaveLength(1);
  });

  it('flags win over the environment', () => {
    const c = loadConfig({ KAFKA_TOPIC: 'a' }, ['--kafka-topic', 'b', '--projector-batch-events=10']);
    expect(c.kafkaTopic).toBe('b');
    expect(c.batchEvents).toBe(10);
  });

  const bad: [Record<string, string>, string[], string][] = [
    [{ PROJECTOR_BATCH_EVENTS: '0' }, [], 'PROJECTOR_BATCH_EVENTS'],
    [{ PROJECTOR_LINGER_MS: 'soon' }, [], 'PROJECTOR_LINGER_MS'],
    [{ EVENT_STORE_URLS: 'ftp://x' }, [], 'EVENT_STORE_URLS'],
    [{ EVENT_STORE_URLS: ' , ' }, [], 'EVENT_STORE_URLS'],
    [{ PROJECTOR_HTTP_ADDR: 'localhost' }, [], 'PROJECTOR_HTTP_ADDR'],
    [{ DATABASE_URL: 'mysql://x' }, [], 'DATABASE_URL'],
    [{ KAFKA_BROKERS: 'nohostport' }, [], 'KAFKA_BROKERS'],
    [{ KAFKA_TOPIC: 'a topic' }, [], 'KAFKA_TOPIC'],
    [{ KAFKA_TOPIC_MODE: 'stream' }, [], 'KAFKA_TOPIC_MODE'],
    [{ PROJECTOR_SINKS: 'kafka' }, [], 'PROJECTOR_SINKS'],
    [{ PROJECTOR_SINKS: 'postgres,elastic' }, [], 'PROJECTOR_SINKS'],
    [{ PROJECTOR_SCHEMA: 'Drop Table' }, [], 'PROJECTOR_SCHEMA'],
    [{ LOG_FORMAT: 'bogus' }, [], 'LOG_FORMAT'],
    [{ EVENT_STORE_TOKEN: 'two words' }, [], 'EVENT_STORE_TOKEN'],
    [{ AUTH: 'maybe' }, [], 'AUTH'],
    [{ AUTH: 'on' }, [], 'TOKENS_FILE'],
    [{ API_TOKENS: 'ops:admin' }, [], 'API_TOKENS'],
    [{ TOKENS_FILE: '/nonexistent/tokens' }, [], 'TOKENS_FILE'],
    [{}, ['--no-such-flag', 'x'], '--no-such-flag'],
    [{}, ['--kafka-topic'], 'KAFKA_TOPIC'],
  ];
  it.each(bad)('rejects %j %j naming %s', (env, argv, variable) => {
    let err: unknown;
    try {
      loadConfig(env, argv);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as ConfigError).message).toContain(variable);
  });
});
