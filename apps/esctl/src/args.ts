import { InvalidArgumentError } from 'commander';
import type { ExpectedRevision } from '@app/client';
import { UsageError } from './exit-codes';

/** commander argument parsers: a bad value is a usage error (exit code 2). */

export function nonNegativeInt(value: string): number {
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value)))
    throw new InvalidArgumentError('expected an integer >= 0.');
  return Number(value);
}

export function positiveInt(value: string): number {
  const n = nonNegativeInt(value);
  if (n < 1) throw new InvalidArgumentError('expected an integer >= 1.');
  return n;
}

export function intInRange(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = nonNegativeInt(value);
    if (n < min || n > max) throw new InvalidArgumentError(`expected an integer in ${min}..${max}.`);
    return n;
  };
}

export function expectedRevision(value: string): ExpectedRevision {
  if (value === 'any' || value === 'no_stream' || value === 'stream_exists') return value;
  if (/^\d{1,16}$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value);
  throw new InvalidArgumentError('expected any, no_stream, stream_exists or a revision (an integer >= 0).');
}

/** `--url a,b --url c` → [a, b, c]. */
export function collectList(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  ];
}

/** A JSON argument (`data-json`, `--metadata`). */
export function jsonArg(value: string, what: string): unknown {
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new UsageError(`${what} is not JSON: ${(err as Error).message}`);
  }
}
