import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiOperation, ApiProduces, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  appendBodySchema,
  AppendBodyDto,
  readAllQuerySchema,
  ReadAllQuery,
  readStreamQuerySchema,
  StreamIdPipe,
  subscribeAllQuerySchema,
  SubscribeAllQuery,
  ZodBody,
  ZodPipe,
  ZodQuery,
} from '../http/dto';
import { StreamsService } from '../services/streams.service';
import { SubscriptionsService } from '../services/subscriptions.service';

const all = '$all';

@ApiTags('streams')
@Controller('streams')
export class StreamsController {
  constructor(
    private readonly streams: StreamsService,
    private readonly subscriptions: SubscriptionsService,
  ) {}

  @Get(all)
  @ApiOperation({ summary: 'Read all events in global position order (with type and stream-prefix filters)' })
  @ZodQuery(readAllQuerySchema)
  readAll(@Query(new ZodPipe(readAllQuerySchema, 'query')) q: ReadAllQuery) {
    return this.streams.readAll(q);
  }

  @Get(`${all}/subscribe`)
  @ApiOperation({ summary: 'Subscribe to all events (Server-Sent Events; id = position)' })
  @ApiProduces('text/event-stream')
  @ZodQuery(subscribeAllQuerySchema)
  subscribeAll(
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
    @Query(new ZodPipe(subscribeAllQuerySchema, 'query')) q: SubscribeAllQuery,
    @Headers('last-event-id') lastEventId?: string,
  ) {
    this.subscriptions.serve(
      req,
      reply,
      { all: true, types: q.types?.length ? q.types : undefined, streamPrefix: q.streamPrefix || undefined },
      SubscriptionsService.startFrom(q.from, lastEventId),
    );
  }

  @Post(':streamId/events')
  @HttpCode(201)
  @ApiOperation({ summary: 'Append events (answered after commit; 307 to the leader on a follower)' })
  @ZodBody(appendBodySchema)
  @ApiResponse({
    status: 201,
    description: '{ streamId, firstRevision, lastRevision, firstPosition, lastPosition }',
  })
  @ApiResponse({ status: 409, description: 'wrong_expected_revision' })
  append(
    @Param('streamId', StreamIdPipe) streamId: string,
    @Body(new ZodPipe(appendBodySchema, 'body')) body: AppendBodyDto,
  ) {
    return this.streams.append(streamId, body);
  }

  @Get(':streamId')
  @ApiOperation({ summary: 'Read a stream (forward or backward, paged)' })
  @ZodQuery(readStreamQuerySchema)
  readStream(@Param('streamId') streamId: string, @Query() query: unknown) {
    return streamId === all
      ? this.streams.readAll(parse(readAllQuerySchema, query))
      : this.streams.readStream(new StreamIdPipe().transform(streamId), parse(readStreamQuerySchema, query));
  }

  @Get(':streamId/subscribe')
  @ApiOperation({ summary: 'Subscribe to one stream (Server-Sent Events; id = revision)' })
  @ApiProduces('text/event-stream')
  @ZodQuery(subscribeAllQuerySchema.pick({ from: true }))
  subscribe(
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
    @Param('streamId') streamId: string,
    @Query() query: unknown,
    @Headers('last-event-id') lastEventId?: string,
  ) {
    if (streamId === all)
      return this.subscribeAll(req, reply, parse(subscribeAllQuerySchema, query), lastEventId);
    const q = parse(subscribeAllQuerySchema.pick({ from: true }), query);
    this.subscriptions.serve(
      req,
      reply,
      { streamId: new StreamIdPipe().transform(streamId) },
      SubscriptionsService.startFrom(q.from, lastEventId),
    );
  }
}

function parse<T>(schema: { safeParse(v: unknown): unknown } & import('zod').ZodType<T>, value: unknown): T {
  return new ZodPipe(schema, 'query').transform(value) as T;
}
