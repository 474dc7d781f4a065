import { applyDecorators, PipeTransform } from '@nestjs/common';
import { ApiBody, ApiQuery } from '@nestjs/swagger';
import { z } from 'zod';
import { streamIdProblem } from '@app/event-store';
import { ApiError } from './api-error';

/**
 * Request DTOs as zod schemas: one source for validation (errors name the field) and for the OpenAPI
 * document (`ZodBody`/`ZodQuery` publish the same schema at /docs).
 */

const readLimitMax = 4096;
const typesMax = 64;

const nonNegativeInt = z
  .string()
  .regex(/^\d{1,16}$/, 'must be an integer >= 0')
  .transform(Number)
  .refine(Number.isSafeInteger, 'must be a safe integer');

export const expectedRevisionSchema = z.union([
  z.enum(['any', 'no_stream', 'stream_exists']),
  z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
]);

export const appendEventSchema = z.object({
  id: z
    .string()
    .optional()
    .describe('UUID chosen by the client (any version); assigned by the server when absent'),
  type: z.string().min(1).max(256),
  data: z.unknown().optional(),
  metadata: z.unknown().optional(),
});

export const appendBodySchema = z.object({
  expectedRevision: expectedRevisionSchema.optional().describe('default "any"'),
  events: z.array(appendEventSchema).min(1),
});
export type AppendBodyDto = z.infer<typeof appendBodySchema>;

const consistency = z.enum(['linearizable', 'local']).default('linearizable');
const direction = z.enum(['forward', 'backward']).default('forward');
const limit = nonNegativeInt
  .refine((n) => n >= 1 && n <= readLimitMax, `must be 1-${readLimitMax}`)
  .optional();

export const readStreamQuerySchema = z.object({
  from: nonNegativeInt.optional().describe('revision; default 0 forward, the last backward'),
  limit: limit.describe(`default 100, at most ${readLimitMax}`),
  direction,
  consistency,
});
export type ReadStreamQuery = z.infer<typeof readStreamQuerySchema>;

const typesList = z
  .string()
  .max(16 * 1024)
  .transform((s) => s.split(',').filter((t) => t !== ''))
  .refine((a) => a.length <= typesMax, `at most ${typesMax} types`)
  .optional()
  .describe('comma-separated event types');
const streamPrefix = z.string().max(256).optional().describe('only streams whose id starts with this');

export const readAllQuerySchema = readStreamQuerySchema.extend({
  from: nonNegativeInt.optional().describe('position; default 0 forward, the last backward'),
  types: typesList,
  streamPrefix,
});
export type ReadAllQuery = z.infer<typeof readAllQuerySchema>;

export const subscribeQuerySchema = z.object({
  from: nonNegativeInt.optional().describe('first revision/position to deliver; default: only new events'),
});
export const subscribeAllQuerySchema = subscribeQuerySchema.extend({ types: typesList, streamPrefix });
export type SubscribeAllQuery = z.infer<typeof subscribeAllQuerySchema>;

export const consistencyQuerySchema = z.object({ consistency });
export type ConsistencyQuery = z.infer<typeof consistencyQuerySchema>;

const projectionPageMax = 10_000;
export const projectionQuerySchema = z.object({
  consistency,
  after: z
    .string()
    .max(64 * 1024)
    .optional()
    .describe(
      "partitioned projections: only partitions with keys after this one (the previous page's `next`)",
    ),
  limit: z
    .string()
    .regex(/^\d{1,6}$/, 'must be an integer')
    .transform(Number)
    .refine((n) => n >= 1 && n <= projectionPageMax, `must be 1-${projectionPageMax}`)
    .optional()
    .describe(`partitioned projections: partitions per page, default and at most ${projectionPageMax}`),
});
export type ProjectionQuery = z.infer<typeof projectionQuerySchema>;

export const addMemberSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1-64 characters from [A-Za-z0-9._-]'),
  httpUrl: z.string().regex(/^https?:\/\/[^/\s]+\/?$/, 'expected http(s)://host:port'),
  raftAddress: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port'),
  promote: z
    .boolean()
    .default(true)
    .describe('promote to voter once caught up (default true); false keeps a learner'),
});
export type AddMemberDto = z.infer<typeof addMemberSchema>;

export const leadershipTransferSchema = z.object({ to: z.string().min(1).max(64).optional() });

/** Validates and transforms with `schema`; a failure is a 400 naming the field. */
export class ZodPipe<S extends z.ZodType> implements PipeTransform {
  constructor(
    private readonly schema: S,
    private readonly what: 'body' | 'query',
  ) {}

  transform(value: unknown): z.infer<S> {
    const input =
      this.what === 'body' && (value === undefined || value === null || value === '') ? {} : value;
    const r = this.schema.safeParse(input);
    if (r.success) return r.data;
    const details = r.error.issues
      .slice(0, 20)
      .map((i) => ({ field: i.path.map(String).join('.') || this.what, problem: i.message }));
    throw ApiError.invalid(`${details[0].field}: ${details[0].problem}`, details);
  }
}

/** A path parameter holding a stream id (API.md: 1-256 of [A-Za-z0-9._:@-], not starting with `$`). */
export class StreamIdPipe implements PipeTransform {
  transform(value: unknown): string {
    const problem = streamIdProblem(value);
    if (problem) throw ApiError.invalid(`streamId: ${problem}`, [{ field: 'streamId', problem }]);
    return value as string;
  }
}

function openApiSchema(schema: z.ZodType, io: 'input' | 'output' = 'input'): Record<string, any> {
  return z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'any' }) as Record<string, any>;
}

export function ZodBody(schema: z.ZodType) {
  return applyDecorators(ApiBody({ schema: openApiSchema(schema) as any }));
}

export function ZodQuery(schema: z.ZodObject<any>) {
  const json = openApiSchema(schema);
  const props = (json.properties ?? {}) as Record<string, any>;
  return applyDecorators(
    ...Object.entries(props).map(([name, s]) =>
      ApiQuery({ name, required: false, schema: s, description: s.description }),
    ),
  );
}
