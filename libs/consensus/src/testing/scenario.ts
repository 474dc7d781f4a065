import { DEFAULT_RAFT_OPTIONS, RaftOptions, UnsafeSwitches } from '../core/options';
import { NetworkFaults } from './network';
import { Prng } from './prng';
import { ShellProfile } from './sim-node';

export const PROFILES = ['default', 'figure8', 'partitions', 'elections', 'leases', 'calm'] as const;
export type ProfileName = (typeof PROFILES)[number];

/**
 * Deliberate mistakes: the core's unsafe switches, RaftNode's (sendBeforePersist: acknowledgements leave
 * before their fsync; pipelineThroughInstall: Readies taken while a snapshot install is in flight) and one
 * of the simulated disk (forgetVoteOnRestart).
 */
export const BUGS = [
  'commitPreviousTermByCount',
  'voteWithoutLogCheck',
  'ackBeforePersist',
  'readWithoutQuorum',
  'forgetVoteOnRestart',
  'sendBeforePersist',
  'pipelineThroughInstall',
] as const;
export type BugName = (typeof BUGS)[number];
/** The mistakes that are not the core's: RaftNode's unsafe switches and the simulated disk's. */
const SHELL_BUGS: readonly BugName[] = ['forgetVoteOnRestart', 'sendBeforePersist', 'pipelineThroughInstall'];

/** Everything one seed decides before the run starts. */
export interface Scenario {
  seed: number;
  profile: ProfileName;
  bug: BugName | null;
  initialVoters: number;
  /** Live nodes at most (voters, learners and removed nodes not yet stopped). */
  nodesMax: number;
  votersMin: number;
  votersMax: number;
  tickMs: number;
  /** Each node's clock runs (1 ± tickDriftMax) as fast; every tick also jitters by ± tickJitterMs. */
  tickDriftMax: number;
  tickJitterMs: number;
  raft: Omit<RaftOptions, 'id' | 'random' | 'logger'>;
  shell: ShellProfile;
  network: NetworkFaults;
  /** The safety phase: faults happen. */
  faultPhaseMs: number;
  /** The liveness phase: no faults; a leader must commit a fresh write everywhere within this. */
  livenessMsMax: number;
  /** Mean time between crashes (0 = none); a crashed node restarts after downMs. */
  crashEveryMs: number;
  downMsMin: number;
  downMsMax: number;
  /** Probability that a crash hits the current leader. */
  leaderCrashBias: number;
  /** Probability that a node crashes within a few ms after its vote became durable (then restarts quickly). */
  crashAfterVoteRate: number;
  /** Probability that a new leader crashes within crashAfterElectionMsMax (Figure 8: leaders die young). */
  crashAfterElectionRate: number;
  crashAfterElectionMsMax: number;
  /** Probability that a new leader's outbound links are cut at once (its new entries stay local). */
  muteAfterElectionRate: number;
  /** Probability that a leader crashes right after its commit index advances (before telling anyone). */
  crashAfterCommitRate: number;
  /** Probability, per Ready with work to persist, of a crash before its fsync completes. */
  crashDuringFsyncRate: number;
  partitionEveryMs: number;
  partitionMsMin: number;
  partitionMsMax: number;
  /** Share of partitions that cut only the link between the leader and one follower (both ways). */
  linkCutRate: number;
  proposeEveryMs: number;
  readEveryMs: number;
  membershipEveryMs: number;
  transferEveryMs: number;
}

export function makeScenario(
  seed: number,
  profile: ProfileName,
  bug: BugName | null,
  opts: { persistCheck?: boolean } = {},
): Scenario {
  const r = new Prng(seed).derive(`scenario:${profile}`);
  const base = baseScenario(seed, profile, bug, r);
  base.shell.checkPersistBeforeAck = opts.persistCheck ?? true;
  switch (profile) {
    case 'default':
      return base;
    case 'partitions':
      return partitions(base, r);
    case 'elections':
      return elections(base, r);
    case 'leases':
      return leases(base, r);
    case 'calm':
      return {
        ...base,
        crashEveryMs: 0,
        partitionEveryMs: 0,
        network: { ...base.network, dropRate: 0, duplicateRate: 0, longDelayRate: 0 },
      };
    case 'figure8':
      return figure8(base, r);
  }
}

function baseScenario(seed: number, profile: ProfileName, bug: BugName | null, r: Prng): Scenario {
  const unsafe: UnsafeSwitches = {};
  if (bug !== null && !SHELL_BUGS.includes(bug)) unsafe[bug as keyof UnsafeSwitches] = true;
  const electionTicks = r.int(8, 12);
  const lossy = r.chance(0.7);
  return {
    seed,
    profile,
    bug,
    initialVoters: r.chance(0.6) ? 3 : 5,
    nodesMax: 7,
    votersMin: 3,
    votersMax: 5,
    tickMs: 10,
    tickDriftMax: 0.02,
    tickJitterMs: 0.5,
    raft: {
      ...DEFAULT_RAFT_OPTIONS,
      electionTicks,
      heartbeatTicks: r.int(1, 3),
      inflightMsgsMax: r.pick([1, 4, 64]),
      // Small limits so replication takes several messages and snapshots several chunks.
      msgBytesMax: r.pick([64, 256, 4096]),
      uncommittedBytesMax: r.pick([2048, 1024 * 1024]),
      snapshotChunkBytes: r.pick([48, 128, 100_000]),
      preVote: r.chance(0.7),
      checkQuorum: r.chance(0.7),
      // Lease reads assume clocks drift by less than clockDriftTicksMax per election timeout (ours: ±2%).
      leaseReads: r.chance(0.3),
      clockDriftTicksMax: 2,
      unsafe,
    },
    shell: {
      // RaftNode's default (16), no pipelining, or a little.
      readiesInFlightMax: r.pick([16, 1, r.int(2, 4)]),
      fsyncMsMin: 0.2,
      fsyncMsMax: r.pick([2, 6, 15]),
      slowFsyncRate: 0.02,
      slowFsyncMsMax: 60,
      snapshotEveryEntries: r.pick([8, 20, 60]),
      snapshotKeepEntries: r.pick([0, 0, 5, 30]),
      pendingSnapshotRate: r.pick([0, 0.2, 0.5]),
      forgetVoteOnRestart: bug === 'forgetVoteOnRestart',
      sendBeforePersist: bug === 'sendBeforePersist',
      pipelineThroughInstall: bug === 'pipelineThroughInstall',
      checkPersistBeforeAck: true,
    },
    network: {
      dropRate: lossy ? r.pick([0.01, 0.05, 0.1]) : 0,
      duplicateRate: lossy ? r.pick([0, 0.02, 0.05]) : 0,
      delayMsMin: 0.5,
      delayMsMax: r.pick([3, 8, 20]),
      longDelayRate: lossy ? r.pick([0.01, 0.03]) : 0,
      longDelayMsMax: r.pick([200, 800]),
    },
    faultPhaseMs: 3_000,
    livenessMsMax: 4_000,
    crashEveryMs: r.pick([150, 300, 600]),
    downMsMin: 5,
    downMsMax: r.pick([50, 300, 800]),
    leaderCrashBias: r.pick([0.2, 0.5]),
    crashAfterVoteRate: r.pick([0, 0.02]),
    crashAfterElectionRate: r.pick([0, 0.05]),
    crashAfterElectionMsMax: 30,
    muteAfterElectionRate: 0,
    crashAfterCommitRate: 0,
    crashDuringFsyncRate: r.pick([0, 0.002]),
    partitionEveryMs: r.pick([0, 300, 700]),
    partitionMsMin: 50,
    partitionMsMax: 600,
    linkCutRate: 0,
    proposeEveryMs: r.pick([4, 10, 25]),
    readEveryMs: r.pick([10, 30]),
    membershipEveryMs: r.pick([150, 400]),
    transferEveryMs: r.pick([300, 900]),
  };
}

/**
 * Figure 8 of the Raft paper: 5 voters, leaders crash often right after appending, so entries of old
 * terms sit on a majority without being committed by their own term's leader.
 */
function figure8(base: Scenario, r: Prng): Scenario {
  return {
    ...base,
    initialVoters: 5,
    faultPhaseMs: 9_000,
    // One entry per message and one message in flight: a new leader may have hundreds of entries to send.
    livenessMsMax: 10_000,
    membershipEveryMs: 0,
    partitionEveryMs: 0,
    crashEveryMs: r.pick([100, 200]),
    downMsMin: 5,
    downMsMax: r.pick([20, 60]),
    leaderCrashBias: 0.8,
    crashAfterElectionRate: 0.3,
    crashAfterElectionMsMax: r.pick([2, 10, 20]),
    muteAfterElectionRate: 0.3,
    partitionMsMin: 10,
    partitionMsMax: 100,
    crashAfterCommitRate: r.pick([0.3, 0.6]),
    crashDuringFsyncRate: r.pick([0.005, 0.02]),
    proposeEveryMs: r.pick([2, 5]),
    // One entry per AppendRequest: an old-term entry often reaches a majority before the new leader's no-op.
    raft: {
      ...base.raft,
      electionTicks: r.int(4, 6),
      heartbeatTicks: 1,
      preVote: false,
      checkQuorum: false,
      msgBytesMax: r.pick([1, 16]),
      inflightMsgsMax: r.pick([1, 2, 64]),
    },
    network: { ...base.network, dropRate: r.pick([0.05, 0.2]), delayMsMax: r.pick([3, 10]) },
  };
}

/** Leaders cut off (often one way) for long stretches; clients keep reading from whoever believes it leads. */
function partitions(base: Scenario, r: Prng): Scenario {
  return {
    ...base,
    raft: { ...base.raft, checkQuorum: r.chance(0.4) },
    crashEveryMs: r.pick([0, 800]),
    partitionEveryMs: r.pick([150, 300]),
    partitionMsMin: 100,
    partitionMsMax: 1000,
    readEveryMs: 5,
    proposeEveryMs: r.pick([4, 10]),
  };
}

/** Many concurrent candidates (slow network, no pre-vote often) and crashes right after voting. */
function elections(base: Scenario, r: Prng): Scenario {
  return {
    ...base,
    initialVoters: r.chance(0.7) ? 5 : 3,
    raft: { ...base.raft, preVote: r.chance(0.2), electionTicks: r.int(4, 6) },
    // Vote requests are slow to arrive, so a voter can crash, restart and be asked again in the same term.
    network: { ...base.network, delayMsMin: 5, delayMsMax: r.pick([20, 30]) },
    crashEveryMs: 100,
    downMsMin: 1,
    downMsMax: r.pick([5, 20]),
    leaderCrashBias: 0.5,
    crashAfterVoteRate: r.pick([0.3, 0.6]),
    faultPhaseMs: 8_000,
    membershipEveryMs: 0,
  };
}

/**
 * Lease reads under partial partitions (leader cut off from one follower) and followers that crash and
 * come back at once: a restarted voter must not help elect a new leader while the old one's lease runs.
 */
function leases(base: Scenario, r: Prng): Scenario {
  return {
    ...base,
    initialVoters: r.chance(0.7) ? 3 : 5,
    raft: {
      ...base.raft,
      leaseReads: true,
      checkQuorum: true,
      preVote: r.chance(0.5),
      heartbeatTicks: r.int(2, 3),
    },
    shell: { ...base.shell, fsyncMsMax: r.pick([1, 3]) },
    network: { ...base.network, delayMsMax: r.pick([2, 5]) },
    crashEveryMs: r.pick([20, 40]),
    leaderCrashBias: 0,
    downMsMin: 1,
    downMsMax: r.pick([3, 10]),
    partitionEveryMs: r.pick([100, 200]),
    partitionMsMin: 50,
    partitionMsMax: 300,
    linkCutRate: 0.8,
    readEveryMs: 2,
    proposeEveryMs: 3,
    membershipEveryMs: 0,
    transferEveryMs: 0,
  };
}

export function describeScenario(s: Scenario): string {
  const o = s.raft;
  return [
    `profile=${s.profile}${s.bug ? ` bug=${s.bug}` : ''} voters=${s.initialVoters}`,
    `election=${o.electionTicks}t heartbeat=${o.heartbeatTicks}t preVote=${o.preVote} checkQuorum=${o.checkQuorum} leaseReads=${o.leaseReads} inflight=${o.inflightMsgsMax} msgBytes=${o.msgBytesMax} chunk=${o.snapshotChunkBytes}`,
    `readiesInFlight=${s.shell.readiesInFlightMax} fsync<=${s.shell.fsyncMsMax}ms snapshotEvery=${s.shell.snapshotEveryEntries} keep=${s.shell.snapshotKeepEntries} pendingSnap=${s.shell.pendingSnapshotRate}`,
    `drop=${s.network.dropRate} dup=${s.network.duplicateRate} delay<=${s.network.delayMsMax}ms crashEvery=${s.crashEveryMs}ms crashAfterVote=${s.crashAfterVoteRate} crashAfterElection=${s.crashAfterElectionRate}/${s.crashAfterElectionMsMax}ms muteAfterElection=${s.muteAfterElectionRate} crashAfterCommit=${s.crashAfterCommitRate} crashDuringFsync=${s.crashDuringFsyncRate} down<=${s.downMsMax}ms partitionEvery=${s.partitionEveryMs}ms membershipEvery=${s.membershipEveryMs}ms`,
  ].join('\n  ');
}
