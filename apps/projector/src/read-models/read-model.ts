import type { EntitySchema, MigrationInterface } from 'typeorm';
import type { EventEnvelope } from '@app/client';

/** A row of a read model: column property names to JSON-able values. */
export type Row = Record<string, unknown>;

/** Given the row the event touches (null if none yet), the new row, or null to delete it. */
export type EventHandler<R extends Row> = (row: R | null, event: EventEnvelope) => R | null;

/**
 * A Postgres read model defined in code: a TypeORM entity (the table: columns, their types and the primary
 * key) plus a handler per event type. The projector folds every committed event into it exactly once:
 * rows and the model's checkpoint are written in one transaction per batch.
 *
 * Column types must be given explicitly on the entity (`@Column({ type: 'bigint' })` …); rows are handed
 * to handlers with integers and numerics as JS numbers, timestamps as ISO-8601 strings and json/jsonb as
 * parsed values.
 */
export interface ReadModel<R extends Row = Row> {
  /** The name in the REST routes, `/status` and `projector.checkpoints` (lower-case, [a-z0-9_-]). */
  name: string;
  /** The TypeORM entity of the model's table: a class decorated with `@Entity('<table>')`, or an `EntitySchema`. */
  entity: (new () => unknown) | EntitySchema<any>;
  /** Migrations that create (and later evolve) the table, run at start-up in name order with the built-in ones. */
  migrations: (new () => MigrationInterface)[];
  /** The primary key value of the row an event touches, or null when the model ignores the event. */
  keyOf(event: EventEnvelope): string | null;
  /** Handlers by event type; `'*'` handles every type that has none of its own. */
  handlers: Record<string, EventHandler<R>>;
  /**
   * What a throwing handler does: `stop` (the default) stops this model at the event before it (state
   * `stopped`, the error in /status); `skip` records the event in `dead_letters` and goes on.
   */
  onError?: 'stop' | 'skip';
}

export function defineReadModel<R extends Row>(model: ReadModel<R>): ReadModel<Row> {
  if (!/^[a-z0-9_-]{1,60}$/.test(model.name))
    throw new Error(`read model name "${model.name}" must be 1-60 characters from [a-z0-9_-]`);
  return model as unknown as ReadModel<Row>;
}
