import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Entry, EntryType } from '@app/consensus';
import { encodeCommand, prepareAppend } from '../command';
import { DEFAULT_LIMITS } from '../limits';
import { AppendEventInput, ExpectedRevision } from '../types';
import { newEventId } from '../uuid';

/** Test helpers: temp dirs and Raft entries carrying append commands. */
export function tempDir(prefix = 'es-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export const FIXED_NOW = new Date('2026-11-23T10:15:30.123Z');

export function appendEntry(
  index: number,
  streamId: string,
  events: AppendEventInput[],
  expectedRevision: ExpectedRevision = 'any',
  now = FIXED_NOW,
): Entry {
  const cmd = prepareAppend({ streamId, expectedRevision, events }, DEFAULT_LIMITS, now, newEventId);
  return { index, term: 1, type: EntryType.Normal, data: encodeCommand(cmd) };
}

export function noopEntry(index: number): Entry {
  return { index, term: 1, type: EntryType.Noop, data: new Uint8Array(0) };
}

/** A deterministic UUID (v4 layout) from a number, for repeatable ids. */
export function uuidOf(n: number): string {
  const hex = n.toString(16).padStart(12, '0');
  return `00000000-0000-4000-8000-${hex}`;
}

export function ev(type: string, data: unknown = {}, id?: string): AppendEventInput {
  return id ? { id, type, data } : { type, data };
}

export async function collect<T>(it: AsyncIterator<T>, n: number, timeoutMs = 20_000): Promise<T[]> {
  const out: T[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    if (Date.now() > deadline)
      throw new Error(`collect: only ${out.length} of ${n} items within ${timeoutMs} ms`);
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}
