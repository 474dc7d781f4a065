import 'reflect-metadata';
import { createAppLogger, describeAuth, logPort } from '@app/config';
import { ConfigError, loadConfig, ProjectorConfig } from './config';
import type { ReadModel } from './read-models';
import { loadReadModels } from './read-models/load';
import { ProjectorRuntime } from './runtime';
import { createKafkaSink } from './sinks/kafka-factory';

/** Exit code for a bad configuration (the message names the variable). */
const exitBadConfig = 2;
/** A graceful stop that takes longer than this is cut short. */
const shutdownHardMs = 15_000;

function readConfig(): { config: ProjectorConfig; models: ReadModel[] } {
  try {
    const config = loadConfig(process.env, process.argv.slice(2));
    return { config, models: loadReadModels(config.readModelsModule) };
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`projector: bad configuration: ${err.message}\n`);
      process.exit(exitBadConfig);
    }
    throw err;
  }
}

async function bootstrap(): Promise<void> {
  const { config, models } = readConfig();
  // Every line names the projector by its id (`node`).
  const log = createAppLogger({ node: config.projectorId, level: config.logLevel, format: config.logFormat });
  const runtime = await ProjectorRuntime.open(config, logPort(log), { models, kafkaSink: createKafkaSink });
  const { startHttp } = await import('./http/http-app');
  const app = await startHttp(runtime, log);
  const base = `http://${config.httpHost.includes(':') ? `[${config.httpHost}]` : config.httpHost}:${config.httpPort}`;
  log.info(
    `projector serving on ${base}: read models at ${base}/read-models, status at ${base}/status; ` +
      `following ${config.eventStoreUrls.join(', ')}; ${describeAuth({ tokens: config.tokens, off: config.authOff })}`,
  );
  if (config.authOff)
    log.warn(
      `AUTH=off: the HTTP API on ${config.httpHost}:${config.httpPort} answers every request without a token (unsafe off loopback)`,
    );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: stopping`);
    setTimeout(() => {
      log.error(`graceful stop took over ${shutdownHardMs} ms; exiting`);
      process.exit(1);
    }, shutdownHardMs).unref();
    await app.close().catch(() => undefined);
    await runtime.shutdown();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

bootstrap().catch((err: Error) => {
  process.stderr.write(`projector: failed to start: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
