import { Logger } from '../logger';
import { ProjectionDefinition, ProjectionInfo, ProjectionView } from './define';

export interface ProjectionEngineOptions {
  logger?: Logger;
}

/** Keeps projections in memory; fed by the state machine on apply, rebuilt by replay. */
export class ProjectionEngine {
  constructor(definitions: ProjectionDefinition<any>[], opts: ProjectionEngineOptions = {}) {
    void definitions;
    void opts;
  }

  names(): string[] {
    throw new Error('not implemented');
  }

  list(): ProjectionInfo[] {
    throw new Error('not implemented');
  }

  get(name: string): ProjectionView | undefined {
    void name;
    throw new Error('not implemented');
  }

  getPartition(name: string, key: string): unknown | undefined {
    void name;
    void key;
    throw new Error('not implemented');
  }

  /** Starts a rebuild from position 0 in the background; throws if the projection is unknown. */
  reset(name: string): void {
    void name;
    throw new Error('not implemented');
  }
}
