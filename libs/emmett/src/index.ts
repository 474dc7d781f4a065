export { getRaftEventStore, RaftEventStore } from './raft-event-store';
export type { EmmettClient, RaftEventStoreOptions, RaftReadEventMetadata } from './raft-event-store';
export {
  globalPositionOf,
  RaftEventStoreDefaultStreamVersion,
  streamPositionOf,
  streamVersionOf,
  toExpectedRevision,
  toRevisionRange,
} from './versions';
export type { RevisionRange } from './versions';
