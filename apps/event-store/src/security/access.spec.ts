import { requiredRole } from './access';

describe('requiredRole (by method and the route fastify matched)', () => {
  it.each([
    ['GET', '/health', null],
    ['GET', '/ready', null],
    ['GET', '/docs', null],
    ['GET', '/docs-json', null],
    ['HEAD', '/health', null],
    ['GET', '/metrics', 'read'],
    ['GET', '/cluster', 'read'],
    ['GET', '/streams/:streamId', 'read'],
    ['GET', '/streams/$all/subscribe', 'read'],
    ['GET', '/streams/:streamId/subscribe', 'read'],
    ['GET', '/projections/:name', 'read'],
    ['POST', '/streams/:streamId/events', 'write'],
    ['POST', '/cluster/members', 'admin'],
    ['DELETE', '/cluster/members/:id', 'admin'],
    ['POST', '/cluster/leadership-transfer', 'admin'],
    ['POST', '/cluster/snapshot', 'admin'],
    ['POST', '/projections/:name/reset', 'admin'],
    ['POST', '/health', 'admin'],
    ['GET', undefined, 'read'],
    ['POST', undefined, 'read'],
  ])('%s %s needs %s', (method, route, role) => {
    expect(requiredRole(method, route)).toBe(role);
  });
});
