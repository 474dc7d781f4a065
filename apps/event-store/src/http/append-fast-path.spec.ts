import { isValidAppendBody } from './append-fast-path';
import { appendBodySchema } from './dto';

/** The fast path skips zod only for bodies zod accepts: the cheap check must never vouch for a body zod refuses. */
describe('isValidAppendBody agrees with appendBodySchema', () => {
  const ev = { type: 'OrderPlaced', data: { n: 1 } };
  const bodies: unknown[] = [
    { events: [ev] },
    { expectedRevision: 'any', events: [ev] },
    { expectedRevision: 'no_stream', events: [ev] },
    { expectedRevision: 'stream_exists', events: [ev] },
    { expectedRevision: 0, events: [ev] },
    { expectedRevision: 7, events: [ev, { ...ev, id: '0b5e1c9a-3f1e-4d43-9a43-0f0c2b8a1e77' }] },
    { expectedRevision: -1, events: [ev] },
    { expectedRevision: 1.5, events: [ev] },
    { expectedRevision: Number.MAX_SAFE_INTEGER + 1, events: [ev] },
    { expectedRevision: null, events: [ev] },
    { expectedRevision: 'latest', events: [ev] },
    { events: [] },
    { events: {} },
    {},
    null,
    [],
    'x',
    { events: [null] },
    { events: [[]] },
    { events: [{ data: 1 }] },
    { events: [{ type: '' }] },
    { events: [{ type: 'x'.repeat(256) }] },
    { events: [{ type: 'x'.repeat(257) }] },
    { events: [{ type: 5 }] },
    { events: [{ type: 'A', id: null }] },
    { events: [{ type: 'A', id: 5 }] },
    { events: [{ type: 'A', id: 'not-a-uuid' }] },
    { events: [{ type: 'A', extra: true }], more: 1 },
  ];

  it.each(bodies.map((b) => [JSON.stringify(b)?.slice(0, 60), b]))('%s', (_name, body) => {
    const zodOk = appendBodySchema.safeParse(body).success;
    if (isValidAppendBody(body)) expect(zodOk).toBe(true);
  });

  it('vouches for the ordinary bodies (so the fast path is taken)', () => {
    expect(isValidAppendBody({ events: [ev] })).toBe(true);
    expect(isValidAppendBody({ expectedRevision: 3, events: [ev, ev] })).toBe(true);
    expect(isValidAppendBody({ events: [{ type: 'A', id: null }] })).toBe(false);
  });
});
