import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';

/** Swagger UI files served from swagger-ui-dist (no @fastify/static needed), read once on first use. */
const assets: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'application/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'application/javascript; charset=utf-8',
};

function page(jsonUrl: string): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Event store API</title><link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script><script src="/docs/swagger-ui-standalone-preset.js"></script>
<script>window.ui = SwaggerUIBundle({ url: ${JSON.stringify(jsonUrl)}, dom_id: '#swagger-ui', presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout' });</script>
</body></html>`;
}

/** GET /docs: Swagger UI over the OpenAPI document that SwaggerModule serves at `jsonUrl` (generated from the controllers). */
export function serveDocsUi(fastify: FastifyInstance, jsonUrl: string): void {
  const dir = path.dirname(require.resolve('swagger-ui-dist/package.json'));
  const cache = new Map<string, Buffer>();
  fastify.get('/docs', (_req, reply) => {
    reply.header('content-type', 'text/html; charset=utf-8').send(page(jsonUrl));
  });
  fastify.get<{ Params: { file: string } }>('/docs/:file', (req, reply) => {
    const type = assets[req.params.file];
    if (!type) {
      reply
        .code(404)
        .header('content-type', 'application/json; charset=utf-8')
        .send(JSON.stringify({ error: 'not_found', message: `no file ${req.params.file} under /docs` }));
      return;
    }
    let body = cache.get(req.params.file);
    if (!body) {
      body = fs.readFileSync(path.join(dir, req.params.file));
      cache.set(req.params.file, body);
    }
    reply.header('content-type', type).header('cache-control', 'public, max-age=3600').send(body);
  });
}
