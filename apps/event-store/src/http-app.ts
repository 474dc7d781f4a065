import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { FastifyInstance } from 'fastify';
import { AccessControl, AppLogger, guardAccess, NestPinoLogger, RateLimiter, RequestLog } from '@app/config';
import { AppModule } from './app.module';
import { AppConfig } from './config';
import { AppendFastPath } from './http/append-fast-path';
import { ApiExceptionFilter } from './http/api-exception.filter';
import { serveDocsUi } from './http/docs';
import { countRequests, frameworkErrors, guardRequestBodies } from './http/fastify-setup';
import { NodeRuntime } from './runtime/node-runtime';
import { requiredRole } from './security/access';
import { MetricsService } from './services/metrics.service';
import { StreamsService } from './services/streams.service';
import { SubscriptionsService } from './services/subscriptions.service';

export interface HttpApp {
  /** Ends every open subscription (SSE streams would otherwise hold app.close() up). */
  closeSubscriptions(): void;
  close(): Promise<void>;
}

/**
 * The REST + SSE API over a node runtime that is already open and running: NestJS with fastify, the
 * Raft transport as a Nest microservice, the OpenAPI document (built on the first GET /docs-json), the
 * append fast path, tokens and the rate limit checked on every route (security/access.ts), HTTPS with
 * TLS_CERT_FILE. Resolves once the server listens. main.ts loads this module only after the Raft node
 * started, so the node elects and catches up while NestJS loads. `phase(name)` marks each step's end.
 */
export async function startHttp(
  config: AppConfig,
  runtime: NodeRuntime,
  logger: AppLogger,
  phase: (name: string) => void,
): Promise<HttpApp> {
  const requests = new RequestLog(logger);
  const adapter = new FastifyAdapter({
    genReqId: requests.genReqId,
    bodyLimit: config.appendBodyBytesMax,
    routerOptions: { maxParamLength: 1024 },
    keepAliveTimeout: 65_000,
    forceCloseConnections: 'idle',
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    frameworkErrors,
    ...(config.tls ? { https: { cert: config.tls.cert, key: config.tls.key } } : {}),
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRuntime(runtime), adapter, {
    logger: new NestPinoLogger(logger),
    bufferLogs: false,
  });
  phase('nest-create');
  // @nestjs/platform-fastify carries its own fastify copy; the hooks only use the stable hook API.
  const fastify = app.getHttpAdapter().getInstance() as unknown as FastifyInstance;
  fastify.addHook('onRequest', requests.onRequest);
  fastify.addHook('onResponse', requests.onResponse);
  const access = new AccessControl(
    config.auth?.tokens ?? null,
    config.rateLimit ? new RateLimiter(config.rateLimit.perSec, config.rateLimit.burst) : null,
  );
  guardAccess(fastify, access, requiredRole);
  guardRequestBodies(fastify, config.appendBodyBytesMax);
  const metrics = app.get(MetricsService);
  countRequests(fastify, (m, r, s) => metrics.countRequest(m, r, s));
  app.useGlobalFilters(new ApiExceptionFilter(runtime, requests));
  app.connectMicroservice({ strategy: runtime.transportStrategy }, { inheritAppConfig: false });
  await app.startAllMicroservices();
  phase('microservice');
  const doc = new DocumentBuilder()
    .setTitle('Event store')
    .setDescription('Replicated event store on Raft — HTTP API contract v1 (API.md)')
    .setVersion('1')
    .build();
  SwaggerModule.setup('docs', app, () => SwaggerModule.createDocument(app, doc), {
    ui: false,
    jsonDocumentUrl: 'docs-json',
    yamlDocumentUrl: 'docs-yaml',
  });
  serveDocsUi(fastify, '/docs-json');
  phase('docs');
  await app.init();
  phase('nest-init');
  new AppendFastPath(
    app.get(StreamsService),
    runtime,
    config.appendBodyBytesMax,
    (m, r, s) => metrics.countRequest(m, r, s),
    requests,
    access,
  ).install(app.getHttpServer());
  await app.listen(config.httpPort, config.httpHost);
  phase('listen');
  return {
    closeSubscriptions: () => app.get(SubscriptionsService).closeAll(),
    close: () => app.close(),
  };
}
