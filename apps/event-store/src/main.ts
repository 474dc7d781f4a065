import { collectWhenIdle } from './gc-tuning';
import 'reflect-metadata';
import { createAppLogger, describeAuth, logPort } from '@app/config';
import { AppConfig, ConfigError, loadConfig } from './config';
import { NodeRuntime } from './runtime/node-runtime';

/** Exit code for a bad configuration (the message names the variable). */
const exitBadConfig = 2;
/** A graceful stop that takes longer than this is cut short. */
const shutdownHardMs = 20_000;

function readConfig(): AppConfig {
  try {
    return loadConfig(process.env, process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`event-store: bad configuration: ${err.message}\n`);
      process.exit(exitBadConfig);
    }
    throw err;
  }
}

/** Tokens by role (never the tokens or their hashes), or why there are none; the rate limit. */
function describeAccess(config: AppConfig): string {
  const auth = describeAuth({ tokens: config.auth?.tokens ?? null, off: config.authOff });
  const rate = config.rateLimit
    ? `rate limit ${config.rateLimit.perSec}/s per client (burst ${config.rateLimit.burst})`
    : 'no rate limit';
  return `${auth}, ${rate}`;
}

async function bootstrap(): Promise<void> {
  // performance.now() counts from the process start: this is the time spent loading modules.
  const phases: [string, number][] = [['modules', performance.now()]];
  let t = performance.now();
  const phase = (name: string) => {
    const now = performance.now();
    phases.push([name, now - t]);
    t = now;
  };
  const config = readConfig();
  const logger = createAppLogger({ node: config.nodeId, level: config.logLevel, format: config.logFormat });
  const log = logger.child({ context: 'main' });
  const runtime = await NodeRuntime.open(config, logPort(logger.child({ context: 'raft' })));
  phases.push(...runtime.startupPhases);
  t = performance.now();
  // NestJS, fastify, swagger and the controllers load only now: the Raft node already listens for its
  // peers, elects and catches up meanwhile (a restarted cluster is ready sooner).
  const { startHttp } = await import('./http-app');
  phase('http-modules');
  const app = await startHttp(config, runtime, logger, phase);
  log.info(
    `node ${config.nodeId} started in ${performance.now().toFixed(0)} ms: ${phases.map(([n, ms]) => `${n} ${ms.toFixed(0)}`).join(', ')} (ms)`,
  );
  log.info(
    `node ${config.nodeId} serving ${config.tls ? 'HTTPS' : 'HTTP'} on ${config.httpUrl} (listening ${config.httpHost}:${config.httpPort}), raft on ${config.raftAddr}${config.raftTls ? ' (TLS)' : ''}, data in ${config.dataDir}; ${describeAccess(config)}`,
  );
  if (config.authOff)
    log.warn(
      `AUTH=off: the HTTP API on ${config.httpHost}:${config.httpPort} answers every request without a token (unsafe off loopback)`,
    );
  // When the node goes idle (after the start-up replay, after a load), the garbage is collected (gc-tuning.ts).
  const stopCollect = collectWhenIdle((ms, freed) =>
    log.debug(`idle: collected ${(freed / 1048576).toFixed(0)} MiB of garbage in ${ms.toFixed(0)} ms`),
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    stopCollect();
    log.info(`${signal}: stopping gracefully`);
    setTimeout(() => {
      log.error(`graceful stop took over ${shutdownHardMs} ms; exiting`);
      process.exit(1);
    }, shutdownHardMs).unref();
    app.closeSubscriptions();
    await runtime.shutdown();
    await app.close().catch((err: Error) => log.warn(`closing HTTP: ${err.message}`));
    log.info('stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

bootstrap().catch((err: Error) => {
  process.stderr.write(`event-store: failed to start: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
