import type { Role } from '@app/config';

/**
 * Roles by route on a node (admin implies write implies read); the checks themselves (tokens, 401/403, the
 * rate limit) are @app/config's AccessControl, shared with the projector. One AccessControl serves both ways
 * into the node, the fastify routes (guardAccess's onRequest hook, before any byte of a body is read) and the
 * append fast path (append-fast-path.ts), so the two cannot disagree.
 *
 * - none: `GET /health`, `GET /ready` (probes) and the OpenAPI document and UI under `/docs` (they describe
 *   the API, not its data);
 * - read: every other GET (streams, $all, subscriptions, projections, `/cluster`, `/metrics`);
 * - write: `POST /streams/{streamId}/events`;
 * - admin: every other method on a route that exists (cluster membership, leadership transfer, snapshot,
 *   projection reset) — a new route is admin-only until listed here.
 * A request for a route that does not exist needs read (so only a client with a token learns it is a 404).
 * Routes are told apart by fastify's matched route pattern, not by the raw URL, so an escaped path
 * (`/cluster/%73napshot`) gets the role of the route it reaches.
 */

/** Routes that answer without a token (GET/HEAD only). */
const publicRoutes = new Set(['/health', '/ready', '/docs', '/docs/:file', '/docs-json', '/docs-yaml']);
export const appendRoute = '/streams/:streamId/events';

/** The role a request needs (null: none), from its method and fastify's matched route pattern. */
export function requiredRole(method: string, route: string | undefined): Role | null {
  const read = method === 'GET' || method === 'HEAD';
  if (route === undefined) return 'read';
  if (read) return publicRoutes.has(route) ? null : 'read';
  if (method === 'POST' && route === appendRoute) return 'write';
  return 'admin';
}
