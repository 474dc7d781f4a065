/**
 * Topic naming of the Kafka sink (pure). Kafka topic names are 1–249 characters of `[a-zA-Z0-9._-]`, and
 * neither `.` nor `..`.
 *
 * - `single` mode: every event goes to `<topic>` (default `events`).
 * - `category` mode: `<topic>.<category>`, the category being the part of the stream id before the first `-`
 *   (`order-42` → `events.order`), or the whole id if it has no `-` (`inventory` → `events.inventory`).
 *   Characters Kafka does not allow in names (e.g. `:`, `@`, `/`, spaces, non-ASCII) are replaced by `_`
 *   (`tenant:a-1` → `events.tenant_a`), an empty category (stream id starting with `-`) becomes `_`, and a name
 *   longer than 249 characters is cut and suffixed with a hash of the full name. Distinct categories can thus
 *   share a topic (`a:b` and `a@b` → `events.a_b`): harmless, since records are keyed by stream id (a
 *   stream's events stay in one partition, in order) and carry the `stream-id` header.
 * - The checkpoint topic is `<topic>-checkpoints` (not `<topic>.checkpoints`, which the category
 *   `checkpoints` would map to).
 */
import { createHash } from 'node:crypto';

export type TopicMode = 'single' | 'category';

export const maxTopicLength = 249;

/** The category of a stream: the part of its id before the first `-`, or the whole id. */
export function categoryOf(streamId: string): string {
  const dash = streamId.indexOf('-');
  return dash < 0 ? streamId : streamId.slice(0, dash);
}

/** Maps a string to a legal Kafka topic name (see the module comment). */
export function legalTopicName(name: string): string {
  let out = name.replace(/[^a-zA-Z0-9._-]/g, '_');
  if (out === '' || out === '.' || out === '..') out = out.replace(/\./g, '_') || '_';
  if (out.length > maxTopicLength) {
    const hash = createHash('sha256').update(name).digest('hex').slice(0, 16);
    out = `${out.slice(0, maxTopicLength - hash.length - 1)}_${hash}`;
  }
  return out;
}

/** The event topic of a stream. */
export function topicFor(streamId: string, base: string, mode: TopicMode): string {
  if (mode === 'single') return legalTopicName(base);
  return legalTopicName(`${base}.${categoryOf(streamId) || '_'}`);
}

export function checkpointTopicFor(base: string): string {
  return legalTopicName(`${base}-checkpoints`);
}

/** A stable transactional id for a projector writing `base` in `mode` (the default of KafkaSinkOptions). */
export function defaultTransactionalId(base: string, mode: TopicMode): string {
  return mode === 'single' ? `projector-${base}` : `projector-${base}-category`;
}
