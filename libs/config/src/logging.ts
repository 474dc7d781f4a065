import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import pino, { Logger as PinoLogger } from 'pino';
import { z } from 'zod';

/**
 * The apps' logs: pino, one JSON object per line, or the same lines made readable by pino-pretty in this
 * process. Every line names its process (`node`: NODE_ID, or the projector's id); request lines carry
 * `reqId`. Lines are written synchronously to stdout, so nothing is left in a buffer when the process
 * exits (SIGTERM's graceful stop ends in process.exit) and no worker thread has to be flushed.
 */

export type LogLevelName = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'json' | 'pretty';
export type AppLogger = PinoLogger;

/** LOG_LEVEL: the least severe level written. */
export const logLevelSetting = z.enum(['error', 'warn', 'info', 'debug']).default('info');
/** LOG_FORMAT: `json` or `pretty`; unset = pretty on a terminal, JSON otherwise. */
export const logFormatSetting = z.enum(['json', 'pretty']).optional();

/** Never written: credentials a client may send. Requests are logged with their headers at `debug`. */
export const redactedPaths = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
];

export interface AppLoggerOptions {
  /** The `node` field of every line. */
  node: string;
  level: LogLevelName;
  /** null: pretty when stdout is a terminal, JSON otherwise. */
  format: LogFormat | null;
  /** Where lines go (default: stdout, written synchronously). */
  destination?: { write(line: string): unknown };
  /** Whether stdout is a terminal (default: process.stdout.isTTY). */
  isTTY?: boolean;
}

/** The format a null LOG_FORMAT stands for. */
export function effectiveLogFormat(format: LogFormat | null, isTTY: boolean): LogFormat {
  return format ?? (isTTY ? 'pretty' : 'json');
}

export function createAppLogger(opts: AppLoggerOptions): AppLogger {
  const isTTY = opts.isTTY ?? process.stdout.isTTY === true;
  const out = opts.destination ?? pino.destination({ dest: 1, sync: true });
  let destination = out;
  if (effectiveLogFormat(opts.format, isTTY) === 'pretty') {
    // Loaded only for pretty lines: it would add some 20 ms to every JSON-logging process's start.
    const { prettyFactory, isColorSupported } = require('pino-pretty') as typeof import('pino-pretty');
    const pretty = prettyFactory({
      colorize: isTTY && isColorSupported,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,node,context,reqId,req,res,responseTime',
      messageFormat: '{node}{if context} {context}{end}{if reqId} [{reqId}]{end}: {msg}',
    });
    destination = { write: (line: string) => out.write(pretty(line)) };
  }
  return pino(
    {
      level: opts.level,
      base: { pid: process.pid, node: opts.node },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: redactedPaths, censor: '[redacted]' },
    },
    destination,
  );
}

/** The `{ log, warn, error }` port the libraries take (RaftNode, storage, transport, state machine). */
export interface LogPort {
  log(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export function logPort(logger: AppLogger): LogPort {
  return {
    log: (m) => logger.info(m),
    warn: (m) => logger.warn(m),
    error: (m) => logger.error(m),
  };
}

/** Nest's own start-up chatter (modules loaded, each route mapped): `debug`, not `info`. */
const nestInternals = new Set([
  'NestFactory',
  'InstanceLoader',
  'RoutesResolver',
  'RouterExplorer',
  'NestApplication',
  'NestApplicationContext',
  'NestMicroservice',
]);
const stackLike = /^.*\n\s+at .+/;

/**
 * Nest's LoggerService over pino (the same shape, so libraries stay free of Nest): Nest's `context` becomes
 * the `context` field, an error's stack its `stack` field, `verbose` is `debug`. A message that is a plain
 * object is logged as fields (its `msg` the message).
 */
export class NestPinoLogger {
  constructor(private readonly logger: AppLogger) {}

  log(message: unknown, ...params: unknown[]): void {
    const context = contextOf(params);
    this.write(context !== undefined && nestInternals.has(context) ? 'debug' : 'info', message, context);
  }

  error(message: unknown, ...params: unknown[]): void {
    let stack: unknown;
    let context: string | undefined;
    if (params.length >= 2) {
      stack = params[0];
      context = contextOf(params);
    } else if (typeof params[0] === 'string' && stackLike.test(params[0])) stack = params[0];
    else context = contextOf(params);
    this.write('error', message, context, typeof stack === 'string' ? stack : undefined);
  }

  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, contextOf(params));
  }

  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, contextOf(params));
  }

  verbose(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, contextOf(params));
  }

  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, contextOf(params));
  }

  private write(
    level: 'fatal' | 'error' | 'warn' | 'info' | 'debug',
    message: unknown,
    context: string | undefined,
    stack?: string,
  ): void {
    if (!this.logger.isLevelEnabled(level)) return;
    const fields: Record<string, unknown> = {};
    if (context !== undefined) fields.context = context;
    if (stack !== undefined) fields.stack = stack;
    let msg: string;
    if (message instanceof Error) {
      fields.err = message;
      msg = message.message;
    } else if (typeof message === 'object' && message !== null) {
      const { msg: m, ...rest } = message as Record<string, unknown>;
      Object.assign(fields, rest);
      msg = typeof m === 'string' ? m : '';
    } else msg = String(message);
    this.logger[level](fields, msg);
  }
}

function contextOf(params: unknown[]): string | undefined {
  const last = params.at(-1);
  return typeof last === 'string' ? last : undefined;
}

/** The request id header: honoured when a client sends one, and always set on the response. */
export const requestIdHeader = 'x-request-id';
/** A client's id is used when it is 1-128 visible ASCII characters; otherwise the node makes one up. */
const clientRequestId = /^[\x21-\x7e]{1,128}$/;

/**
 * Request ids and request lines for an HTTP server: each request's id is its `x-request-id` header when
 * it has a usable one, else `<random per process>-<counter>`; the response carries it back. A finished
 * request is logged at `debug` (method, URL, headers with credentials redacted, status, time; never the
 * body); one answered with a 5xx at `warn`. Below `debug` a request that succeeds costs no log work.
 */
export class RequestLog {
  readonly logger: AppLogger;
  private readonly prefix = randomBytes(4).toString('hex');
  private counter = 0;

  constructor(logger: AppLogger) {
    this.logger = logger.child({ context: 'http' });
  }

  /** fastify's `genReqId` (the raw request); the fast paths call it too. */
  readonly genReqId = (req: { headers: IncomingHttpHeaders }): string => {
    const given = req.headers[requestIdHeader];
    if (typeof given === 'string' && clientRequestId.test(given)) return given;
    this.counter = (this.counter + 1) % Number.MAX_SAFE_INTEGER;
    return `${this.prefix}-${this.counter.toString(36)}`;
  };

  /** fastify `onRequest` hook: the response carries the request's id. */
  readonly onRequest = (
    req: { id: string },
    reply: { raw: Pick<ServerResponse, 'setHeader'> },
    done: () => void,
  ): void => {
    reply.raw.setHeader(requestIdHeader, req.id);
    done();
  };

  /** fastify `onResponse` hook: the request line. */
  readonly onResponse = (
    req: { id: string; method: string; url: string; headers: IncomingHttpHeaders },
    reply: { statusCode: number; elapsedTime: number },
    done: () => void,
  ): void => {
    this.finished(req.id, req.method, req.url, req.headers, reply.statusCode, reply.elapsedTime);
    done();
  };

  /** A request was answered with `status` after `ms` milliseconds. */
  finished(
    reqId: string,
    method: string,
    url: string,
    headers: IncomingHttpHeaders,
    status: number,
    ms: number,
  ): void {
    const level = status >= 500 ? 'warn' : 'debug';
    if (!this.logger.isLevelEnabled(level)) return;
    const responseTime = Math.round(ms * 100) / 100;
    this.logger[level](
      { reqId, req: { method, url, headers }, res: { statusCode: status }, responseTime },
      `${method} ${url} ${status} ${responseTime} ms`,
    );
  }

  /** An unexpected error while serving a request (a 500): logged with its stack. */
  failed(reqId: string | undefined, req: Pick<IncomingMessage, 'method' | 'url'>, err: unknown): void {
    this.logger.error(
      { reqId, req: { method: req.method, url: req.url }, err },
      `${req.method} ${req.url} failed: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}
