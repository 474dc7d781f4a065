import { orders } from './orders';
import type { ReadModel } from './read-model';
import { streamSummaries } from './stream-summaries';

export { defineReadModel } from './read-model';
export type { EventHandler, ReadModel, Row } from './read-model';
export { builtInMigrations, schemaOf } from './migrations';

/** The read models every projector runs (PROJECTOR.md): user models are added beside them in code. */
export const builtInReadModels: ReadModel[] = [streamSummaries, orders];
