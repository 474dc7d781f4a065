import { DEFAULT_RAFT_OPTIONS, RaftOptions, UnsafeSwitches } from '../core/options';
import { NetworkFaults } from './network';
import { Prng } from './prng';
import { ShellProfile } from './sim-node';

/**
 * `default` is the swarm (each seed draws its own fault mix, see `swarm`); `classic` is the fixed mix the
 * default was before; the others are hand-made shapes aimed at one kind of mistake.
 */
export const PROFILES = [
  'default',
  'classic',
  'figure8',
  'partitions',
  'elections',
  'leases',
  'calm',
] as const;
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
  /** The swarm's draw in words (the fault kinds it switched on); empty for the fixed profiles. */
  mix: string;
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
      return defaultMix(base, r, new Prng(seed).derive('swarm'));
    case 'classic':
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
    mix: '',
  };
}

/**
 * The hand-made shapes the default profile draws from (each aimed at a kind of mistake). Figure 8 twice: its
 * histories are the rarest by chance (a planted mistake it exposes is caught in about 1 in 12 of its seeds).
 */
const SHAPES = ['figure8', 'figure8', 'partitions', 'elections', 'leases'] as const;

/**
 * The default profile. Half the seeds are a pure swarm (below); the other half take one of the hand-made
 * shapes, with its own random draws of cluster size, timeouts and rates. The swarm finds the combinations
 * nobody thought of, but a mistake that needs k fault kinds at once shows up in only 1 of 2^k of its seeds;
 * the shapes are such conjunctions, known to matter (Figure 8 needs tiny messages, new leaders that go mute
 * and leaders that crash right after committing), so every mistake they expose is met in 1 seed of 10 (or
 * 5) with its best odds. Measured per planted mistake in FINDINGS.md.
 */
function defaultMix(base: Scenario, r: Prng, s: Prng): Scenario {
  if (s.chance(0.5)) return swarm(base, s);
  const shape = s.pick(SHAPES);
  const shaped =
    shape === 'figure8'
      ? figure8(base, r)
      : shape === 'partitions'
        ? partitions(base, r)
        : shape === 'elections'
          ? elections(base, r)
          : leases(base, r);
  return { ...shaped, mix: `shape=${shape}` };
}

/**
 * Swarm testing (Groce et al., "Swarm Testing", ISSTA 2012; TigerBeetle's VOPR does the same): each seed
 * switches every kind of fault on or off and draws its rate and timing, and draws the cluster's size and
 * timeouts. One fixed mix of everything hides some mistakes: pre-vote, partitions and membership
 * changes damp the leader churn Figure 8 needs, while the crash storms that Figure 8 needs
 * leave no stable leader to serve the stale reads a partition exposes. Omitting some faults in each seed
 * lets the others reach their corner cases; over many seeds every combination comes up.
 */
function swarm(base: Scenario, r: Prng): Scenario {
  const on: string[] = [];
  const feature = (name: string, p = 0.5): boolean => {
    const yes = r.chance(p);
    if (yes) on.push(name);
    return yes;
  };
  const electionTicks = r.int(4, 12);
  const heartbeatTicks = r.int(1, Math.min(3, electionTicks - 1));
  const preVote = feature('preVote');
  const checkQuorum = feature('checkQuorum');
  const leaseReads = feature('leaseReads', 0.3);
  let drift = feature('clockDrift') ? r.pick([0.05, 0.1, 0.2]) : r.pick([0, 0.02]);
  if (leaseReads) {
    // The lease (electionTicks - 2 ticks of the leader's clock) must end before a follower that heard the
    // same round stops ignoring vote requests (at least electionTicks - 1 of its ticks, the first one may
    // come at once). So the two clocks' rates may differ by a factor (E - 1) / (E - 2) at most; half of
    // that margin is for drift, the rest for the ±5% jitter of single ticks. Past that, a stale lease read
    // is what the configuration asked for, not a bug.
    drift = Math.min(drift, 0.25 / (electionTicks - 2));
  }
  const crashes = feature('crashes', 0.7);
  const leaderCrashes = crashes && feature('leaderCrashes');
  const partitions = feature('partitions');
  // 1 byte = one entry per AppendRequest: an old-term entry often reaches a majority before the no-op.
  const msgBytesMax = feature('tinyMessages') ? r.pick([1, 16]) : r.pick([64, 256, 4096, 1024 * 1024]);
  // With a few entries per message a leader replicates only tens of entries per second: then the backlog a
  // follower or the client's fresh write waits behind must stay short for the cluster to converge within
  // livenessMsMax (small uncommittedBytesMax, frequent snapshots, a fast network). That is back-pressure
  // and capacity, not a fault the simulator should report as a liveness failure.
  const tinyMessages = msgBytesMax <= 16;
  const slowNetwork = feature('slowNetwork', tinyMessages ? 0 : 0.3);
  const snapshots = feature('snapshots', tinyMessages ? 1 : 0.7);
  const partitionMsMin = r.pick([10, 50, 100]);
  return {
    ...base,
    initialVoters: r.pick([3, 5]),
    tickDriftMax: drift,
    // Figure 8 histories need many short terms to pile up: some seeds run their faults twice as long.
    faultPhaseMs: r.pick([3_000, 3_000, 6_000]),
    // Long enough for a leader that sends one entry per message to catch up hundreds of entries.
    livenessMsMax: 10_000,
    raft: {
      ...base.raft,
      electionTicks,
      heartbeatTicks,
      preVote,
      checkQuorum,
      leaseReads,
      msgBytesMax,
      inflightMsgsMax: r.pick([1, 2, 4, 64]),
      uncommittedBytesMax: tinyMessages ? 512 : base.raft.uncommittedBytesMax,
    },
    shell: {
      ...base.shell,
      // Rare snapshots rather than none: a follower far behind must still catch up in time.
      snapshotEveryEntries: snapshots ? r.pick([8, 20, 60]) : 400,
    },
    network: {
      ...base.network,
      dropRate: feature('loss') ? r.pick([0.01, 0.05, 0.1, 0.2]) : 0,
      duplicateRate: feature('duplicates') ? r.pick([0.01, 0.05]) : 0,
      longDelayRate: feature('reordering') ? r.pick([0.01, 0.03, 0.1]) : 0,
      longDelayMsMax: r.pick([200, 800]),
      delayMsMin: slowNetwork ? 5 : 0.5,
      delayMsMax: slowNetwork ? r.pick([20, 30]) : r.pick([2, 3, 5, 10]),
    },
    crashEveryMs: crashes ? r.pick([50, 100, 200, 400, 800]) : 0,
    downMsMin: r.pick([1, 5]),
    downMsMax: r.pick([5, 10, 20, 60, 300, 800]),
    leaderCrashBias: leaderCrashes ? r.pick([0.5, 0.8]) : r.pick([0, 0.2]),
    crashAfterVoteRate: feature('crashAfterVote') ? r.pick([0.02, 0.3, 0.6]) : 0,
    crashAfterElectionRate: feature('crashAfterElection') ? r.pick([0.05, 0.3]) : 0,
    crashAfterElectionMsMax: r.pick([2, 10, 20, 30]),
    muteAfterElectionRate: feature('muteAfterElection') ? r.pick([0.1, 0.3, 0.5]) : 0,
    crashAfterCommitRate: feature('crashAfterCommit') ? r.pick([0.1, 0.3, 0.6]) : 0,
    crashDuringFsyncRate: feature('crashDuringFsync') ? r.pick([0.002, 0.005, 0.02]) : 0,
    partitionEveryMs: partitions ? r.pick([100, 150, 300, 700]) : 0,
    // Also how long a muted new leader stays muted.
    partitionMsMin,
    partitionMsMax: Math.max(partitionMsMin, r.pick([100, 300, 600, 1000])),
    linkCutRate: feature('linkCuts', 0.3) ? r.pick([0.3, 0.8]) : 0,
    proposeEveryMs: r.pick([3, 5, 10, 25]),
    readEveryMs: r.pick([5, 10, 30]),
    membershipEveryMs: feature('membership') ? r.pick([100, 150, 400]) : 0,
    transferEveryMs: feature('transfers') ? r.pick([100, 300, 900]) : 0,
    mix: on.join(' '),
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
    `profile=${s.profile}${s.bug ? ` bug=${s.bug}` : ''} voters=${s.initialVoters} faultPhase=${s.faultPhaseMs}ms drift=${s.tickDriftMax}${s.mix ? ` mix=[${s.mix}]` : ''}`,
    `election=${o.electionTicks}t heartbeat=${o.heartbeatTicks}t preVote=${o.preVote} checkQuorum=${o.checkQuorum} leaseReads=${o.leaseReads} inflight=${o.inflightMsgsMax} msgBytes=${o.msgBytesMax} chunk=${o.snapshotChunkBytes}`,
    `readiesInFlight=${s.shell.readiesInFlightMax} fsync<=${s.shell.fsyncMsMax}ms snapshotEvery=${s.shell.snapshotEveryEntries} keep=${s.shell.snapshotKeepEntries} pendingSnap=${s.shell.pendingSnapshotRate}`,
    `drop=${s.network.dropRate} dup=${s.network.duplicateRate} delay=${s.network.delayMsMin}-${s.network.delayMsMax}ms longDelay=${s.network.longDelayRate} crashEvery=${s.crashEveryMs}ms crashAfterVote=${s.crashAfterVoteRate} crashAfterElection=${s.crashAfterElectionRate}/${s.crashAfterElectionMsMax}ms muteAfterElection=${s.muteAfterElectionRate} crashAfterCommit=${s.crashAfterCommitRate} crashDuringFsync=${s.crashDuringFsyncRate} down<=${s.downMsMax}ms partitionEvery=${s.partitionEveryMs}ms for ${s.partitionMsMin}-${s.partitionMsMax}ms linkCut=${s.linkCutRate} membershipEvery=${s.membershipEveryMs}ms transferEvery=${s.transferEveryMs}ms proposeEvery=${s.proposeEveryMs}ms readEvery=${s.readEveryMs}ms`,
  ].join('\n  ');
}
