import type { Role } from '@app/config';

/**
 * Roles by route on the projector's HTTP API, checked by @app/config's AccessControl (the node's scheme: the
 * same tokens file format, 401/403 bodies, start-up refusal off loopback). Admin implies read.
 * - none: `GET /health`, `GET /ready` (probes);
 * - read: every other GET (`/status`, `/metrics`, `/read-models…`), and a route that does not exist (so only
 *   a client with a token learns it is a 404);
 * - admin: every other method on a route that exists (`POST /read-models/{name}/rebuild`; a new route is
 *   admin-only until listed here).
 * Routes are told apart by fastify's matched route pattern, not by the raw URL.
 */
const publicRoutes = new Set(['/health', '/ready']);

export function requiredRole(method: string, route: string | undefined): Role | null {
  if (route === undefined) return 'read';
  if (method === 'GET' || method === 'HEAD') return publicRoutes.has(route) ? null : 'read';
  return 'admin';
}
