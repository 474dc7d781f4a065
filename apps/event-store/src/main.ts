import 'reflect-metadata';
import { ConsoleLogger, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { FastifyInstance } from 'fastify';
import { AppModule } from './app.module';
import { AppConfig, ConfigError, loadConfig } from './config';
import { AppendFastPath } from './http/append-fast-path';
import { ApiExceptionFilter } from './http/api-exception.filter';
import { serveDocsUi } from './http/docs';
import { countRequests, frameworkErrors, guardRequestBodies } from './http/fastify-setup';
import { NodeRuntime } from './runtime/node-runtime';
import { MetricsService } from './services/metrics.service';
import { StreamsService } from './services/streams.service';
import { SubscriptionsService } from './services/subscriptions.service';

/** Exit code for a bad configuration (the message names the variable). */
const exitBadConfig = 2;
/** A graceful stop that takes longer than this is cut short. */
const shutdownHardMs = 20_000;

const levels: Record<AppConfig['logLevel'], LogLevel[]> = {
  error: ['fatal', 'error'],
  warn: ['fatal', 'error', 'warn'],
  info: ['fatal', 'error', 'warn', 'log'],
  debug: ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'],
};

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
  const logger = new ConsoleLogger(config.nodeId, { logLevels: levels[config.logLevel], prefix: `es ${config.nodeId}`, colors: process.stdout.isTTY === true, timestamp: false });
  const runtime = await NodeRuntime.open(config, {
    log: (m) => logger.log(m, 'raft'),
    warn: (m) => logger.warn(m, 'raft'),
    error: (m) => logger.error(m, undefined, 'raft'),
  });
  phases.push(...runtime.startupPhases);
  t = performance.now();
  const adapter = new FastifyAdapter({
    bodyLimit: config.appendBodyBytesMax,
    routerOptions: { maxParamLength: 1024 },
    keepAliveTimeout: 65_000,
    forceCloseConnections: 'idle',
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    frameworkErrors,
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRuntime(runtime), adapter, { logger, bufferLogs: false });
  phase('nest-create');
  // @nestjs/platform-fastify carries its own fastify copy; the hooks only use the stable hook API.
  const fastify = app.getHttpAdapter().getInstance() as unknown as FastifyInstance;
  guardRequestBodies(fastify, config.appendBodyBytesMax);
  const metrics = app.get(MetricsService);
  countRequests(fastify, (m, r, s) => metrics.countRequest(m, r, s));
  app.useGlobalFilters(new ApiExceptionFilter(runtime));
  app.connectMicroservice({ strategy: runtime.transportStrategy }, { inheritAppConfig: false });
  await app.startAllMicroservices();
  phase('microservice');
  const doc = new DocumentBuilder()
    .setTitle('Event store')
    .setDescription('Replicated event store on Raft — HTTP API contract v1 (API.md)')
    .setVersion('1')
    .build();
  SwaggerModule.setup('docs', app, () => SwaggerModule.createDocument(app, doc), { ui: false, jsonDocumentUrl: 'docs-json', yamlDocumentUrl: 'docs-yaml' });
  serveDocsUi(fastify, '/docs-json');
  phase('docs');
  await app.init();
  phase('nest-init');
  new AppendFastPath(app.get(StreamsService), runtime, config.appendBodyBytesMax, (m, r, s) => metrics.countRequest(m, r, s)).install(app.getHttpServer());
  await app.listen(config.httpPort, config.httpHost);
  phase('listen');
  logger.log(`node ${config.nodeId} started in ${performance.now().toFixed(0)} ms: ${phases.map(([n, ms]) => `${n} ${ms.toFixed(0)}`).join(', ')} (ms)`, 'main');
  logger.log(`node ${config.nodeId} serving HTTP on ${config.httpUrl} (listening ${config.httpHost}:${config.httpPort}), raft on ${config.raftAddr}, data in ${config.dataDir}`, 'main');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.log(`${signal}: stopping gracefully`, 'main');
    setTimeout(() => {
      logger.error(`graceful stop took over ${shutdownHardMs} ms; exiting`, undefined, 'main');
      process.exit(1);
    }, shutdownHardMs).unref();
    app.get(SubscriptionsService).closeAll();
    await runtime.shutdown();
    await app.close().catch((err: Error) => logger.warn(`closing HTTP: ${err.message}`, 'main'));
    logger.log('stopped', 'main');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

bootstrap().catch((err: Error) => {
  process.stderr.write(`event-store: failed to start: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
