import { BadRequestException, NotFoundException } from '@nestjs/common';
import { NodeError, RaftError } from '@app/consensus';
import { EventStoreError } from '@app/event-store';
import { ApiError } from './api-error';
import { LeaderLocator, toApiResponse } from './error-mapping';

const leader = (
  id: string | null,
  urls: Record<string, string> = { n2: 'http://127.0.0.1:7002' },
): LeaderLocator => ({
  leaderId: () => id,
  httpUrlOf: (x) => urls[x] ?? null,
});
const req = { url: '/streams/order-1/events?x=1' };

describe('errors to API.md statuses', () => {
  it('not_leader with a known leader: 307 to the same path and query on the leader, with Raft-Leader', () => {
    const r = toApiResponse(new NodeError('not_leader', 'not me', 'n2'), req, leader('n2'));
    expect(r.status).toBe(307);
    expect(r.headers).toEqual({
      Location: 'http://127.0.0.1:7002/streams/order-1/events?x=1',
      'Raft-Leader': 'n2',
    });
  });

  it('not_leader with no known leader, unavailable, leadership lost, stopped: 503 with Retry-After', () => {
    for (const e of [
      new NodeError('not_leader', 'x'),
      new NodeError('unavailable', 'x'),
      new RaftError('leadership_lost', 'x'),
      new NodeError('stopped', 'x'),
    ]) {
      const r = toApiResponse(e, req, leader(null));
      expect([r.status, r.body?.error, r.headers['Retry-After']]).toEqual([503, 'unavailable', '1']);
    }
  });

  it('timeout: 504; overloaded: 503 overloaded; invalid_request: 400', () => {
    expect(toApiResponse(new NodeError('timeout', 'x'), req, leader(null)).status).toBe(504);
    expect(toApiResponse(new NodeError('overloaded', 'x'), req, leader(null)).body?.error).toBe('overloaded');
    expect(toApiResponse(new RaftError('invalid_request', 'x'), req, leader(null)).status).toBe(400);
  });

  it('domain errors: 400 invalid_request with details, 413 payload_too_large', () => {
    const bad = toApiResponse(
      new EventStoreError('invalid_request', 'events[0].id: not a UUID', [
        { field: 'events[0].id', problem: 'not a UUID' },
      ]),
      req,
      leader(null),
    );
    expect(bad).toMatchObject({
      status: 400,
      body: {
        error: 'invalid_request',
        message: 'events[0].id: not a UUID',
        details: [{ field: 'events[0].id' }],
      },
    });
    expect(toApiResponse(new EventStoreError('payload_too_large', 'x'), req, leader(null)).status).toBe(413);
  });

  it('an ApiError with a fixed body is sent exactly', () => {
    const body = { error: 'wrong_expected_revision', streamId: 's', expectedRevision: 3, actualRevision: -1 };
    expect(toApiResponse(ApiError.withBody(409, body), req, leader(null)).body).toEqual(body);
  });

  it("fastify's body errors: 413, 415, 400", () => {
    const fst = (code: string, statusCode: number) => Object.assign(new Error('x'), { code, statusCode });
    expect(toApiResponse(fst('FST_ERR_CTP_BODY_TOO_LARGE', 413), req, leader(null)).body?.error).toBe(
      'payload_too_large',
    );
    expect(toApiResponse(fst('FST_ERR_CTP_INVALID_MEDIA_TYPE', 415), req, leader(null)).status).toBe(415);
    expect(toApiResponse(fst('FST_ERR_CTP_INVALID_JSON_BODY', 400), req, leader(null)).body?.error).toBe(
      'invalid_request',
    );
  });

  it('Nest HTTP exceptions keep their 4xx; anything unknown is a logged 500', () => {
    expect(toApiResponse(new NotFoundException('Cannot GET /x'), req, leader(null)).body?.error).toBe(
      'not_found',
    );
    expect(toApiResponse(new BadRequestException('bad'), req, leader(null)).status).toBe(400);
    const r = toApiResponse(new TypeError('boom'), req, leader(null));
    expect([r.status, r.unexpected]).toEqual([500, true]);
  });
});
