import { EventEnvelope } from '../types';
import { defineProjection, ProjectionDefinition } from './define';

/** API.md: the category of a stream is the part before its first '-'; a stream without '-' is its own category. */
export function categoryOf(streamId: string): string {
  // Consecutive events mostly share a stream (an append's events all do): reuse the last answer, which
  // also keeps handing out the same string (its hash computed once for the Map lookups).
  if (streamId === lastCategory.streamId) return lastCategory.category;
  const dash = streamId.indexOf('-');
  const category = dash < 0 ? streamId : streamId.slice(0, dash);
  lastCategory.streamId = streamId;
  lastCategory.category = category;
  return category;
}
const lastCategory = { streamId: '', category: '' };

export interface StreamSummary {
  lastRevision: number;
  eventCount: number;
  lastEventType: string;
  createdAt: string;
  updatedAt: string;
}

/** Per stream: lastRevision, eventCount, lastEventType, createdAt, updatedAt. */
export const streamsProjection = defineProjection<StreamSummary | null>({
  name: 'streams',
  initial: () => null,
  partitionBy: (e) => e.streamId,
  handle: (s, e) => {
    if (s === null) {
      return {
        lastRevision: e.revision,
        eventCount: 1,
        lastEventType: e.type,
        createdAt: e.timestamp,
        updatedAt: e.timestamp,
      };
    }
    s.lastRevision = e.revision;
    s.eventCount++;
    s.lastEventType = e.type;
    s.updatedAt = e.timestamp;
    return s;
  },
});

/** Count of events per type (partition key: the type). */
export const eventTypesProjection = defineProjection<number>({
  name: 'event-types',
  initial: () => 0,
  partitionBy: (e) => e.type,
  handle: (n) => n + 1,
});

export interface CategorySummary {
  streams: number;
  events: number;
}

/** Per category: number of streams and of events. */
export const categoriesProjection = defineProjection<CategorySummary>({
  name: 'categories',
  initial: () => ({ streams: 0, events: 0 }),
  partitionBy: (e: EventEnvelope) => categoryOf(e.streamId),
  handle: (s, e) => {
    if (e.revision === 0) s.streams++;
    s.events++;
    return s;
  },
});

export function builtInProjections(): ProjectionDefinition<any>[] {
  return [streamsProjection, eventTypesProjection, categoriesProjection];
}
