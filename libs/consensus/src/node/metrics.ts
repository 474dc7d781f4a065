import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { Role } from '../core/ready';
import { NodeId } from '../core/types';
import { StageHistogram } from './stage-histogram';

/** Milliseconds a proposal spent in each stage on this node, reported when it is applied. */
export interface ProposalStages {
  /** Proposed → this node's log write durable (queueing for the pump plus the group-committed fsync). */
  persistMs: number;
  /** Durable here → known committed (a quorum acknowledged it). */
  quorumMs: number;
  /** Known committed → applied (waiting for earlier Readies in order, then the state machine). */
  applyMs: number;
}

/** Hooks the node calls as it works. Every method is cheap and must not throw. */
export interface RaftNodeMetrics {
  /** One Ready's persist completed (the storage may have shared one fsync between several). */
  persisted(seconds: number, entries: number): void;
  /** A proposal was accepted into the log or refused at once. */
  proposal(outcome: 'accepted' | 'refused'): void;
  /** Sampled every tick. */
  state(sample: { term: number; role: Role; commit: number; applied: number; lastIndex: number }): void;
  /** Leader only, sampled every tick: entries each peer's match index lags behind the leader's last index. */
  peerLag(lagEntries: Record<NodeId, number>): void;
  snapshotTaken(seconds: number, index: number): void;
  /** A proposal made on this node was applied: the time it spent in each stage. */
  proposalStages?(stages: ProposalStages): void;
  /** A local snapshot was taken: the time of its parts. */
  snapshotStages?(stages: SnapshotStages): void;
}

/** Milliseconds of one local snapshot's parts. */
export interface SnapshotStages {
  /** The synchronous part of the state machine's snapshot() call: the event loop was held this long. */
  captureSyncMs: number;
  /** snapshot() called until its content was ready (sync part included). */
  captureMs: number;
  /** Storing the content (hard links or copies, fsyncs). */
  writeMs: number;
  /** Compacting the log behind it. */
  compactMs: number;
}

/** Seconds; fine below a millisecond (single appends), coarse up to the seconds a stall can take. */
export const stageBuckets = [
  0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.01,
  0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

const roles: Role[] = ['follower', 'pre-candidate', 'candidate', 'leader', 'learner'];

/** RaftNodeMetrics as Prometheus metrics registered in `registry` (served by GET /metrics). */
export class PromRaftMetrics implements RaftNodeMetrics {
  private readonly persistSeconds: Histogram;
  private readonly readyEntries: Histogram;
  private readonly proposals: Counter<'outcome'>;
  private readonly proposalCounts = { accepted: 0, refused: 0 };
  private readonly term: Gauge;
  private readonly role: Gauge<'role'>;
  private readonly commitIndex: Gauge;
  private readonly appliedIndex: Gauge;
  private readonly lastLogIndex: Gauge;
  private readonly peerLagEntries: Gauge<'peer'>;
  private readonly snapshotSeconds: Histogram;
  private readonly snapshotIndex: Gauge;
  private readonly stagePersist: (seconds: number) => void;
  private readonly stageQuorum: (seconds: number) => void;
  private readonly stageApply: (seconds: number) => void;
  private readonly snapshotStageSeconds: Histogram<'stage'>;

  constructor(registry: Registry, prefix = 'raft_') {
    const registers = [registry];
    this.persistSeconds = new Histogram({
      name: `${prefix}persist_seconds`,
      help: 'Time from a Ready handed to storage.persist until durable (write + fsync, group-committed)',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.readyEntries = new Histogram({
      name: `${prefix}ready_entries`,
      help: 'Log entries persisted per Ready (batch size)',
      buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    });
    // Counted in plain numbers on the hot path (proposal()); copied into the counter only when scraped.
    const proposalCounts = this.proposalCounts;
    this.proposals = new Counter({
      name: `${prefix}proposals_total`,
      help: 'Proposals by outcome',
      labelNames: ['outcome'],
      registers,
      collect() {
        this.reset();
        this.inc({ outcome: 'accepted' }, proposalCounts.accepted);
        this.inc({ outcome: 'refused' }, proposalCounts.refused);
      },
    });
    this.term = new Gauge({ name: `${prefix}term`, help: 'Current term', registers });
    this.role = new Gauge({
      name: `${prefix}role`,
      help: '1 for the role this node has, 0 for the others',
      labelNames: ['role'],
      registers,
    });
    this.commitIndex = new Gauge({ name: `${prefix}commit_index`, help: 'Commit index', registers });
    this.appliedIndex = new Gauge({ name: `${prefix}applied_index`, help: 'Applied index', registers });
    this.lastLogIndex = new Gauge({ name: `${prefix}last_log_index`, help: 'Last log index', registers });
    this.peerLagEntries = new Gauge({
      name: `${prefix}peer_lag_entries`,
      help: "Leader only: entries between the leader's last index and each peer's match index",
      labelNames: ['peer'],
      registers,
    });
    this.snapshotSeconds = new Histogram({
      name: `${prefix}snapshot_seconds`,
      help: 'Time to take and store a state-machine snapshot',
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 30],
      registers,
    });
    const stages = new StageHistogram(
      `${prefix}proposal_stage_seconds`,
      'Where a proposal made on this node spent its time until applied: persist (proposed until durable in the local log), quorum (durable until known committed), apply (committed until applied)',
      'stage',
      stageBuckets,
      registers,
    );
    this.stagePersist = stages.child('persist');
    this.stageQuorum = stages.child('quorum');
    this.stageApply = stages.child('apply');
    this.snapshotStageSeconds = new Histogram({
      name: `${prefix}snapshot_stage_seconds`,
      help: "A local snapshot's parts: capture_sync (held the event loop inside the state machine's snapshot call), capture (until its content was ready), write (stored), compact (log compacted behind it)",
      labelNames: ['stage'],
      buckets: stageBuckets,
      registers,
    });
    this.snapshotIndex = new Gauge({
      name: `${prefix}snapshot_index`,
      help: 'Index of the latest local snapshot',
      registers,
    });
  }

  persisted(seconds: number, entries: number): void {
    this.persistSeconds.observe(seconds);
    this.readyEntries.observe(entries);
  }

  proposal(outcome: 'accepted' | 'refused'): void {
    this.proposalCounts[outcome]++;
  }

  state(sample: { term: number; role: Role; commit: number; applied: number; lastIndex: number }): void {
    this.term.set(sample.term);
    for (const r of roles) this.role.set({ role: r }, r === sample.role ? 1 : 0);
    this.commitIndex.set(sample.commit);
    this.appliedIndex.set(sample.applied);
    this.lastLogIndex.set(sample.lastIndex);
  }

  peerLag(lagEntries: Record<NodeId, number>): void {
    this.peerLagEntries.reset();
    for (const [peer, lag] of Object.entries(lagEntries)) this.peerLagEntries.set({ peer }, lag);
  }

  proposalStages(stages: ProposalStages): void {
    this.stagePersist(stages.persistMs / 1000);
    this.stageQuorum(stages.quorumMs / 1000);
    this.stageApply(stages.applyMs / 1000);
  }

  snapshotStages(stages: SnapshotStages): void {
    const h = this.snapshotStageSeconds;
    h.observe({ stage: 'capture_sync' }, stages.captureSyncMs / 1000);
    h.observe({ stage: 'capture' }, stages.captureMs / 1000);
    h.observe({ stage: 'write' }, stages.writeMs / 1000);
    h.observe({ stage: 'compact' }, stages.compactMs / 1000);
  }

  snapshotTaken(seconds: number, index: number): void {
    this.snapshotSeconds.observe(seconds);
    this.snapshotIndex.set(index);
  }
}
