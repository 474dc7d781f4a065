import type { FastifyInstance } from 'fastify';

/**
 * Answers 413 in API.md's shape to a declared Content-Length over the limit, before any byte of the body
 * is read, and closes the connection (the body is never buffered).
 */
export function rejectOversizedBodies(fastify: FastifyInstance, bodyBytesMax: number): void {
  fastify.addHook('onRequest', (req, reply, done) => {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > bodyBytesMax) {
      reply
        .code(413)
        .header('connection', 'close')
        .header('content-type', 'application/json; charset=utf-8')
        .send(JSON.stringify({ error: 'payload_too_large', message: `request body of ${declared} bytes exceeds the limit of ${bodyBytesMax} bytes` }));
      return;
    }
    done();
  });
}

/** Counts every answered request by method, route pattern and status. */
export function countRequests(fastify: FastifyInstance, count: (method: string, route: string, status: number) => void): void {
  fastify.addHook('onResponse', (req, reply, done) => {
    count(req.method, req.routeOptions?.url ?? 'unmatched', reply.statusCode);
    done();
  });
}
