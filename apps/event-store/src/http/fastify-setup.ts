import type { FastifyInstance } from 'fastify';

/** JSON in (API.md): application/json or a +json type, any parameters. */
const jsonContentType = /^\s*application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i;

/**
 * Before any byte of the body is read: 413 in API.md's shape to a declared Content-Length over the limit
 * (the connection is then closed, so the body is never buffered), 415 to a body that is not JSON.
 */
export function guardRequestBodies(fastify: FastifyInstance, bodyBytesMax: number): void {
  fastify.addHook('onRequest', (req, reply, done) => {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > bodyBytesMax) {
      sendJson(
        reply,
        413,
        {
          error: 'payload_too_large',
          message: `request body of ${declared} bytes exceeds the limit of ${bodyBytesMax} bytes`,
        },
        true,
      );
      return;
    }
    const hasBody =
      (declared !== undefined && declared !== '0') || req.headers['transfer-encoding'] !== undefined;
    if (hasBody && !jsonContentType.test(req.headers['content-type'] ?? '')) {
      const got = JSON.stringify(req.headers['content-type'] ?? null);
      sendJson(
        reply,
        415,
        {
          error: 'unsupported_media_type',
          message: `send JSON with Content-Type: application/json (got ${got})`,
        },
        false,
      );
      return;
    }
    done();
  });
}

function sendJson(
  reply: { code(n: number): any },
  status: number,
  body: Record<string, unknown>,
  close: boolean,
): void {
  const r = reply.code(status).header('content-type', 'application/json; charset=utf-8');
  if (close) r.header('connection', 'close');
  r.send(JSON.stringify(body));
}

/** Counts every answered request by method, route pattern and status. */
export function countRequests(
  fastify: FastifyInstance,
  count: (method: string, route: string, status: number) => void,
): void {
  fastify.addHook('onResponse', (req, reply, done) => {
    count(req.method, req.routeOptions?.url ?? 'unmatched', reply.statusCode);
    done();
  });
}

/**
 * Fastify's router errors (a malformed URL, a path parameter over maxParamLength) in API.md's shape: both
 * are client mistakes (a stream id is at most 256 characters).
 */
export function frameworkErrors(
  error: { code?: string; message: string },
  _req: unknown,
  reply: { code(n: number): any },
): void {
  const message =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? 'a path parameter is too long (streamId: at most 256 characters)'
      : `malformed URL: ${error.message.slice(0, 200)}`;
  reply
    .code(400)
    .header('content-type', 'application/json; charset=utf-8')
    .send(
      JSON.stringify({
        error: 'invalid_request',
        message,
        details: [
          { field: error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'streamId' : 'url', problem: message },
        ],
      }),
    );
}
