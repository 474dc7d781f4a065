import { Inject, Injectable } from '@nestjs/common';
import { ProjectionInfo, ProjectionView } from '@app/event-store';
import { ApiError } from '../http/api-error';
import { NodeRuntime } from '../runtime/node-runtime';
import { NODE_RUNTIME } from './tokens';

/** Projections are per node (folded from its applied events); reads take the same consistency as stream reads. */
@Injectable()
export class ProjectionsService {
  constructor(@Inject(NODE_RUNTIME) private readonly rt: NodeRuntime) {}

  list(): ProjectionInfo[] {
    return this.rt.store.projections.list();
  }

  async get(
    name: string,
    consistency: 'linearizable' | 'local',
    page: { after?: string; limit?: number } = {},
  ): Promise<ProjectionView> {
    this.requireKnown(name);
    await this.rt.readBarrier(consistency);
    const view = this.rt.store.projections.get(name, page);
    if (!view) throw this.unknown(name);
    return view;
  }

  async partition(name: string, key: string, consistency: 'linearizable' | 'local'): Promise<unknown> {
    this.requireKnown(name);
    await this.rt.readBarrier(consistency);
    const state = this.rt.store.projections.getPartition(name, key);
    if (state === undefined)
      throw ApiError.withBody(404, {
        error: 'not_found',
        message: `projection ${name} has no partition ${JSON.stringify(key)}`,
      });
    return state;
  }

  reset(name: string): { name: string; status: string } {
    this.requireKnown(name);
    this.rt.store.projections.reset(name);
    return { name, status: 'rebuilding' };
  }

  private requireKnown(name: string): void {
    if (!this.rt.store.projections.names().includes(name)) throw this.unknown(name);
  }

  private unknown(name: string): ApiError {
    return ApiError.withBody(404, {
      error: 'projection_not_found',
      message: `no projection named ${JSON.stringify(name.slice(0, 200))}; known: ${this.rt.store.projections.names().join(', ')}`,
    });
  }
}
