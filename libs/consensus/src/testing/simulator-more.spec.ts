import { RaftCoreApi } from '../core/api';
import { Message } from '../core/messages';
import { RaftCore } from '../core/raft';
import { SAFETY_INVARIANTS, expectAllPass, expectCaught, runRange } from './sim-spec-support';
import { CoreFactory } from './sim-node';

const SIM_TIMEOUT_MS = 600_000;

describe('simulator: fault profiles', () => {
  it(
    'figure8: 5 voters, leaders crash or go mute right after election or commit; every invariant holds',
    async () => {
      const summary = await runRange({ from: 1, seeds: 120, profile: 'figure8' });
      expectAllPass(summary);
      expect(summary.totals.leaders / summary.ran).toBeGreaterThan(10);
    },
    SIM_TIMEOUT_MS,
  );

  it(
    'partitions: leaders cut off (symmetric and one-way) while clients read; reads stay linearizable',
    async () => {
      const summary = await runRange({ from: 1, seeds: 300, profile: 'partitions' });
      expectAllPass(summary);
      expect(summary.totals.partitions / summary.ran).toBeGreaterThan(5);
      expect(summary.totals.reads / summary.ran).toBeGreaterThan(50);
    },
    SIM_TIMEOUT_MS,
  );

  it(
    'elections: slow network, concurrent candidates, crashes right after voting; one leader per term',
    async () => {
      const summary = await runRange({ from: 1, seeds: 400, profile: 'elections' });
      expectAllPass(summary);
      expect(summary.totals.leaders / summary.ran).toBeGreaterThan(4);
    },
    SIM_TIMEOUT_MS,
  );

  it(
    'leases: lease reads while the leader loses one follower and others crash and restart at once',
    async () => {
      const summary = await runRange({ from: 1, seeds: 300, profile: 'leases' });
      expectAllPass(summary);
      expect(summary.totals.reads / summary.ran).toBeGreaterThan(100);
    },
    SIM_TIMEOUT_MS,
  );

  it(
    'default seeds 2001..2200 (pipelined persistence, pending snapshot chunks in some)',
    async () => {
      expectAllPass(await runRange({ from: 2001, seeds: 200, profile: 'default' }));
    },
    SIM_TIMEOUT_MS,
  );

  it(
    'calm: no faults, membership changes and transfers only',
    async () => {
      const summary = await runRange({ from: 1, seeds: 50, profile: 'calm' });
      expectAllPass(summary);
      expect(summary.totals.acknowledgedWrites / summary.ran).toBeGreaterThan(50);
    },
    SIM_TIMEOUT_MS,
  );
});

describe('simulator: deliberate mistakes are caught', () => {
  it('ackBeforePersist is caught at once by the persist-before-acknowledge check', async () => {
    await expectCaught({
      profile: 'default',
      bug: 'ackBeforePersist',
      seedsMax: 5,
      accept: ['PersistBeforeAck'],
    });
  });

  it(
    'ackBeforePersist without that check: crashes lose acknowledged entries and break safety within 200 seeds',
    async () => {
      await expectCaught({
        profile: 'figure8',
        bug: 'ackBeforePersist',
        seedsMax: 200,
        accept: SAFETY_INVARIANTS,
        persistCheck: false,
      });
    },
    SIM_TIMEOUT_MS,
  );

  it(
    'readWithoutQuorum: a deposed leader serves a stale read within 200 seeds',
    async () => {
      await expectCaught({
        profile: 'partitions',
        bug: 'readWithoutQuorum',
        seedsMax: 200,
        accept: ['ReadLinearizability'],
      });
    },
    SIM_TIMEOUT_MS,
  );

  it(
    'sendBeforePersist (RaftNode sends acknowledgements before their fsync) is caught by the persist-before-acknowledge check',
    async () => {
      await expectCaught({
        profile: 'default',
        bug: 'sendBeforePersist',
        seedsMax: 20,
        accept: ['PersistBeforeAck'],
      });
    },
    SIM_TIMEOUT_MS,
  );

  it(
    'forgetVoteOnRestart (simulated disk): a node votes twice in a term, two leaders within 200 seeds',
    async () => {
      await expectCaught({
        profile: 'elections',
        bug: 'forgetVoteOnRestart',
        seedsMax: 200,
        accept: ['ElectionSafety', ...SAFETY_INVARIANTS],
      });
    },
    SIM_TIMEOUT_MS,
  );
});

/**
 * The core bug of FINDINGS.md #1, put back from outside: answers to requests of an older term echo the
 * request's seq again. A restarted leader of the newer term would count them as acknowledgements.
 */
const echoingStaleSeqCore: CoreFactory = (options, log, initial) => {
  const core = new RaftCore(options, log, initial);
  const staleSeq = new Map<string, number>();
  const isRequest = (m: Message) => m.type === 'AppendRequest' || m.type === 'SnapshotRequest';
  const wrapped: RaftCoreApi = {
    tick: () => core.tick(),
    step: (m) => {
      if (isRequest(m) && m.term < core.status().term) staleSeq.set(m.from, (m as { seq: number }).seq);
      core.step(m);
    },
    propose: (data) => core.propose(data),
    readIndex: (ctx, opts) => core.readIndex(ctx, opts),
    changeMembership: (change) => core.changeMembership(change),
    transferLeadership: (to) => core.transferLeadership(to),
    campaign: () => core.campaign(),
    leaderGone: (id) => core.leaderGone(id),
    campaignIfLeaderless: () => core.campaignIfLeaderless(),
    hasReady: () => core.hasReady(),
    ready: () => {
      const rd = core.ready();
      for (const m of [...rd.messages, ...rd.persistedMessages]) {
        if (
          (m.type === 'AppendResponse' || m.type === 'SnapshotResponse') &&
          m.seq === 0 &&
          staleSeq.has(m.to)
        ) {
          m.seq = staleSeq.get(m.to)!;
          staleSeq.delete(m.to);
        }
      }
      return rd;
    },
    advance: (rd) => core.advance(rd),
    snapshotTaken: (meta) => core.snapshotTaken(meta),
    status: () => core.status(),
  };
  return wrapped;
};

describe('simulator: the bug it found stays found', () => {
  it(
    'pipelineThroughInstall (FINDINGS.md #2: RaftNode persisted the next Ready before installing a snapshot) fails a node within 300 seeds',
    async () => {
      await expectCaught({
        profile: 'default',
        bug: 'pipelineThroughInstall',
        seedsMax: 300,
        accept: ['NodeFailed'],
      });
    },
    SIM_TIMEOUT_MS,
  );

  it(
    'stale-term answers that echo the request seq are flagged (StaleAck) within 200 seeds',
    async () => {
      await expectCaught({
        profile: 'elections',
        bug: null,
        seedsMax: 200,
        accept: ['StaleAck'],
        makeCore: echoingStaleSeqCore,
      });
    },
    SIM_TIMEOUT_MS,
  );
});
