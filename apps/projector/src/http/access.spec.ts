import { requiredRole } from './access';

describe("the projector's roles by route (method and the route fastify matched)", () => {
  it.each([
    ['GET', '/health', null],
    ['GET', '/ready', null],
    ['HEAD', '/ready', null],
    ['GET', '/status', 'read'],
    ['GET', '/metrics', 'read'],
    ['GET', '/read-models', 'read'],
    ['GET', '/read-models/:name', 'read'],
    ['GET', '/read-models/:name/:id', 'read'],
    ['POST', '/read-models/:name/rebuild', 'admin'],
    ['POST', '/health', 'admin'],
    ['DELETE', '/read-models/:name', 'admin'],
    ['GET', undefined, 'read'],
    ['POST', undefined, 'read'],
  ])('%s %s needs %s', (method, route, role) => {
    expect(requiredRole(method, route)).toBe(role);
  });
});
