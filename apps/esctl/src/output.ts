import type { EventEnvelope } from '@app/client';

/** Where a command writes: stdout for results, stderr for notes, errors and progress bars. */
export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** A progress bar is drawn only on a terminal. */
  stderrIsTTY: boolean;
}

export function processIo(): Io {
  return { stdout: process.stdout, stderr: process.stderr, stderrIsTTY: process.stderr.isTTY === true };
}

/** Writes results as text or JSON (`--json`), waiting for the pipe to drain so a large read stays bounded. */
export class Output {
  constructor(
    readonly io: Io,
    /** Machine output: one JSON document per command (JSON lines for `tail`). */
    readonly json: boolean,
  ) {}

  /** One JSON document (pretty-printed). */
  document(value: unknown): Promise<void> {
    return this.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** One compact JSON value on one line (JSON lines). */
  jsonLine(value: unknown): Promise<void> {
    return this.write(`${JSON.stringify(value)}\n`);
  }

  line(text = ''): Promise<void> {
    return this.write(`${text}\n`);
  }

  /** A note for a person, on stderr; nothing with `--json`. */
  note(text: string): void {
    if (!this.json) this.io.stderr.write(`${text}\n`);
  }

  write(text: string): Promise<void> {
    const out = this.io.stdout;
    if (out.write(text)) return Promise.resolve();
    return new Promise((resolve) => out.once('drain', () => resolve()));
  }
}

/** Columns padded to their widest cell; the last one is not padded. */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [
    headers,
    ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c)))),
  ];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** One event on one line: `@position stream#revision type timestamp data [metadata]`. */
export function formatEvent(e: EventEnvelope): string {
  const parts = [`@${e.position}`, `${e.streamId}#${e.revision}`, e.type, e.timestamp, compact(e.data)];
  if (e.metadata !== undefined && e.metadata !== null && !isEmptyObject(e.metadata))
    parts.push(`meta=${compact(e.metadata)}`);
  return parts.join('  ');
}

function compact(v: unknown): string {
  return v === undefined ? '-' : JSON.stringify(v);
}

function isEmptyObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
}
