import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyInstance } from 'fastify';
import { AccessControl, AppLogger, guardAccess, NestPinoLogger, RequestLog } from '@app/config';
import type { ProjectorRuntime } from '../runtime';
import { requiredRole } from './access';
import { ApiExceptionFilter } from './api-error';
import { OpsController, ReadModelsController, RUNTIME } from './controllers';

export interface HttpApp {
  close(): Promise<void>;
}

/**
 * The projector's HTTP API (PROJECTOR.md "HTTP") over a runtime that is already running. Tokens are checked
 * on every route but the probes (./access.ts), in an onRequest hook right after the request log's.
 */
export async function startHttp(rt: ProjectorRuntime, logger: AppLogger): Promise<HttpApp> {
  @Module({
    controllers: [OpsController, ReadModelsController],
    providers: [{ provide: RUNTIME, useValue: rt }],
  })
  class ProjectorHttpModule {}

  const requests = new RequestLog(logger);
  const app = await NestFactory.create<NestFastifyApplication>(
    ProjectorHttpModule,
    new FastifyAdapter({
      routerOptions: { maxParamLength: 1024 },
      forceCloseConnections: 'idle',
      genReqId: requests.genReqId,
    }),
    { logger: new NestPinoLogger(logger) },
  );
  // @nestjs/platform-fastify carries its own fastify copy; the hooks only use the stable hook API.
  const fastify = app.getHttpAdapter().getInstance() as unknown as FastifyInstance;
  fastify.addHook('onRequest', requests.onRequest);
  fastify.addHook('onResponse', requests.onResponse);
  guardAccess(
    fastify,
    new AccessControl(rt.config.tokens, null, { realm: 'projector', owner: 'projector' }),
    requiredRole,
  );
  app.useGlobalFilters(new ApiExceptionFilter((m) => requests.logger.warn(m)));
  await app.listen(rt.config.httpPort, rt.config.httpHost);
  return { close: () => app.close() };
}
