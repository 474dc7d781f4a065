/** Figures and tables for the benchmarks' output. */

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** 12345.6 → "12,346"; NaN → "-". */
export function int(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-';
}

export function ms(n: number, digits = 1): string {
  return Number.isFinite(n) ? `${n.toFixed(digits)} ms` : '-';
}

export function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : '-';
}

export function pct(a: number): string {
  return Number.isFinite(a) ? `${Math.round(a * 100)}%` : '-';
}

/** A plain-text table with a header row; columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** Reads an integer >= `min` from the environment or returns the default; exits naming the variable if bad. */
export function envInt(name: string, dflt: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw.replace(/_/g, ''));
  if (!Number.isInteger(v) || v < min) {
    process.stderr.write(`bench: ${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return v;
}

/**
 * Runs a benchmark's main: exits 0 after it (a short pause first lets the processes it ended release
 * their ports and files), or prints the failure and exits 1.
 */
export function runBench(name: string, main: () => Promise<void>): void {
  main()
    .then(() => new Promise((resolve) => setTimeout(resolve, 10)))
    .then(() => process.exit(0))
    .catch((err: Error) => {
      process.stderr.write(`${name} failed: ${err?.stack ?? String(err)}\n`);
      process.exit(1);
    });
}
