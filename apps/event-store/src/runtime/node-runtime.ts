import * as fs from 'node:fs';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import {
  SoftState,
  NodeId,
  NodeError,
  ReadConsistency,
  RaftNodeApi,
  PromRaftMetrics,
  RaftNode,
  DurableStorage,
  DEFAULT_TRANSPORT_LIMITS,
  TcpPeerTransport,
} from '@app/consensus';
import { RaftTransportStrategy } from '../transport/raft-transport.strategy';
import {
  builtInProjections,
  EventStoreStateMachine,
  Logger,
  ordersProjection,
  ProjectionEngine,
} from '@app/event-store';
import { AppConfig } from '../config';
import { LeaderLocator } from '../http/error-mapping';

/** How long a graceful stop may spend handing leadership over before it just stops. */
const shutdownMsMax = 10_000;
/** The reconnect backoff cap is never below this (the transport's minimum delay is 50 ms). */
const reconnectDelayMsFloor = 100;

/**
 * One node of the cluster: durable Raft storage (DATA_DIR/raft), the event-store state machine
 * (DATA_DIR/events), the peer transport on RAFT_ADDR and the Raft node driving them. Built before the
 * HTTP app so the controllers get a ready node; stopped after the HTTP server stops accepting requests.
 */
export class NodeRuntime implements LeaderLocator {
  private stopping: Promise<void> | null = null;
  /** How long each step of open() took (ms), for the start-up line main.ts logs. */
  readonly startupPhases: [string, number][] = [];
  /** The node's latest soft state (role, leader): a cheap leader check per append instead of status(). */
  private soft: SoftState | null = null;

  private constructor(
    readonly config: AppConfig,
    readonly node: RaftNodeApi,
    readonly store: EventStoreStateMachine,
    /** The Raft transport as a Nest microservice (main.ts connects it; the node starts it if Nest has not yet). */
    readonly transportStrategy: RaftTransportStrategy,
    readonly registry: Registry,
    private readonly logger: Logger,
  ) {
    node.onSoftState((s) => (this.soft = s));
  }

  static async open(config: AppConfig, logger: Logger): Promise<NodeRuntime> {
    const phases: [string, number][] = [];
    let t = performance.now();
    const phase = (name: string) => {
      const now = performance.now();
      phases.push([name, now - t]);
      t = now;
    };
    const raftDir = path.join(config.dataDir, 'raft');
    const eventsDir = path.join(config.dataDir, 'events');
    const fresh = isEmptyDir(config.dataDir);
    fs.mkdirSync(raftDir, { recursive: true });
    fs.mkdirSync(eventsDir, { recursive: true });
    const registry = new Registry();
    const metrics = new PromRaftMetrics(registry);
    const storage = await DurableStorage.open(raftDir, {
      segmentBytes: config.raftSegmentBytes,
      repair: config.repair ?? undefined,
      logger,
    });
    phase('raft-storage');
    const projections = new ProjectionEngine([...builtInProjections(), ordersProjection], { logger });
    const store = await EventStoreStateMachine.open(eventsDir, {
      projections,
      logger,
      limits: {
        appendBytesMax: config.appendBodyBytesMax,
        eventsPerAppendMax: config.appendEventsMax,
        eventBytesMax: config.eventBytesMax,
      },
      streamIndex:
        config.streamIndex === 'disk'
          ? { kind: 'disk', blockCacheBytes: config.streamIndexCacheBytes }
          : { kind: 'memory' },
      projectionState:
        config.projectionState === 'disk'
          ? { kind: 'disk', cacheBytes: config.projectionCacheBytes }
          : { kind: 'memory' },
    });
    phase('event-store');
    const transportStrategy = new RaftTransportStrategy(
      new TcpPeerTransport({
        nodeId: config.nodeId,
        listen: config.raftAddr,
        advertise: config.raftAdvertiseAddr,
        secret: config.clusterSecret,
        tls: config.raftTls && config.tls ? config.tls : null,
        logger,
        limits: { reconnectDelayMsMax: reconnectDelayMsMax(config) },
      }),
    );
    const node = new RaftNode({
      id: config.nodeId,
      storage,
      transport: transportStrategy.peerTransport(),
      stateMachine: store,
      raft: { electionTicks: config.electionTicks },
      tickMs: config.tickMs,
      // Used by the node only when its storage is empty (a crash between mkdir and the first fsync is covered too).
      bootstrap: config.initialCluster ?? undefined,
      joinPeers: config.initialCluster ? undefined : config.joinPeers,
      snapshotEveryEntries: config.snapshotEveryEntries,
      snapshotEveryBytes: config.snapshotEveryBytes,
      snapshotKeepEntries: config.snapshotKeepEntries,
      proposalTimeoutMs: config.proposalTimeoutMs,
      logger,
      metrics,
    });
    const runtime = new NodeRuntime(config, node, store, transportStrategy, registry, logger);
    if (!fresh && config.initialCluster)
      logger.log(
        `DATA_DIR ${config.dataDir} is not empty: INITIAL_CLUSTER ignored, membership comes from the log`,
      );
    if (fresh && !config.initialCluster)
      logger.log(`node ${config.nodeId} starts in join mode: waiting to be added with POST /cluster/members`);
    await node.start();
    phase('raft-start');
    runtime.startupPhases.push(...phases);
    return runtime;
  }

  leaderId(): NodeId | null {
    return this.node.status().leaderId;
  }

  httpUrlOf(id: NodeId): string | null {
    return this.node.status().config.addresses[id]?.httpUrl ?? null;
  }

  /** Writes and linearizable reads are the leader's: elsewhere this throws not_leader (→ 307) or unavailable (→ 503). */
  /**
   * requireLeader() before a proposal, answered from the cached soft state when it says leader: a stale yes
   * is harmless there (the core refuses the proposal with not_leader, which maps to the same answer).
   */
  requireLeaderToPropose(): void {
    if (this.soft?.role !== 'leader') this.requireLeader();
  }

  requireLeader(): void {
    const s = this.node.status();
    if (s.role === 'leader') return;
    if (s.leaderId && s.leaderId !== this.config.nodeId)
      throw new NodeError('not_leader', `node ${this.config.nodeId} is not the leader`, s.leaderId);
    throw new NodeError(
      'unavailable',
      `node ${this.config.nodeId} knows no leader (election in progress?); retry shortly`,
    );
  }

  /** Waits until this node may serve a read at `consistency` (linearizable: ReadIndex on the leader). */
  async readBarrier(consistency: 'linearizable' | 'local'): Promise<void> {
    if (consistency === 'local') return;
    this.requireLeader();
    await this.node.read(consistency satisfies ReadConsistency);
  }

  /** SIGTERM: a leader hands leadership over first; the node closes its transport and storage; then the store closes. */
  shutdown(): Promise<void> {
    this.stopping ??= this.doShutdown();
    return this.stopping;
  }

  private async doShutdown(): Promise<void> {
    const bounded = <T>(p: Promise<T>, what: string) =>
      Promise.race([
        p.catch((err: Error) => this.logger.warn(`${what} failed: ${err.message}`)),
        new Promise<void>((r) =>
          setTimeout(
            () => (this.logger.warn(`${what} took over ${shutdownMsMax} ms; going on`), r()),
            shutdownMsMax,
          ).unref(),
        ),
      ]);
    await bounded(this.node.stop({ transferLeadership: true }), 'stopping the raft node');
    await bounded(this.store.close(), 'closing the event store');
  }
}

/**
 * Reconnect backoff cap: half the (minimum) election timeout, at most the transport's default. A peer that
 * restarts then hears from the leader (and gets its votes) within a fraction of an election timeout; with
 * the transport's 2 s cap a peer down for a second was not retried for up to another 0.8–1.6 s, which was
 * most of a restart's /health → /ready time. Retrying a down peer a few times a second costs nothing.
 */
function reconnectDelayMsMax(config: AppConfig): number {
  return Math.max(
    reconnectDelayMsFloor,
    Math.min(DEFAULT_TRANSPORT_LIMITS.reconnectDelayMsMax, (config.tickMs * config.electionTicks) / 2),
  );
}

function isEmptyDir(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length === 0;
  } catch {
    return true;
  }
}
