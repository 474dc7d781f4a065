import { ArgumentsHost, Catch, ExceptionFilter, HttpException } from '@nestjs/common';
import type { FastifyReply } from 'fastify';

/** An answer with a status and `{ error, message }`, as the event store's API answers. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
  static invalid(message: string): ApiError {
    return new ApiError(400, 'invalid_request', message);
  }
  static notFound(code: string, message: string): ApiError {
    return new ApiError(404, code, message);
  }
  static unavailable(message: string): ApiError {
    return new ApiError(503, 'unavailable', message);
  }
}

/** Every error leaves as JSON; client mistakes are 4xx with a message, never a 500. */
@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  constructor(private readonly warn: (m: string) => void) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    if (err instanceof ApiError) {
      void reply.status(err.status).send({ error: err.code, message: err.message });
      return;
    }
    if (err instanceof HttpException) {
      const status = err.getStatus();
      void reply
        .status(status)
        .send({ error: status === 404 ? 'not_found' : 'invalid_request', message: err.message });
      return;
    }
    const e = err as Error;
    this.warn(`request failed: ${e?.stack ?? String(err)}`);
    void reply.status(503).send({ error: 'unavailable', message: e?.message ?? String(err) });
  }
}
