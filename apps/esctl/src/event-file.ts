import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { UsageError } from './exit-codes';

/**
 * Events files for `esctl append --file`: JSON lines, each `{ "type", "data"?, "metadata"?, "id"? }` (blank
 * lines are skipped). Sending one is resumable: every event without an id gets one derived from the file's
 * content (or `--id-seed`), the stream and its line number, and the batches are cut the same way every
 * time, so a re-run after an interruption re-sends identical requests, which the store answers from its
 * idempotency window (the original revisions, nothing written twice).
 */

/** Most events of one append (the node's default APPEND_EVENTS_MAX). */
export const batchEventsMax = 1000;
export const batchEventsDefault = 500;
/** Serialized events per batch, in bytes: under the node's 4 MiB body limit with room for the envelope. */
export const batchBytesMax = 3 * 1024 * 1024;

const eventFields = new Set(['type', 'data', 'metadata', 'id']);
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface FileEventBody {
  id: string;
  type: string;
  data?: unknown;
  metadata?: unknown;
}

export interface FileEvent {
  /** 1-based line number in the file. */
  line: number;
  event: FileEventBody;
}

export interface EventFileSummary {
  events: number;
  /** SHA-256 (hex) of the file's lines, the default seed of the derived ids. */
  sha256: string;
}

/** One line of an events file, checked: a UsageError names the file and line. */
export function parseEventLine(text: string, where: string): Omit<FileEventBody, 'id'> & { id?: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${where}: not JSON (${(err as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new UsageError(`${where}: expected an object {"type", "data"?, "metadata"?, "id"?}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!eventFields.has(k))
      throw new UsageError(
        `${where}: unknown field ${JSON.stringify(k)} (expected type, data, metadata, id)`,
      );
  if (typeof o.type !== 'string' || o.type.length === 0)
    throw new UsageError(`${where}: "type" must be a non-empty string`);
  if (o.id !== undefined && (typeof o.id !== 'string' || !uuidPattern.test(o.id)))
    throw new UsageError(`${where}: "id" must be a UUID`);
  const e: Omit<FileEventBody, 'id'> & { id?: string } = { type: o.type };
  if (o.id !== undefined) e.id = o.id as string;
  if (o.data !== undefined) e.data = o.data;
  if (o.metadata !== undefined) e.metadata = o.metadata;
  return e;
}

/**
 * A UUID (version 8, RFC 9562: application-defined) from SHA-256 of the seed, the stream and the line: the
 * same file appended to the same stream gives the same ids, another file or stream other ids.
 */
export function derivedEventId(seed: string, streamId: string, line: number): string {
  const b = createHash('sha256').update(`esctl-append\0${seed}\0${streamId}\0${line}`).digest();
  b[6] = (b[6] & 0x0f) | 0x80;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

async function* lines(path: string): AsyncGenerator<{ text: string; line: number }> {
  const input = fs.createReadStream(path, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    input.once('open', () => resolve());
    input.once('error', reject);
  });
  try {
    await opened;
  } catch (err) {
    input.destroy();
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of rl) yield { text, line: ++line };
  } finally {
    rl.close();
    input.destroy();
  }
}

/** Reads the whole file once: checks every line (nothing is sent from a malformed file) and counts events. */
export async function scanEventFile(path: string): Promise<EventFileSummary> {
  const hash = createHash('sha256');
  let events = 0;
  for await (const { text, line } of lines(path)) {
    hash.update(text).update('\n');
    if (text.trim() === '') continue;
    parseEventLine(text, `${path}:${line}`);
    events++;
  }
  return { events, sha256: hash.digest('hex') };
}

/** The file's events in batches cut by count and size, the same way on every run. */
export async function* eventBatches(
  path: string,
  opts: { streamId: string; seed: string; batchEvents: number; batchBytes?: number },
): AsyncGenerator<FileEvent[]> {
  const bytesMax = opts.batchBytes ?? batchBytesMax;
  let batch: FileEvent[] = [];
  let bytes = 0;
  for await (const { text, line } of lines(path)) {
    if (text.trim() === '') continue;
    const parsed = parseEventLine(text, `${path}:${line}`);
    const event: FileEventBody = {
      ...parsed,
      id: parsed.id ?? derivedEventId(opts.seed, opts.streamId, line),
    };
    const size = Buffer.byteLength(JSON.stringify(event)) + 1;
    if (batch.length > 0 && (batch.length >= opts.batchEvents || bytes + size > bytesMax)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push({ line, event });
    bytes += size;
  }
  if (batch.length > 0) yield batch;
}
