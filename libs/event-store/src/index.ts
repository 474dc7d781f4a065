export * from './types';
export { EventStoreError, EventStoreErrorCode, isEventStoreError } from './errors';
export { DEFAULT_LIMITS, EventStoreLimits, STORAGE_DEFAULTS } from './limits';
export { Logger } from './logger';
export {
  prepareAppend,
  encodeCommand,
  encodeBatch,
  decodeCommand,
  streamIdProblem,
  expectedRevisionProblem,
} from './command';
export { isUuid, newEventId } from './uuid';
export {
  EventStoreStateMachine,
  EventStoreOptions,
  EventStoreStats,
  EventSubscription,
} from './state-machine';
export { expectationHolds } from './expected-revision';
export { MergeThread } from './storage/stream-runs/merge-thread';
export {
  defineProjection,
  ProjectionDefinition,
  ProjectionInfo,
  ProjectionStatus,
  ProjectionView,
} from './projections/define';
export { ProjectionEngine, ProjectionEngineOptions, ProjectionCheckpoint } from './projections/engine';
export {
  builtInProjections,
  streamsProjection,
  eventTypesProjection,
  categoriesProjection,
  categoryOf,
} from './projections/builtins';
export { addLine, OrderLine, ordersProjection, OrderState, toLine, totalOf } from './examples/orders';
