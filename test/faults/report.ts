import type { History, Op, Verdict } from './history';
import type { FaultRecord } from './nemesis';

/** The per-run report: a short text table for the terminal and the same as report.md. */

export interface RunInfo {
  seed: number;
  nodes: number;
  kinds: string[];
  durationS: number;
  clients: number;
  wallS: number;
  outDir: string;
  /** Why the run could not finish as planned (harness failures); empty when it did. */
  errors: string[];
  subscribers: { node: string; received: number; connects: number }[];
}

/** ms from the fault's start until an append invoked after it succeeded; null if none did. */
export function writesBackAfterMs(f: FaultRecord, ops: readonly Op[]): number | null {
  let best: number | null = null;
  for (const op of ops) {
    if (op.kind !== 'append' || op.outcome !== 'ok' || op.invokeMs < f.startMs) continue;
    const d = op.completeMs - f.startMs;
    if (best === null || d < best) best = d;
  }
  return best;
}

function s(ms: number | null): string {
  return ms === null ? '-' : `${(ms / 1000).toFixed(2)}s`;
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)];
}

export function renderReport(
  info: RunInfo,
  history: History,
  faults: FaultRecord[],
  verdict: Verdict | null,
): string {
  const out: string[] = [];
  const valid = verdict !== null && verdict.valid && info.errors.length === 0;
  out.push(
    `# Fault run seed ${info.seed}: ${valid ? 'PASS' : 'FAIL'}`,
    '',
    `${info.nodes} nodes, faults ${info.kinds.join(',')}, ${info.durationS} s of faults, ${info.clients} clients; ` +
      `wall time ${info.wallS.toFixed(1)} s; output ${info.outDir}`,
    '',
    '## Operations',
    '',
  );
  const outcomes = ['ok', 'conflict', 'fail', 'unknown'] as const;
  const rows: string[][] = [];
  for (const kind of ['append', 'read'] as const) {
    const ops = history.ops.filter((o) => o.kind === kind);
    const retries = ops.filter((o) => o.kind === 'append' && o.retryOf !== undefined).length;
    rows.push([
      kind + (kind === 'append' ? ` (${retries} retries)` : ''),
      String(ops.length),
      ...outcomes.map((x) => String(ops.filter((o) => o.outcome === x).length)),
    ]);
  }
  out.push(...table(['kind', 'total', ...outcomes], rows), '');
  const streams = new Set(history.ops.map((o) => o.stream));
  const finals = Object.entries(history.finalAll).map(([n, evs]) => `${n} ${evs.length}`);
  out.push(
    `${streams.size} streams; events sent ${history.sentEventIds.length}; $all after healing: ${finals.join(', ')}`,
    `subscribers: ${info.subscribers.map((x) => `${x.node} ${x.received} events (${x.connects} connections)`).join(', ')}`,
    '',
    '## Faults',
    '',
  );
  out.push(
    ...table(
      ['#', 'kind', 'start', 'heal', 'new leader after', 'writes ok after', 'what'],
      faults.map((f) => [
        String(f.n),
        f.kind,
        s(f.startMs),
        s(f.healMs),
        f.newLeaderAfterMs === null
          ? `- (kept ${f.leaderBefore ?? 'none'})`
          : `${s(f.newLeaderAfterMs)} (${f.newLeader}${f.healMs !== null && f.startMs + f.newLeaderAfterMs > f.healMs ? ', after the heal' : ''})`,
        s(writesBackAfterMs(f, history.ops)),
        f.detail + (f.error ? ` ERROR: ${f.error}` : ''),
      ]),
    ),
    '',
  );
  out.push('## Verdict', '');
  if (verdict === null) out.push('not checked (the run did not complete)');
  else {
    const states = verdict.streams.reduce((a, x) => a + x.states, 0);
    const ms = verdict.streams.reduce((a, x) => a + x.ms, 0);
    out.push(
      `${verdict.valid ? 'valid' : 'INVALID'}: ${verdict.anomalies.length} anomalies; ` +
        `${verdict.streams.length} streams searched, ${states} states, ${ms.toFixed(0)} ms`,
    );
    for (const a of verdict.anomalies.slice(0, 30))
      out.push(
        `- [${a.kind}]${a.stream ? ` ${a.stream}` : ''} ${a.message}${a.ops ? ` (ops ${a.ops.join(',')})` : ''}`,
      );
    if (verdict.anomalies.length > 30)
      out.push(`- … ${verdict.anomalies.length - 30} more in history.json's verdict`);
  }
  for (const e of info.errors) out.push(`- harness: ${e}`);
  out.push('');
  return out.join('\n');
}
