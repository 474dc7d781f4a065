import { NodeId } from '../core/types';

/** Cumulative counters for one peer (both lanes, both directions), exported as metrics by the node. */
export interface PeerCounters {
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  framesSent: number;
  framesReceived: number;
  /** Dropped because the lane's outbound queue was full (control drops the oldest, bulk the newest). */
  dropsQueueFull: number;
  /** Dropped because they waited longer than queuedAgeMsMax (peer unreachable meanwhile). */
  dropsStale: number;
  /** Queued AppendRequests dropped because a resend from an earlier index (or a newer term) replaced them. */
  dropsSuperseded: number;
  /** Dropped because they could not be encoded or exceed frameBytesMax (a bug in the sender). */
  dropsUnencodable: number;
  /** Dropped because the peer had no address (not in setPeers) or the transport was closed. */
  dropsNoRoute: number;
  /** Outbound connections that completed the handshake; reconnects = those after the first. */
  connects: number;
  reconnects: number;
  /** Outbound attempts that failed (refused, unreachable, handshake failed). */
  connectFailures: number;
}

export interface PeerStats extends PeerCounters {
  address: string | null;
  /** The address was learned from the peer's handshake, not configured (see tcp-peer-transport.ts). */
  addressLearned: boolean;
  controlConnected: boolean;
  bulkConnected: boolean;
  queuedMessages: number;
  queuedBytes: number;
}

export interface TransportStats {
  nodeId: NodeId;
  /** The bound address (the real port when listening on port 0). */
  listen: string;
  peers: Record<NodeId, PeerStats>;
  /** Inbound connections refused during the handshake (bad or missing MAC, wrong id, garbage, timeout). */
  authFailures: number;
  /** Authenticated connections closed for undecodable frames or messages with a forged `from`. */
  protocolErrors: number;
  /** Inbound messages whose `to` is not this node (dropped). */
  dropsMisrouted: number;
  inboundConnections: number;
}

export function newPeerCounters(): PeerCounters {
  return {
    bytesSent: 0,
    bytesReceived: 0,
    messagesSent: 0,
    messagesReceived: 0,
    framesSent: 0,
    framesReceived: 0,
    dropsQueueFull: 0,
    dropsStale: 0,
    dropsSuperseded: 0,
    dropsUnencodable: 0,
    dropsNoRoute: 0,
    connects: 0,
    reconnects: 0,
    connectFailures: 0,
  };
}

export interface TransportLogger {
  log(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** Lets a repeated operating condition (peer down, queue full) print one line per key per interval. */
export class LogThrottle {
  private last = new Map<string, number>();

  constructor(
    private readonly intervalMs: number,
    private readonly keysMax = 1024,
  ) {}

  allow(key: string, nowMs: number): boolean {
    const t = this.last.get(key);
    if (t !== undefined && nowMs - t < this.intervalMs) return false;
    if (this.last.size >= this.keysMax) this.last.clear();
    this.last.set(key, nowMs);
    return true;
  }
}
