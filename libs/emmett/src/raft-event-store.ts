import {
  type Consistency,
  EventEnvelope,
  EventStoreClient,
  EventStoreError,
  NewEvent,
  StreamNotFoundError,
  StreamPage,
  WrongExpectedRevisionError,
} from '@app/client';
import {
  type AggregateStreamOptions,
  type AggregateStreamResult,
  type AppendToStreamOptions,
  type AppendToStreamResult,
  assertExpectedVersionMatchesCurrent,
  downcastRecordedMessage,
  type Event,
  type EventStore,
  type ExpectedStreamVersion,
  ExpectedVersionConflictError,
  NO_CONCURRENCY_CHECK,
  type ReadEvent,
  type ReadEventMetadataWithGlobalPosition,
  type ReadStreamOptions,
  type ReadStreamResult,
  upcastRecordedMessage,
} from '@event-driven-io/emmett';
import {
  globalPositionOf,
  RaftEventStoreDefaultStreamVersion,
  RevisionRange,
  streamPositionOf,
  streamVersionOf,
  toExpectedRevision,
  toRevisionRange,
} from './versions';

/** What the adapter needs of libs/client (an `EventStoreClient` has it). */
export type EmmettClient = Pick<EventStoreClient, 'append' | 'readStream'>;

/** The metadata of events read through the adapter: Emmett's own, with a global position. */
export type RaftReadEventMetadata = ReadEventMetadataWithGlobalPosition;

export interface RaftEventStoreOptions {
  /** Consistency of every read (default `linearizable`: it sees every append acknowledged before it began). */
  consistency?: Consistency;
  /** Events asked for per page of a stream read (1..4096, default 1000). */
  pageSize?: number;
}

/** Keys of Emmett's recorded metadata: set by the store on read, so never stored from an appended event. */
const recordedMetadataKeys = ['messageId', 'streamName', 'streamPosition', 'globalPosition'] as const;

const pageSizeDefault = 1000;
const pageSizeMax = 4096;

/**
 * Emmett's `EventStore` over the replicated event store's HTTP API (through libs/client). Versions follow
 * Emmett's in-memory store: a stream's version is its number of events (see ./versions.ts).
 */
export class RaftEventStore implements EventStore<RaftReadEventMetadata> {
  private readonly consistency: Consistency;
  private readonly pageSize: number;

  constructor(
    private readonly client: EmmettClient,
    opts: RaftEventStoreOptions = {},
  ) {
    this.consistency = opts.consistency ?? 'linearizable';
    this.pageSize = opts.pageSize ?? pageSizeDefault;
    if (!Number.isSafeInteger(this.pageSize) || this.pageSize < 1 || this.pageSize > pageSizeMax)
      throw new RangeError(`pageSize must be an integer in 1..${pageSizeMax}`);
  }

  /**
   * Folds the events `read` selects (default: all) into a state. `currentStreamVersion` is the version of the
   * state: the `streamPosition` of the last event folded, or the stream's version when none was.
   */
  async aggregateStream<State, EventType extends Event, EventPayloadType extends Event = EventType>(
    streamName: string,
    options: AggregateStreamOptions<State, EventType, RaftReadEventMetadata, EventPayloadType>,
  ): Promise<AggregateStreamResult<State, bigint>> {
    const { evolve, initialState, read } = options;
    const result = await this.readStream<EventType, EventPayloadType>(streamName, read);
    const fold = evolve as (state: State, event: ReadEvent<EventType, RaftReadEventMetadata>) => State;
    const state = result.events.reduce(fold, initialState());
    const last = result.events.at(-1);
    return {
      currentStreamVersion: last ? last.metadata.streamPosition : result.currentStreamVersion,
      state,
      streamExists: result.streamExists,
    };
  }

  /**
   * The events of a stream between `from` and `to` (inclusive stream positions, 1-based), at most `maxCount`.
   * `currentStreamVersion` is the stream's version when the read began (events appended later are left out,
   * so that it matches the events returned); 0n and `streamExists: false` when the stream does not exist.
   * `expectedStreamVersion`, when given, is checked against it (ExpectedVersionConflictError).
   */
  async readStream<EventType extends Event, EventPayloadType extends Event = EventType>(
    streamName: string,
    options?: ReadStreamOptions<bigint, EventType, EventPayloadType>,
  ): Promise<ReadStreamResult<EventType, RaftReadEventMetadata>> {
    const read = await this.readRange(streamName, toRevisionRange(options));
    const currentStreamVersion = read
      ? streamVersionOf(read.lastRevision)
      : RaftEventStoreDefaultStreamVersion;
    assertExpectedVersionMatchesCurrent(
      currentStreamVersion,
      options?.expectedStreamVersion,
      RaftEventStoreDefaultStreamVersion,
    );
    const versioning = options?.schema?.versioning;
    const events = (read?.events ?? []).map(
      (e) =>
        upcastRecordedMessage<EventType, EventPayloadType, RaftReadEventMetadata>(
          toReadEvent<EventPayloadType>(e),
          versioning,
        ) as ReadEvent<EventType, RaftReadEventMetadata>,
    );
    return { currentStreamVersion, events, streamExists: read !== null };
  }

  /**
   * Appends `events` atomically with the expected version mapped to an expected revision; a 409 becomes
   * Emmett's ExpectedVersionConflictError. `nextExpectedStreamVersion` is the stream's version after the append.
   */
  async appendToStream<EventType extends Event, EventPayloadType extends Event = EventType>(
    streamName: string,
    events: EventType[],
    options?: AppendToStreamOptions<bigint, EventType, EventPayloadType>,
  ): Promise<AppendToStreamResult<bigint>> {
    const expected = options?.expectedStreamVersion;
    const expectedRevision = toExpectedRevision(expected);
    if (events.length === 0) {
      // Nothing to write (the server refuses an empty append): only the expectation is checked.
      const current = await this.currentVersion(streamName);
      assertExpectedVersionMatchesCurrent(current, expected, RaftEventStoreDefaultStreamVersion);
      return { nextExpectedStreamVersion: current, createdNewStream: false };
    }
    const versioning = options?.schema?.versioning;
    const toStore = events.map((e) =>
      toNewEvent(downcastRecordedMessage<EventType, EventPayloadType>(e, versioning)),
    );
    try {
      const r = await this.client.append(streamName, toStore, { expectedRevision });
      return {
        nextExpectedStreamVersion: streamVersionOf(r.lastRevision),
        createdNewStream: r.firstRevision === 0,
      };
    } catch (err) {
      if (err instanceof WrongExpectedRevisionError) throw conflict(err, expected);
      throw err;
    }
  }

  /** Whether the stream has any event. */
  async streamExists(streamName: string): Promise<boolean> {
    return (await this.currentVersion(streamName)) !== RaftEventStoreDefaultStreamVersion;
  }

  /** The stream's version (0n: no stream), from one backward read of one event. */
  private async currentVersion(streamName: string): Promise<bigint> {
    try {
      const page = await this.client.readStream(streamName, {
        direction: 'backward',
        limit: 1,
        consistency: this.consistency,
      });
      return streamVersionOf(page.lastRevision);
    } catch (err) {
      if (err instanceof StreamNotFoundError) return RaftEventStoreDefaultStreamVersion;
      throw err;
    }
  }

  /**
   * The stream's events in `range`, page by page, up to the last revision the first page reported; null when
   * the stream does not exist.
   */
  private async readRange(
    streamName: string,
    range: RevisionRange,
  ): Promise<{ lastRevision: number; events: EventEnvelope[] } | null> {
    const events: EventEnvelope[] = [];
    const maxCount = range.maxCount ?? Number.MAX_SAFE_INTEGER;
    let from = range.fromRevision;
    /** The stream's last revision as the first page reported it: the read stops there. */
    let lastRevision: number | null = null;
    /** The last revision the read may return: `to`, and once known the stream's last revision. */
    let bound = range.toRevision ?? Number.MAX_SAFE_INTEGER;
    for (;;) {
      // The first page is read even when the range is empty: it tells whether the stream exists, and its version.
      const limit = Math.max(1, Math.min(this.pageSize, bound - from + 1, maxCount - events.length));
      let page: StreamPage;
      try {
        page = await this.client.readStream(streamName, { from, limit, consistency: this.consistency });
      } catch (err) {
        if (lastRevision === null && err instanceof StreamNotFoundError) return null;
        throw err;
      }
      if (lastRevision === null) {
        lastRevision = page.lastRevision;
        bound = Math.min(bound, lastRevision);
      }
      for (const e of page.events) {
        if (e.revision > bound || events.length >= maxCount) break;
        events.push(e);
      }
      const next = page.next;
      if (next === null || next === undefined || next > bound || events.length >= maxCount) break;
      if (next <= from)
        throw new EventStoreError(
          `stream ${streamName}: paging did not advance (from ${from}, next ${next})`,
        );
      from = next;
    }
    return { lastRevision, events };
  }
}

/** Emmett's `EventStore` over libs/client; see RaftEventStore. */
export function getRaftEventStore(client: EmmettClient, opts: RaftEventStoreOptions = {}): RaftEventStore {
  return new RaftEventStore(client, opts);
}

/** Our 409 as Emmett's conflict: current = the stream's version, expected = what the caller passed. */
function conflict(err: WrongExpectedRevisionError, expected: ExpectedStreamVersion | undefined) {
  const e = new ExpectedVersionConflictError<bigint>(
    streamVersionOf(err.actualRevision),
    expected ?? NO_CONCURRENCY_CHECK,
  );
  Object.defineProperty(e, 'cause', { value: err, enumerable: false, writable: true, configurable: true });
  return e;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An Emmett event as the store's event: type, data, and metadata without Emmett's recorded keys. */
function toNewEvent(e: Event): NewEvent {
  const out: NewEvent = { type: e.type, data: e.data };
  const metadata = (e as { metadata?: unknown }).metadata;
  if (isRecord(metadata)) {
    const own: Record<string, unknown> = { ...metadata };
    for (const k of recordedMetadataKeys) delete own[k];
    if (Object.keys(own).length > 0) out.metadata = own;
  }
  return out;
}

/** A stored event as Emmett's ReadEvent: its metadata plus messageId, streamName and 1-based positions. */
function toReadEvent<EventType extends Event>(e: EventEnvelope): ReadEvent<EventType, RaftReadEventMetadata> {
  const metadata: RaftReadEventMetadata = {
    ...(isRecord(e.metadata) ? e.metadata : {}),
    messageId: e.id,
    streamName: e.streamId,
    streamPosition: streamPositionOf(e.revision),
    globalPosition: globalPositionOf(e.position),
  };
  return {
    type: e.type,
    data: e.data ?? {},
    kind: 'Event',
    metadata,
  } as unknown as ReadEvent<EventType, RaftReadEventMetadata>;
}
