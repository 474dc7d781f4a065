import { Controller, Get, Header, Inject } from '@nestjs/common';
import { ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { ApiError } from '../http/api-error';
import { NodeRuntime } from '../runtime/node-runtime';
import { MetricsService } from '../services/metrics.service';
import { NODE_RUNTIME } from '../services/tokens';

@ApiTags('operations')
@Controller()
export class OpsController {
  constructor(
    @Inject(NODE_RUNTIME) private readonly rt: NodeRuntime,
    private readonly metrics: MetricsService,
  ) {}

  @Get('health')
  @ApiOperation({ summary: 'The process is up' })
  health() {
    return { status: 'ok', nodeId: this.rt.config.nodeId };
  }

  @Get('ready')
  @ApiOperation({
    summary:
      'Member of a cluster with a known leader, applied up to the commit index seen at start (503 otherwise)',
  })
  ready() {
    const s = this.rt.node.status();
    const c = s.config;
    const member = [...c.voters, ...c.outgoing, ...c.learners].includes(this.rt.config.nodeId);
    const checks = {
      member,
      leaderKnown: s.leaderId !== null,
      caughtUp: s.caughtUp,
      storageOk: s.storageFailed === null,
    };
    if (Object.values(checks).every(Boolean))
      return { ready: true, nodeId: this.rt.config.nodeId, leaderId: s.leaderId, ...checks };
    const failing = Object.entries(checks)
      .filter(([, ok]) => !ok)
      .map(([k]) => k);
    throw new ApiError(503, 'unavailable', `not ready: ${failing.join(', ')} false`, checks, {
      'Retry-After': '1',
    });
  }

  @Get('metrics')
  @ApiOperation({ summary: 'Prometheus metrics' })
  @ApiProduces('text/plain')
  @Header('content-type', 'text/plain; version=0.0.4; charset=utf-8')
  scrape() {
    return this.metrics.text();
  }
}
