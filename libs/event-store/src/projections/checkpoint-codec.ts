import type { ProjectionCheckpoint } from './engine';

/**
 * Projection checkpoints in a cut's state.bin, as JSON lines in chunks: a projection's line (its fields and
 * `partitionCount`), then one `[key, state]` line per partition. One JSON string for everything stopped
 * working at about 1.5M streams (V8's maximum string length: every snapshot failed with "Invalid string
 * length"); lines keep every string small however many partitions there are.
 *
 * Older cuts hold one JSON array; `decodeCheckpoints` reads both.
 */

/** Lines gathered into one chunk (one Buffer) before it is encoded. */
const CHUNK_CHARS = 1 << 20;
const NEWLINE = 0x0a;

export function encodeCheckpoints(checkpoints: ProjectionCheckpoint[]): Buffer[] {
  const chunks: Buffer[] = [];
  let lines: string[] = [];
  let chars = 0;
  const push = (line: string) => {
    lines.push(line);
    chars += line.length + 1;
    if (chars >= CHUNK_CHARS) flush();
  };
  const flush = () => {
    if (lines.length === 0) return;
    chunks.push(Buffer.from(lines.join('\n') + '\n', 'utf8'));
    lines = [];
    chars = 0;
  };
  for (const c of checkpoints) {
    const { partitions, ...head } = c;
    push(JSON.stringify({ ...head, partitionCount: partitions?.length ?? null }));
    for (const p of partitions ?? []) push(JSON.stringify(p));
  }
  flush();
  return chunks;
}

export function decodeCheckpoints(bytes: Buffer): ProjectionCheckpoint[] {
  if (bytes.length === 0) return [];
  // The old format: one JSON array (cuts written before the line format).
  if (bytes[0] === 0x5b /* [ */) return JSON.parse(bytes.toString('utf8')) as ProjectionCheckpoint[];
  const out: ProjectionCheckpoint[] = [];
  let at = 0;
  const nextLine = (): string | null => {
    if (at >= bytes.length) return null;
    let end = bytes.indexOf(NEWLINE, at);
    if (end < 0) end = bytes.length;
    const line = bytes.toString('utf8', at, end);
    at = end + 1;
    return line;
  };
  for (let line = nextLine(); line !== null; line = nextLine()) {
    const head = JSON.parse(line) as Omit<ProjectionCheckpoint, 'partitions'> & {
      partitionCount: number | null;
    };
    const { partitionCount, ...rest } = head;
    const c: ProjectionCheckpoint = rest;
    if (partitionCount !== null) {
      const partitions: [string, unknown][] = new Array(partitionCount);
      for (let i = 0; i < partitionCount; i++) {
        const p = nextLine();
        if (p === null)
          throw new Error(
            `projection checkpoint ${c.name}: ${i} of ${partitionCount} partitions, then the end`,
          );
        partitions[i] = JSON.parse(p) as [string, unknown];
      }
      c.partitions = partitions;
    }
    out.push(c);
  }
  return out;
}
