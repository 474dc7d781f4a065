import { DynamicModule, Module } from '@nestjs/common';
import { ClusterController } from './controllers/cluster.controller';
import { OpsController } from './controllers/ops.controller';
import { ProjectionsController } from './controllers/projections.controller';
import { StreamsController } from './controllers/streams.controller';
import { NodeRuntime } from './runtime/node-runtime';
import { ClusterService } from './services/cluster.service';
import { MetricsService } from './services/metrics.service';
import { ProjectionsService } from './services/projections.service';
import { StreamsService } from './services/streams.service';
import { SubscriptionsService } from './services/subscriptions.service';
import { NODE_RUNTIME } from './services/tokens';

/** The REST + SSE API of one node, over a node runtime built (and started) before the app. */
@Module({})
export class AppModule {
  static forRuntime(runtime: NodeRuntime): DynamicModule {
    return {
      module: AppModule,
      controllers: [StreamsController, ProjectionsController, ClusterController, OpsController],
      providers: [
        { provide: NODE_RUNTIME, useValue: runtime },
        StreamsService,
        SubscriptionsService,
        ProjectionsService,
        ClusterService,
        MetricsService,
      ],
    };
  }
}
