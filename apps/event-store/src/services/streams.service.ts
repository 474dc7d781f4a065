import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import {
  AllPage,
  AppendResult,
  DEFAULT_LIMITS,
  encodeCommand,
  EventStoreLimits,
  prepareAppend,
  StreamPage,
} from '@app/event-store';
import { ApiError } from '../http/api-error';
import { AppendBodyDto, ReadAllQuery, ReadStreamQuery } from '../http/dto';
import { NodeRuntime } from '../runtime/node-runtime';
import { AppendBatcher } from './append-batcher';
import { AppendStages } from './append-stages';
import { NODE_RUNTIME } from './tokens';

export interface AppendResponse {
  streamId: string;
  firstRevision: number;
  lastRevision: number;
  firstPosition: number;
  lastPosition: number;
}

/** Appends through Raft and reads from the applied state (after a ReadIndex barrier when linearizable). */
@Injectable()
export class StreamsService {
  private readonly limits: EventStoreLimits;
  readonly batcher: AppendBatcher;
  readonly stages = new AppendStages();

  constructor(@Inject(NODE_RUNTIME) private readonly rt: NodeRuntime) {
    const c = rt.config;
    this.limits = {
      ...DEFAULT_LIMITS,
      appendBytesMax: c.appendBodyBytesMax,
      eventsPerAppendMax: c.appendEventsMax,
      eventBytesMax: c.eventBytesMax,
    };
    this.batcher = new AppendBatcher((command) => rt.node.propose(command), undefined, this.stages);
  }

  /** `receivedMs`: performance.now() when the request's head was read, for the `http` stage. */
  async append(streamId: string, body: AppendBodyDto, receivedMs?: number): Promise<AppendResponse> {
    const command = prepareAppend(
      { streamId, expectedRevision: body.expectedRevision, events: body.events },
      this.limits,
      new Date(),
      randomUUID,
    );
    this.rt.requireLeaderToPropose();
    const encoded = encodeCommand(command);
    if (receivedMs !== undefined) this.stages.observe('http', performance.now() - receivedMs);
    return toAppendResponse(await this.batcher.submit(encoded));
  }

  async readStream(streamId: string, q: ReadStreamQuery): Promise<StreamPage> {
    await this.rt.readBarrier(q.consistency);
    const page = this.rt.store.readStream(streamId, { from: q.from, limit: q.limit, direction: q.direction });
    if (!page)
      throw ApiError.withBody(404, {
        error: 'stream_not_found',
        message: `stream ${streamId} does not exist`,
      });
    return page;
  }

  async readAll(q: ReadAllQuery): Promise<AllPage> {
    await this.rt.readBarrier(q.consistency);
    const types = q.types && q.types.length > 0 ? q.types : undefined;
    return this.rt.store.readAll({
      from: q.from,
      limit: q.limit,
      direction: q.direction,
      types,
      streamPrefix: q.streamPrefix || undefined,
    });
  }
}

function toAppendResponse(r: AppendResult): AppendResponse {
  if (r === undefined || r === null) throw new Error('append applied without a result');
  if (r.ok) {
    return {
      streamId: r.streamId,
      firstRevision: r.firstRevision,
      lastRevision: r.lastRevision,
      firstPosition: r.firstPosition,
      lastPosition: r.lastPosition,
    };
  }
  switch (r.error) {
    case 'wrong_expected_revision':
      throw ApiError.withBody(409, {
        error: r.error,
        streamId: r.streamId,
        expectedRevision: r.expectedRevision,
        actualRevision: r.actualRevision,
      });
    case 'idempotency_conflict':
      throw ApiError.withBody(409, {
        error: r.error,
        message: r.message,
        streamId: r.streamId,
        eventId: r.eventId,
      });
    default:
      throw new Error(`append was applied as an invalid command: ${r.message}`);
  }
}
