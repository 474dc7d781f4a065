/**
 * Child process for the crash tests: opens the storage, truncates from `from` (as a new leader's entries
 * would), then appends with several concurrent appenders until killed. After each persist resolves it
 * prints what became durable: "hs <term>" for the hard state, "e <lastIndex> <term>" for entries.
 * Usage: node --require tools/swc-register.js crash-child.ts <dir> <from> <term> <seed>
 */
import { Entry, EntryType } from '../core/types';
import { DurableStorage } from '../storage/durable-storage';
import { Prng } from './prng';
import { payload } from './storage-fixtures';

const appenders = 4;
/** The parent kills the child within a second; this only bounds an orphan's life. */
const lifetimeMsMax = 60_000;
const batchEntriesMax = 40;
const payloadBytesMax = 300;

/** Payload size is a function of the index, so the parent can check every entry byte for byte. */
export function crashPayloadBytes(index: number): number {
  return 1 + ((index * 2654435761) % payloadBytesMax);
}

export function crashEntry(index: number, term: number): Entry {
  return { index, term, type: EntryType.Normal, data: payload(index, term, crashPayloadBytes(index)) };
}

async function main(): Promise<void> {
  const [dir, fromArg, termArg, seedArg] = process.argv.slice(2);
  const term = Number(termArg);
  const random = new Prng(Number(seedArg)).asFunction();
  const quiet = { log: () => {}, warn: () => {}, error: (m: string) => process.stderr.write(m + '\n') };
  const s = await DurableStorage.open(dir, { segmentBytes: 64 * 1024, logger: quiet });
  let next = Number(fromArg);
  const out = (line: string) => process.stdout.write(line + '\n');
  await s.persist({ hardState: { term, vote: 'n1', commit: 0 }, entries: [] });
  out(`hs ${term}`);
  out('ready');
  const appender = async () => {
    for (;;) {
      const n = 1 + Math.floor(random() * batchEntriesMax);
      const batch: Entry[] = [];
      for (let k = 0; k < n; k++) batch.push(crashEntry(next++, term));
      await s.persist({ entries: batch });
      out(`e ${batch[batch.length - 1].index} ${term}`);
    }
  };
  await Promise.all(Array.from({ length: appenders }, appender));
}

if (require.main === module) {
  setTimeout(() => process.exit(3), lifetimeMsMax).unref();
  process.stdout.on('error', () => process.exit(4)); // the parent is gone
  main().catch((e) => {
    process.stderr.write(`crash child failed: ${(e as Error).stack}\n`);
    process.exit(1);
  });
}
