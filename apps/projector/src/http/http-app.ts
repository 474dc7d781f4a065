import { ConsoleLogger, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import type { ProjectorRuntime } from '../runtime';
import { ApiExceptionFilter } from './api-error';
import { OpsController, ReadModelsController, RUNTIME } from './controllers';

export interface HttpApp {
  close(): Promise<void>;
}

/** The projector's HTTP API (PROJECTOR.md "HTTP") over a runtime that is already running. */
export async function startHttp(rt: ProjectorRuntime, logger: ConsoleLogger): Promise<HttpApp> {
  @Module({
    controllers: [OpsController, ReadModelsController],
    providers: [{ provide: RUNTIME, useValue: rt }],
  })
  class ProjectorHttpModule {}

  const app = await NestFactory.create<NestFastifyApplication>(
    ProjectorHttpModule,
    new FastifyAdapter({ routerOptions: { maxParamLength: 1024 }, forceCloseConnections: 'idle' }),
    { logger: ['error', 'warn'] },
  );
  app.useGlobalFilters(new ApiExceptionFilter((m) => logger.warn(m, 'http')));
  await app.listen(rt.config.httpPort, rt.config.httpHost);
  return { close: () => app.close() };
}
