import { InvariantName } from './checkers';
import { HuntOptions, RunSummary, huntViolation, reportFailure, runSeeds } from './runner';
import { BugName, ProfileName } from './scenario';
import { CoreFactory } from './sim-node';
import { SimResult } from './simulator';
import { defaultCoreFactory } from './sim-defaults';

/** Safety invariants: breaking one of these is what a protocol mistake must cause. */
export const SAFETY_INVARIANTS: readonly InvariantName[] = [
  'ElectionSafety',
  'LogMatching',
  'LeaderCompleteness',
  'StateMachineSafety',
  'CommitMonotonic',
  'AckedWriteLost',
  'ReadLinearizability',
];

/** Runs a range of seeds with the real core, collecting failure reports instead of printing them. */
export async function runRange(o: {
  from: number;
  seeds: number;
  profile: ProfileName;
  bug?: BugName;
}): Promise<RunSummary & { report: string }> {
  const lines: string[] = [];
  const summary = await runSeeds({
    from: o.from,
    seeds: o.seeds,
    profile: o.profile,
    bug: o.bug ?? null,
    keepGoing: true,
    trace: false,
    traceTail: 60,
    makeCore: defaultCoreFactory,
    out: (line) => lines.length < 2_000 && lines.push(line),
  });
  return { ...summary, report: lines.join('\n') };
}

export function expectAllPass(summary: RunSummary & { report: string }): void {
  if (summary.failed.length > 0) {
    const seeds = summary.failed.map((r) => r.seed).join(', ');
    throw new Error(`${summary.failed.length} of ${summary.ran} seeds failed (${seeds}):\n${summary.report}`);
  }
  check(summary.ran > 0, 'no seeds ran');
}

/** Asserts that the mistake breaks an accepted invariant within seedsMax seeds, and that the report can replay it. */
export async function expectCaught(
  o: Omit<HuntOptions, 'from' | 'makeCore'> & { from?: number; makeCore?: CoreFactory },
): Promise<SimResult> {
  const hunt = await huntViolation({
    ...o,
    from: o.from ?? 1,
    makeCore: o.makeCore ?? defaultCoreFactory,
  });
  if (hunt.caught === null) {
    const others = hunt.otherFailures.map((r) => `seed ${r.seed}: ${r.violation?.message}`).join('\n');
    throw new Error(
      `bug ${o.bug} (profile ${o.profile}) went unnoticed in ${hunt.seedsRun} seeds (expected one of ${o.accept.join(', ')})${others ? `\nother failures:\n${others}` : ''}`,
    );
  }
  const r = hunt.caught;
  check(o.accept.includes(r.violation!.invariant), `unexpected invariant ${r.violation!.invariant}`);
  check(
    r.replay.includes(`--from ${r.seed}`) && (o.bug === null || r.replay.includes(`--bug ${o.bug}`)),
    `replay command does not name the seed and bug: ${r.replay}`,
  );
  check(r.trace.length > 10, `failure trace too short (${r.trace.length} lines)`);
  const lines: string[] = [];
  reportFailure(r, (l) => lines.push(l));
  check(
    lines.join('\n').includes('replay: npm run sim -- --seeds 1'),
    'failure report lacks the replay command',
  );
  return r;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`simulator self-test: ${what}`);
}
