// Public surface of the consensus library (`@app/consensus`): the core's data types, the node shell, its
// ports and errors, the TCP transport and the durable storage. Test tooling: `@app/consensus/testing`.
export * from './core/types';
export * from './core/messages';
export * from './core/ready';
export * from './core/options';
export * from './core/api';
export * from './node/api';
export * from './node/ports';
export { RaftNode } from './node/raft-node';
export { PromRaftMetrics, stageBuckets } from './node/metrics';
export { StageHistogram } from './node/stage-histogram';
export type { ProposalStages, RaftNodeMetrics, SnapshotStages } from './node/metrics';
export { TcpPeerTransport } from './transport/tcp-peer-transport';
export type { TcpPeerTransportOptions, TransportTls } from './transport/tcp-peer-transport';
export { DEFAULT_TRANSPORT_LIMITS } from './transport/limits';
export type { TransportLimits } from './transport/limits';
export { DurableStorage } from './storage/durable-storage';
export type { DurableStorageOptions } from './storage/durable-storage';
