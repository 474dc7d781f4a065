export type {
  AllPage,
  AppendResult,
  ClientLogger,
  ClientOptions,
  ClusterMember,
  ClusterView,
  Consistency,
  Direction,
  EventEnvelope,
  ExpectedRevision,
  NewEvent,
  ReadAllOptions,
  ReadStreamOptions,
  RetryOptions,
  StreamPage,
  SubscribeAllOptions,
  SubscribeOptions,
  Subscription,
} from './types';
export {
  EventStoreError,
  InvalidRequestError,
  StreamNotFoundError,
  UnavailableError,
  UnknownOutcomeError,
  WrongExpectedRevisionError,
} from './errors';
export { EventStoreClient } from './client';
