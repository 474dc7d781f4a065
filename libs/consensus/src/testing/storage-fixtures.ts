import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ConfigState, Entry, EntryType, encodeConfig } from '../core/types';
import { StorageLogger } from '../storage/durable-storage';

export function tempDir(prefix = 'storage-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** A payload that encodes its index and term, so a read can be checked byte for byte. */
export function payload(index: number, term: number, bytes = 32): Uint8Array {
  const b = Buffer.alloc(bytes);
  for (let k = 0; k < bytes; k++) b[k] = (index * 31 + term * 7 + k) & 255;
  return b;
}

export function entry(index: number, term = 1, bytes = 32): Entry {
  return { index, term, type: EntryType.Normal, data: payload(index, term, bytes) };
}

export function entries(from: number, to: number, term = 1, bytes = 32): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, bytes));
  return out;
}

export function configEntry(index: number, term: number, voters: string[]): Entry {
  const config: ConfigState = { voters, outgoing: [], learners: [], addresses: {} };
  return { index, term, type: EntryType.Config, data: encodeConfig(config) };
}

/** Throws unless `e` is the entry `entry(index, term, bytes)` made. */
export function expectEntry(e: Entry, index: number, term = 1, bytes = 32): void {
  const same =
    e.index === index &&
    e.term === term &&
    Buffer.from(e.data).equals(Buffer.from(payload(index, term, bytes)));
  if (!same)
    throw new Error(
      `entry ${e.index}/${e.term} (${e.data.length} bytes) is not the expected ${index}/${term} (${bytes} bytes)`,
    );
}

export class CapturingLogger implements StorageLogger {
  readonly lines: string[] = [];
  log(msg: string): void {
    this.lines.push(msg);
  }
  warn(msg: string): void {
    this.lines.push(msg);
  }
  error(msg: string): void {
    this.lines.push(msg);
  }
  has(re: RegExp): boolean {
    return this.lines.some((l) => re.test(l));
  }
}

export async function* chunksOf(data: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  for (let o = 0; o < data.length; o += size) yield data.subarray(o, o + size);
}

export async function collect(it: AsyncIterable<Uint8Array> | null): Promise<Buffer> {
  if (it === null) throw new Error('no snapshot');
  const parts: Buffer[] = [];
  for await (const p of it) parts.push(Buffer.from(p));
  return Buffer.concat(parts);
}

export function segmentFiles(dir: string): string[] {
  return fs
    .readdirSync(path.join(dir, 'log'))
    .filter((n) => n.endsWith('.seg'))
    .sort();
}
