import type { EventEnvelope } from '@app/client';
import type { Row } from '../../read-models';
import type { ModelTable } from './table';

export interface DeadLetter {
  position: number;
  eventId: string;
  error: string;
}

export interface FoldResult {
  upserts: Row[];
  deletes: string[];
  deadLetters: DeadLetter[];
  /** The model's checkpoint after this batch: its last event, or the one before a poison event. */
  position: number;
  /** Set when a handler threw under the `stop` policy: the model stops at `position`. */
  stopped: DeadLetter | null;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Folds a batch into one model in memory: `load` fetches the current rows of the keys the batch touches (one
 * query), every event past `checkpoint` goes through its handler in position order, and the result lists the
 * rows to upsert and delete (one statement each). Events at or before `checkpoint` were applied already.
 * A throwing `keyOf` or handler is a poison event: under `skip` it becomes a dead letter, under `stop` the
 * fold ends before it. Handlers must not mutate the row they are given (the fold keeps it as "before").
 */
export async function foldBatch(
  table: ModelTable,
  events: readonly EventEnvelope[],
  checkpoint: number,
  load: (keys: string[]) => Promise<Map<string, Row>>,
): Promise<FoldResult> {
  const model = table.model;
  const skip = (model.onError ?? 'stop') === 'skip';
  const deadLetters: DeadLetter[] = [];
  let stopped: DeadLetter | null = null;
  const poison = (e: EventEnvelope, err: unknown): void => {
    const letter = { position: e.position, eventId: e.id, error: message(err) };
    if (skip) deadLetters.push(letter);
    else stopped = letter;
  };

  // Pass 1: the key each event touches (null: the model ignores it).
  const keyed: { e: EventEnvelope; key: string }[] = [];
  for (const e of events) {
    if (e.position <= checkpoint) continue;
    try {
      const key = model.keyOf(e);
      if (key !== null && (model.handlers[e.type] ?? model.handlers['*'])) keyed.push({ e, key });
    } catch (err) {
      poison(e, err);
      if (stopped) break;
    }
  }
  const stopAt: number = stopped ? (stopped as DeadLetter).position : Infinity;

  // Pass 2: fold in position order over the rows as they are now.
  const keys = [...new Set(keyed.map((k) => k.key))];
  const before = keys.length > 0 ? await load(keys) : new Map<string, Row>();
  const state = new Map<string, Row | null>();
  for (const k of keys) state.set(k, before.get(k) ?? null);
  for (const { e, key } of keyed) {
    if (e.position >= stopAt) break;
    const handler = model.handlers[e.type] ?? model.handlers['*'];
    try {
      const next = handler(state.get(key) ?? null, e);
      if (next !== null && table.keyOfRow(next) !== key)
        throw new Error(`handler returned a row with key ${table.keyOfRow(next)} for an event of key ${key}`);
      state.set(key, next);
    } catch (err) {
      poison(e, err);
      if (stopped) break;
    }
  }

  let position = events.length > 0 ? Math.max(checkpoint, events[events.length - 1].position) : checkpoint;
  if (stopped) position = (stopped as DeadLetter).position - 1;
  const upserts: Row[] = [];
  const deletes: string[] = [];
  for (const [key, row] of state) {
    if (row === null) {
      if (before.has(key)) deletes.push(key);
    } else if (row !== before.get(key)) upserts.push(row);
  }
  return {
    upserts,
    deletes,
    deadLetters: deadLetters.filter((d) => d.position <= position),
    position,
    stopped,
  };
}
