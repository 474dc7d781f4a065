import { ArgumentsHost, Catch, ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RequestLog } from '@app/config';
import { LeaderLocator, toApiResponse } from './error-mapping';

/** The one place where thrown errors become API.md statuses and bodies. */
@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  constructor(
    private readonly leader: LeaderLocator,
    private readonly requests: RequestLog,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const reply = ctx.getResponse<FastifyReply>();
    const req = ctx.getRequest<FastifyRequest>();
    const url = req?.raw?.url ?? req?.url ?? '/';
    const res = toApiResponse(exception, { url }, this.leader);
    if (res.unexpected) this.requests.failed(req?.id, { method: req?.method, url }, exception);
    // A hijacked reply (SSE) already sent its head: the stream is closed by its owner.
    if (!reply || reply.sent || reply.raw.headersSent) {
      if (reply?.raw && !reply.raw.writableEnded) reply.raw.end();
      return;
    }
    reply.status(res.status);
    for (const [k, v] of Object.entries(res.headers)) reply.header(k, v);
    if (res.body === null) {
      reply.send();
      return;
    }
    reply.header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(res.body));
  }
}
