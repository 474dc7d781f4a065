import { createAppLogger, effectiveLogFormat, LogLevelName, NestPinoLogger, RequestLog } from './logging';

function capture(level: LogLevelName = 'debug', format: 'json' | 'pretty' = 'json') {
  const lines: string[] = [];
  const logger = createAppLogger({
    node: 'n7',
    level,
    format,
    isTTY: false,
    destination: { write: (s: string) => lines.push(s) },
  });
  const json = () => lines.map((l) => JSON.parse(l) as Record<string, any>);
  return { logger, lines, json };
}

describe('app logger', () => {
  it('writes one JSON object per line, each naming the node, with the level by name', () => {
    const { logger, lines, json } = capture('info');
    logger.child({ context: 'raft' }).info('became leader at term 3 "quoted"');
    logger.debug('not at info');
    expect(lines).toHaveLength(1);
    expect(lines[0].endsWith('\n')).toBe(true);
    expect(lines[0].trimEnd()).not.toContain('\n');
    expect(json()[0]).toMatchObject({
      level: 'info',
      node: 'n7',
      context: 'raft',
      msg: 'became leader at term 3 "quoted"',
    });
  });

  it('pretty: the same line made readable (no JSON), on a terminal by default', () => {
    const { logger, lines } = capture('info', 'pretty');
    logger.child({ context: 'main' }).info('node n7 started in 12 ms');
    expect(lines).toHaveLength(1);
    expect(() => JSON.parse(lines[0])).toThrow();
    expect(lines[0]).toMatch(/INFO.*n7 main: node n7 started in 12 ms/);
    expect(effectiveLogFormat(null, true)).toBe('pretty');
    expect(effectiveLogFormat(null, false)).toBe('json');
    expect(effectiveLogFormat('json', true)).toBe('json');
  });
});

describe('RequestLog', () => {
  const headers = { authorization: 'Bearer sekret-token', cookie: 'sid=sekret-cookie', 'user-agent': 'jest' };

  it('logs a finished request at debug with its id, credentials redacted, never at info', () => {
    const { logger, json, lines } = capture('debug');
    new RequestLog(logger).finished('req-1', 'GET', '/streams/a', headers, 200, 1.234);
    const [line] = json();
    expect(line).toMatchObject({
      level: 'debug',
      node: 'n7',
      context: 'http',
      reqId: 'req-1',
      req: { method: 'GET', url: '/streams/a', headers: { 'user-agent': 'jest' } },
      res: { statusCode: 200 },
      responseTime: 1.23,
    });
    expect(line.req.headers.authorization).toBe('[redacted]');
    expect(lines.join('')).not.toContain('sekret');

    const quiet = capture('info');
    new RequestLog(quiet.logger).finished('req-2', 'GET', '/x', headers, 404, 1);
    expect(quiet.lines).toHaveLength(0);
  });

  it('logs a 5xx at warn, and an unexpected error at error with its stack', () => {
    const { logger, json } = capture('info');
    const requests = new RequestLog(logger);
    requests.finished('req-3', 'POST', '/streams/a/events', headers, 503, 5);
    requests.failed('req-3', { method: 'POST', url: '/streams/a/events' }, new Error('disk on fire'));
    const [warn, error] = json();
    expect(warn).toMatchObject({ level: 'warn', reqId: 'req-3', res: { statusCode: 503 } });
    expect(warn.req.headers.authorization).toBe('[redacted]');
    expect(error).toMatchObject({ level: 'error', reqId: 'req-3', err: { message: 'disk on fire' } });
    expect(error.err.stack).toContain('disk on fire');
  });

  it("uses a client's x-request-id when it is usable, else makes a distinct one", () => {
    const { genReqId } = new RequestLog(capture().logger);
    expect(genReqId({ headers: { 'x-request-id': 'abc-123' } })).toBe('abc-123');
    const made = [
      genReqId({ headers: {} }),
      genReqId({ headers: { 'x-request-id': 'has space' } }),
      genReqId({ headers: { 'x-request-id': 'x'.repeat(129) } }),
    ];
    expect(new Set(made).size).toBe(3);
    for (const id of made) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
  });
});

describe('NestPinoLogger', () => {
  it("keeps Nest's start-up chatter (route mappings) at debug and passes contexts and stacks on", () => {
    const { logger, json } = capture('debug');
    const nest = new NestPinoLogger(logger);
    nest.log('Mapped {/streams, GET} route', 'RouterExplorer');
    nest.log('membership changed', 'cluster');
    nest.error('boom', 'Error: boom\n    at x (y.js:1:1)', 'ExceptionsHandler');
    nest.error('plain', 'sse');
    nest.warn({ msg: 'slow', ms: 12 }, 'http');
    expect(json().map((l) => [l.level, l.context, l.msg])).toEqual([
      ['debug', 'RouterExplorer', 'Mapped {/streams, GET} route'],
      ['info', 'cluster', 'membership changed'],
      ['error', 'ExceptionsHandler', 'boom'],
      ['error', 'sse', 'plain'],
      ['warn', 'http', 'slow'],
    ]);
    expect(json()[2].stack).toContain('at x (y.js:1:1)');
    expect(json()[4].ms).toBe(12);

    const info = capture('info');
    new NestPinoLogger(info.logger).log('Mapped {/streams, GET} route', 'RouterExplorer');
    expect(info.lines).toHaveLength(0);
  });
});
