import { InvariantName } from './checkers';
import { BugName, ProfileName, makeScenario } from './scenario';
import { CoreFactory } from './sim-node';
import { SimResult, SimStats, Simulation } from './simulator';

export interface RunOptions {
  from: number;
  seeds: number;
  profile: ProfileName;
  bug: BugName | null;
  /** Continue after a failing seed (otherwise stop at the first). */
  keepGoing: boolean;
  /** Print every event of every run as it happens (meant for one seed). */
  trace: boolean;
  traceTail: number;
  /** Check each acknowledgement against durable state when sent (off: only end-to-end invariants catch it). */
  persistCheck?: boolean;
  makeCore: CoreFactory;
  /** Where reports go (console.log in the CLI, a buffer in tests). */
  out: (line: string) => void;
  /** Called after each seed (progress display). */
  onSeed?: (result: SimResult) => void;
}

export interface RunSummary {
  ran: number;
  failed: SimResult[];
  elapsedMs: number;
  seedsPerSecond: number;
  totals: SimStats;
  /** The slowest convergence after the faults healed (virtual ms) and its seed. */
  slowestLiveness: { ms: number; seed: number };
}

/** Runs seeds from..from+seeds-1; each failure is reported with its trace and the command that replays it. */
export async function runSeeds(o: RunOptions): Promise<RunSummary> {
  const started = performance.now();
  const failed: SimResult[] = [];
  const totals = zeroStats();
  let ran = 0;
  let slowestLiveness = { ms: -1, seed: 0 };
  for (let seed = o.from; seed < o.from + o.seeds; seed++) {
    const sim = new Simulation({
      scenario: makeScenario(seed, o.profile, o.bug, { persistCheck: o.persistCheck }),
      makeCore: o.makeCore,
      liveTrace: o.trace ? o.out : undefined,
      traceTail: o.traceTail,
    });
    const result = await sim.run();
    ran++;
    addStats(totals, result.stats);
    if (result.stats.livenessMs > slowestLiveness.ms) slowestLiveness = { ms: result.stats.livenessMs, seed };
    o.onSeed?.(result);
    if (!result.ok) {
      failed.push(result);
      reportFailure(result, o.out);
      if (!o.keepGoing) break;
    }
  }
  const elapsedMs = performance.now() - started;
  return {
    ran,
    failed,
    elapsedMs,
    seedsPerSecond: ran / Math.max(elapsedMs / 1000, 1e-9),
    totals,
    slowestLiveness,
  };
}

export function reportFailure(r: SimResult, out: (line: string) => void): void {
  out(`\nSEED ${r.seed} FAILED: ${r.violation?.message ?? 'unknown'}`);
  out(`last events before the failure:`);
  for (const line of r.trace) out(`  ${line}`);
  out(`replay: ${r.replay}\n`);
}

export function zeroStats(): SimStats {
  return {
    virtualMs: 0,
    events: 0,
    leaders: 0,
    committedEntries: 0,
    acknowledgedWrites: 0,
    reads: 0,
    crashes: 0,
    partitions: 0,
    membershipChanges: 0,
    transfers: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    messages: 0,
    livenessMs: 0,
  };
}

function addStats(into: SimStats, s: SimStats): void {
  for (const k of Object.keys(into) as (keyof SimStats)[]) into[k] += s[k];
}

export function describeTotals(ran: number, t: SimStats): string {
  const per = (x: number) => (ran > 0 ? (x / ran).toFixed(1) : '0');
  return (
    `per seed: ${per(t.virtualMs)} virtual ms, ${per(t.events)} events, ${per(t.leaders)} elections won, ${per(t.committedEntries)} entries committed, ` +
    `${per(t.acknowledgedWrites)} writes acked, ${per(t.reads)} reads, ${per(t.crashes)} crashes, ${per(t.partitions)} partitions, ` +
    `${per(t.membershipChanges)} membership changes, ${per(t.transfers)} transfers, ${per(t.snapshotsInstalled)} snapshots installed, ` +
    `${per(t.livenessMs)} ms to converge`
  );
}

export interface HuntOptions {
  profile: ProfileName;
  bug: BugName | null;
  from: number;
  seedsMax: number;
  /** The invariants that count as "the simulator caught the mistake". */
  accept: readonly InvariantName[];
  persistCheck?: boolean;
  makeCore: CoreFactory;
}

export interface HuntResult {
  /** The first run that broke an accepted invariant, or null. */
  caught: SimResult | null;
  seedsRun: number;
  /** Failures of other kinds met on the way (e.g. liveness, a consequence of the same mistake). */
  otherFailures: SimResult[];
}

/** Runs seeds with a deliberate mistake until one breaks an accepted invariant (or seedsMax runs pass). */
export async function huntViolation(o: HuntOptions): Promise<HuntResult> {
  const otherFailures: SimResult[] = [];
  for (let i = 0; i < o.seedsMax; i++) {
    const scenario = makeScenario(o.from + i, o.profile, o.bug, { persistCheck: o.persistCheck });
    const result = await new Simulation({ scenario, makeCore: o.makeCore }).run();
    if (result.ok) continue;
    if (result.violation && o.accept.includes(result.violation.invariant))
      return { caught: result, seedsRun: i + 1, otherFailures };
    otherFailures.push(result);
  }
  return { caught: null, seedsRun: o.seedsMax, otherFailures };
}
