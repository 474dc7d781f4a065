import { SAFETY_INVARIANTS, expectAllPass, expectCaught, runRange } from './sim-spec-support';
import { makeScenario } from './scenario';
import { defaultCoreFactory } from './sim-defaults';
import { RaftNode } from '../node/raft-node';
import { Simulation } from './simulator';

// The two simulator spec files split the seeds so jest's two workers share them.
const SIM_TIMEOUT_MS = 600_000;

// The fixed mix the default profile was before it became the swarm (simulator-swarm.spec.ts): every seed has
// crashes, partitions, membership changes and transfers, so the per-seed counts below hold for each range.
describe('simulator: classic profile (crashes, partitions, lossy network, membership changes, transfers)', () => {
  for (const [from, count] of [
    [1, 300],
    [301, 300],
    [601, 300],
    [901, 300],
  ]) {
    it(
      `seeds ${from}..${from + count - 1} keep every invariant and converge after the faults heal`,
      async () => {
        const summary = await runRange({ from, seeds: count, profile: 'classic' });
        expectAllPass(summary);
        // Long enough to matter: many elections, crashes and membership changes per run.
        expect(summary.totals.leaders / summary.ran).toBeGreaterThan(3);
        expect(summary.totals.crashes / summary.ran).toBeGreaterThan(3);
        expect(summary.totals.membershipChanges / summary.ran).toBeGreaterThan(2);
        expect(summary.totals.snapshotsInstalled).toBeGreaterThan(count);
        expect(summary.totals.reads).toBeGreaterThan(count * 10);
      },
      SIM_TIMEOUT_MS,
    );
  }
});

describe('simulator: what it runs', () => {
  it('each simulated node is the production RaftNode (its own log lines are in the trace)', async () => {
    const sim = new Simulation({
      scenario: makeScenario(77, 'default', null),
      makeCore: defaultCoreFactory,
      traceTail: 100_000,
    });
    const result = await sim.run();
    expect(result.ok).toBe(true);
    for (const n of sim.nodes.values()) if (n.up) expect(n.raft).toBeInstanceOf(RaftNode);
    const lines = sim.trace.lines();
    // Written by RaftNode.start() and RaftNode.softStateChanged(), not by the simulator.
    expect(lines.some((l) => /node n\d started at term \d+, applied \d+/.test(l))).toBe(true);
    expect(lines.some((l) => /node n\d is leader, leader n\d/.test(l))).toBe(true);
  });
});

describe('simulator: determinism', () => {
  it('replays a seed exactly: same events, same trace, same outcome', async () => {
    const run = async (seed: number) => {
      const sim = new Simulation({
        scenario: makeScenario(seed, 'default', null),
        makeCore: defaultCoreFactory,
        traceTail: 500,
      });
      const result = await sim.run();
      return { result, trace: sim.trace.lines() };
    };
    const a = await run(4242);
    const b = await run(4242);
    const c = await run(4243);
    expect(a.result.ok).toBe(true);
    expect(b.result.stats).toEqual(a.result.stats);
    expect(b.trace).toEqual(a.trace);
    expect(c.trace).not.toEqual(a.trace);
  });

  it('settles an event the same way with the cheap microtask drain as with a real event-loop turn', async () => {
    const run = async (macrotaskEveryEvents: number) => {
      const sim = new Simulation({
        scenario: makeScenario(4244, 'default', null),
        makeCore: defaultCoreFactory,
        traceTail: 100_000,
        macrotaskEveryEvents,
      });
      const result = await sim.run();
      return { result, trace: sim.trace.lines() };
    };
    const turns = await run(1);
    const drained = await run(1_000_000);
    expect(turns.result.ok).toBe(true);
    expect(drained.result.stats).toEqual(turns.result.stats);
    expect(drained.trace).toEqual(turns.trace);
  });
});

describe('simulator: deliberate core mistakes are caught', () => {
  it(
    'commitPreviousTermByCount (Figure 8) breaks Leader Completeness / State Machine Safety within 200 seeds',
    async () => {
      await expectCaught({
        profile: 'figure8',
        bug: 'commitPreviousTermByCount',
        seedsMax: 200,
        accept: SAFETY_INVARIANTS,
      });
    },
    SIM_TIMEOUT_MS,
  );

  it(
    'voteWithoutLogCheck elects a leader that lacks committed entries within 200 seeds',
    async () => {
      await expectCaught({
        profile: 'default',
        bug: 'voteWithoutLogCheck',
        seedsMax: 200,
        accept: SAFETY_INVARIANTS,
      });
    },
    SIM_TIMEOUT_MS,
  );
});
