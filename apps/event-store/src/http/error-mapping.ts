import { HttpException } from '@nestjs/common';
import { ZodError } from 'zod';
import { ApiError, ApiErrorResponse } from './api-error';

/** Where the leader's REST API is, for 307 redirects; null when unknown. */
export interface LeaderLocator {
  leaderId(): string | null;
  httpUrlOf(id: string): string | null;
}

export interface RequestInfo {
  /** Path and query exactly as received (`/streams/a/events?x=1`). */
  url: string;
}

const retryAfterS = '1';

/**
 * Maps any thrown value to API.md's status and body. Client mistakes are 4xx; only a value nobody
 * recognises becomes 500 (and is logged by the caller).
 */
export function toApiResponse(
  err: unknown,
  req: RequestInfo,
  leader: LeaderLocator,
): ApiErrorResponse & { unexpected: boolean } {
  const r = (status: number, body: Record<string, unknown> | null, headers: Record<string, string> = {}) => ({
    status,
    body,
    headers,
    unexpected: false,
  });
  if (err instanceof ApiError) {
    return r(
      err.status,
      err.body ?? withDetails({ error: err.error, message: err.message }, err.details),
      err.headers,
    );
  }
  if (err instanceof ZodError) {
    return r(400, { error: 'invalid_request', message: zodMessage(err), details: zodDetails(err) });
  }
  const e = err as { name?: string; code?: unknown; message?: string; statusCode?: unknown } | null;
  if (e && (e.name === 'NodeError' || e.name === 'RaftError') && typeof e.code === 'string') {
    return fromNodeError(e as NodeLikeError, req, leader, r);
  }
  if (e && e.name === 'EventStoreError' && typeof e.code === 'string') {
    return fromEventStoreError(e as EventStoreLikeError, r);
  }
  if (err instanceof HttpException) {
    return fromHttpException(err, r);
  }
  if (e && typeof e.statusCode === 'number' && typeof e.code === 'string' && e.code.startsWith('FST_')) {
    return fromFastifyError(e.statusCode, e.code, e.message ?? '', r);
  }
  return {
    status: 500,
    body: { error: 'internal', message: 'internal error; see the node log' },
    headers: {},
    unexpected: true,
  };
}

type Reply = (
  status: number,
  body: Record<string, unknown> | null,
  headers?: Record<string, string>,
) => ApiErrorResponse & { unexpected: boolean };
interface NodeLikeError {
  code: string;
  message: string;
  leaderId?: string | null;
}
interface EventStoreLikeError {
  code: string;
  message: string;
  details?: Record<string, unknown>;
  streamId?: string;
  expectedRevision?: unknown;
  actualRevision?: number;
}

function fromNodeError(e: NodeLikeError, req: RequestInfo, leader: LeaderLocator, r: Reply) {
  switch (e.code) {
    case 'not_leader': {
      const leaderId = e.leaderId ?? leader.leaderId();
      const base = leaderId ? leader.httpUrlOf(leaderId) : null;
      if (!leaderId || !base) {
        return r(
          503,
          { error: 'unavailable', message: 'no leader known (election in progress?); retry shortly' },
          { 'Retry-After': retryAfterS },
        );
      }
      const location = base.replace(/\/+$/, '') + req.url;
      return r(
        307,
        {
          error: 'not_leader',
          message: `this node is not the leader; the leader is ${leaderId}`,
          leaderId,
          leaderUrl: base,
        },
        { Location: location, 'Raft-Leader': leaderId },
      );
    }
    case 'timeout':
      return r(504, {
        error: 'timeout',
        message: `${e.message}; the outcome is unknown: retry with the same event ids`,
      });
    case 'invalid_request':
      return r(400, { error: 'invalid_request', message: e.message });
    case 'conflict':
    case 'config_change_in_progress':
      return r(409, { error: 'conflict', message: e.message });
    case 'overloaded':
      return r(
        503,
        { error: 'overloaded', message: `${e.message}; retry shortly` },
        { 'Retry-After': retryAfterS },
      );
    default:
      // unavailable, leadership_lost, transfer_in_progress, stopped, storage_failed
      return r(503, { error: 'unavailable', message: e.message }, { 'Retry-After': retryAfterS });
  }
}

function fromEventStoreError(e: EventStoreLikeError, r: Reply) {
  switch (e.code) {
    case 'wrong_expected_revision':
      return r(409, {
        error: 'wrong_expected_revision',
        streamId: e.streamId ?? e.details?.streamId,
        expectedRevision: e.expectedRevision ?? e.details?.expectedRevision,
        actualRevision: e.actualRevision ?? e.details?.actualRevision,
      });
    case 'payload_too_large':
    case 'too_large':
      return r(413, { error: 'payload_too_large', message: e.message });
    case 'stream_not_found':
      return r(404, { error: 'stream_not_found' });
    case 'not_found':
    case 'projection_not_found':
    case 'partition_not_found':
      return r(404, { error: e.code, message: e.message });
    case 'unavailable':
      return r(503, { error: 'unavailable', message: e.message }, { 'Retry-After': retryAfterS });
    default:
      return r(400, withDetails({ error: 'invalid_request', message: e.message }, e.details));
  }
}

function fromHttpException(err: HttpException, r: Reply) {
  const status = err.getStatus();
  const message = err.message;
  if (status === 404) {
    return r(404, { error: 'not_found', message: `no route ${message.replace(/^Cannot /, '')}` });
  }
  if (status === 413) return r(413, { error: 'payload_too_large', message });
  if (status === 415) return r(415, { error: 'unsupported_media_type', message });
  if (status === 405) return r(405, { error: 'method_not_allowed', message });
  if (status >= 400 && status < 500)
    return r(status === 400 ? 400 : status, { error: 'invalid_request', message });
  return r(status, { error: 'internal', message });
}

function fromFastifyError(status: number, code: string, message: string, r: Reply) {
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE' || status === 413)
    return r(413, { error: 'payload_too_large', message: 'request body exceeds the limit' });
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || status === 415) {
    return r(415, {
      error: 'unsupported_media_type',
      message: 'send JSON with Content-Type: application/json',
    });
  }
  if (status >= 400 && status < 500)
    return r(400, { error: 'invalid_request', message: `invalid request body: ${message}` });
  return r(status, { error: 'internal', message });
}

function withDetails(body: Record<string, unknown>, details: unknown): Record<string, unknown> {
  return details === undefined ? body : { ...body, details };
}

export function zodDetails(err: ZodError): { field: string; message: string }[] {
  return err.issues
    .slice(0, 20)
    .map((i) => ({ field: i.path.map(String).join('.') || '(body)', message: i.message }));
}

export function zodMessage(err: ZodError): string {
  const first = err.issues[0];
  if (!first) return 'invalid request';
  const field = first.path.map(String).join('.') || 'body';
  return `${field}: ${first.message}`;
}
