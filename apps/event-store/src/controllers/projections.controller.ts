import { Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import {
  ConsistencyQuery,
  consistencyQuerySchema,
  ProjectionQuery,
  projectionQuerySchema,
  ZodPipe,
  ZodQuery,
} from '../http/dto';
import { ProjectionsService } from '../services/projections.service';

@ApiTags('projections')
@Controller('projections')
export class ProjectionsController {
  constructor(private readonly projections: ProjectionsService) {}

  @Get()
  @ApiOperation({ summary: 'Every projection with status, position, lag and rebuild progress' })
  list() {
    return this.projections.list();
  }

  @Get(':name')
  @ApiOperation({
    summary: "A projection's state; a partitioned one a page at a time (`next` when more follow)",
  })
  @ZodQuery(projectionQuerySchema)
  get(@Param('name') name: string, @Query(new ZodPipe(projectionQuerySchema, 'query')) q: ProjectionQuery) {
    return this.projections.get(name, q.consistency, { after: q.after, limit: q.limit });
  }

  @Get(':name/:key')
  @ApiOperation({ summary: "One partition's state (404 if none)" })
  @ZodQuery(consistencyQuerySchema)
  partition(
    @Param('name') name: string,
    @Param('key') key: string,
    @Query(new ZodPipe(consistencyQuerySchema, 'query')) q: ConsistencyQuery,
  ) {
    return this.projections.partition(name, key, q.consistency);
  }

  @Post(':name/reset')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Rebuild the projection by replaying from position 0 (progress in GET /projections)',
  })
  reset(@Param('name') name: string) {
    return this.projections.reset(name);
  }
}
