import { Controller, Get, HttpCode, Inject, Param, Post, Query, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { ProjectorRuntime } from '../runtime';
import { ApiError } from './api-error';

export const RUNTIME = Symbol('RUNTIME');

const pageLimitDefault = 100;
const pageLimitMax = 1000;

@Controller()
export class OpsController {
  constructor(@Inject(RUNTIME) private readonly rt: ProjectorRuntime) {}

  @Get('health')
  health() {
    return { status: 'ok' };
  }

  @Get('ready')
  ready(@Res() reply: FastifyReply) {
    if (this.rt.ready()) return void reply.status(200).send({ ready: true });
    const s = this.rt.status();
    const waiting = Object.entries(s.sinks)
      .filter(([, v]) => v.state !== 'running' && v.state !== 'off')
      .map(([k, v]) => `${k} ${v.state}${v.error ? `: ${v.error}` : ''}`);
    void reply.status(503).send({ ready: false, error: 'unavailable', message: waiting.join('; ') });
  }

  @Get('metrics')
  async metrics(@Res() reply: FastifyReply) {
    const text = await this.rt.metrics.registry.metrics();
    void reply.header('content-type', this.rt.metrics.registry.contentType).send(text);
  }

  @Get('status')
  status() {
    return this.rt.status();
  }
}

@Controller('read-models')
export class ReadModelsController {
  constructor(@Inject(RUNTIME) private readonly rt: ProjectorRuntime) {}

  @Get()
  list() {
    return this.rt.status().readModels.map((m) => ({
      name: m.name,
      table: this.rt.postgres?.table(m.name)?.table ?? null,
      state: m.state,
      position: m.position,
    }));
  }

  @Get(':name')
  async page(@Param('name') name: string, @Query('limit') limitRaw?: string, @Query('after') after?: string) {
    const pg = this.model(name);
    let limit = pageLimitDefault;
    if (limitRaw !== undefined) {
      if (!/^\d{1,7}$/.test(limitRaw) || Number(limitRaw) < 1 || Number(limitRaw) > pageLimitMax)
        throw ApiError.invalid(
          `limit: must be an integer in 1..${pageLimitMax}, got ${JSON.stringify(limitRaw)}`,
        );
      limit = Number(limitRaw);
    }
    if (after !== undefined && (after === '' || after.length > 1024))
      throw ApiError.invalid('after: must be the `next` cursor of the previous page (1-1024 characters)');
    const t = pg.table(name)!;
    if (after !== undefined && t.key.sqlType !== 'text' && !/^-?\d+$/.test(after))
      throw ApiError.invalid(`after: must be an integer key for ${name}, got ${JSON.stringify(after)}`);
    return this.connected(() => pg.page(name, after ?? null, limit));
  }

  @Get(':name/:id')
  async get(@Param('name') name: string, @Param('id') id: string) {
    const pg = this.model(name);
    const t = pg.table(name)!;
    if (t.key.sqlType !== 'text' && !/^-?\d+$/.test(id))
      throw ApiError.notFound('row_not_found', `no row ${JSON.stringify(id)} in ${name}`);
    const row = await this.connected(() => pg.get(name, id));
    if (!row) throw ApiError.notFound('row_not_found', `no row ${JSON.stringify(id)} in ${name}`);
    return row;
  }

  @Post(':name/rebuild')
  @HttpCode(202)
  rebuild(@Param('name') name: string) {
    this.model(name);
    const job = this.rt.startRebuild(name, true);
    return { name, state: 'rebuilding', startedAt: job.startedAt };
  }

  private model(name: string) {
    const pg = this.rt.postgres;
    if (!this.rt.readModelNames().includes(name))
      throw ApiError.notFound(
        'read_model_not_found',
        `no read model ${JSON.stringify(name)}; known: ${this.rt.readModelNames().join(', ')}`,
      );
    if (!pg) throw ApiError.unavailable('the postgres sink is off (PROJECTOR_SINKS)');
    if (!pg.isOpen() || !pg.table(name))
      throw ApiError.unavailable('postgres is not connected yet; see GET /status');
    return pg;
  }

  private async connected<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw ApiError.unavailable(`postgres: ${(err as Error).message}`);
    }
  }
}
