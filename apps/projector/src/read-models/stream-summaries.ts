import { Column, Entity, PrimaryColumn } from 'typeorm';
import { defineReadModel } from './read-model';

/** One row per stream: how many events, the last revision and type, the first and last positions. */
@Entity('stream_summaries')
export class StreamSummary {
  @PrimaryColumn({ type: 'text', name: 'stream_id' })
  streamId!: string;

  @Column({ type: 'bigint', name: 'event_count' })
  eventCount!: number;

  @Column({ type: 'bigint', name: 'last_revision' })
  lastRevision!: number;

  @Column({ type: 'bigint', name: 'first_position' })
  firstPosition!: number;

  @Column({ type: 'bigint', name: 'last_position' })
  lastPosition!: number;

  @Column({ type: 'text', name: 'last_event_type' })
  lastEventType!: string;

  @Column({ type: 'timestamptz', name: 'updated_at' })
  updatedAt!: string;
}

export const streamSummaries = defineReadModel<StreamSummary & Record<string, unknown>>({
  name: 'stream_summaries',
  entity: StreamSummary,
  migrations: [],
  keyOf: (e) => e.streamId,
  handlers: {
    '*': (row, e) => ({
      streamId: e.streamId,
      eventCount: (row?.eventCount ?? 0) + 1,
      lastRevision: e.revision,
      firstPosition: row?.firstPosition ?? e.position,
      lastPosition: e.position,
      lastEventType: e.type,
      updatedAt: e.timestamp,
    }),
  },
});
