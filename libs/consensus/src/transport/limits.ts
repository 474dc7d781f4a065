/**
 * Every limit of the peer transport, with its unit. One place, relations asserted below (also against the
 * Raft core's flow-control limits, whose messages these queues hold).
 */
import { DEFAULT_RAFT_OPTIONS } from '../core/options';
const KiB = 1024;
const MiB = 1024 * KiB;

export interface TransportLimits {
  /** Largest frame accepted or sent (length prefix excluded). A snapshot chunk must fit in one frame. */
  frameBytesMax: number;
  /** Before authentication a peer may send only this much per frame (the handshake is tiny). */
  handshakeFrameBytesMax: number;
  /** Messages sent in the same tick to one lane are coalesced into frames of at most this many bytes. */
  frameCoalesceBytesMax: number;
  /** AppendRequests with more entry payload than this go on the bulk lane (with every SnapshotRequest). */
  bulkAppendBytesMin: number;
  /** Outbound queue per peer and lane: messages and (approximate wire) bytes. Over it, messages are dropped. */
  controlQueueMessagesMax: number;
  controlQueueBytesMax: number;
  bulkQueueMessagesMax: number;
  bulkQueueBytesMax: number;
  /** A queued message older than this is dropped instead of sent (Raft has retransmitted it by then). */
  queuedAgeMsMax: number;
  /** Reconnect backoff: the n-th consecutive failure waits a random time in [d/2, d], d = min(max, min * 2^(n-1)). */
  reconnectDelayMsMin: number;
  reconnectDelayMsMax: number;
  connectTimeoutMs: number;
  /** Both sides must finish the handshake within this time or the connection is closed. */
  handshakeTimeoutMs: number;
  /** Inbound connections at once (every peer opens two); beyond it new ones are refused. */
  inboundConnectionsMax: number;
  /** Node ids are at most this many UTF-8 bytes. */
  nodeIdBytesMax: number;
}

export const DEFAULT_TRANSPORT_LIMITS: TransportLimits = {
  frameBytesMax: 64 * MiB + 64 * KiB,
  handshakeFrameBytesMax: 1 * KiB,
  frameCoalesceBytesMax: 1 * MiB,
  bulkAppendBytesMin: 64 * KiB,
  controlQueueMessagesMax: 8192,
  controlQueueBytesMax: 32 * MiB,
  bulkQueueMessagesMax: 1024,
  bulkQueueBytesMax: 96 * MiB,
  queuedAgeMsMax: 5000,
  reconnectDelayMsMin: 50,
  reconnectDelayMsMax: 2000,
  connectTimeoutMs: 3000,
  handshakeTimeoutMs: 5000,
  inboundConnectionsMax: 256,
  nodeIdBytesMax: 255,
};

/** Throws (a configuration error) unless the limits are consistent with each other. */
export function checkTransportLimits(l: TransportLimits): void {
  const fail = (why: string): never => {
    throw new Error(`invalid transport limits: ${why}; fix the limits passed to TcpPeerTransport`);
  };
  for (const [name, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v <= 0) fail(`${name} must be a positive integer, got ${v}`);
  }
  if (l.frameBytesMax > 0xffffffff) fail('frameBytesMax must fit the 32-bit length prefix');
  if (l.handshakeFrameBytesMax > l.frameBytesMax) fail('handshakeFrameBytesMax must be <= frameBytesMax');
  if (l.handshakeFrameBytesMax < 3 * l.nodeIdBytesMax + 128)
    fail('handshakeFrameBytesMax too small for the node ids');
  if (l.frameCoalesceBytesMax > l.frameBytesMax) fail('frameCoalesceBytesMax must be <= frameBytesMax');
  if (l.bulkAppendBytesMin > l.controlQueueBytesMax)
    fail('bulkAppendBytesMin must be <= controlQueueBytesMax');
  if (l.bulkQueueBytesMax < l.frameBytesMax) fail('bulkQueueBytesMax must hold at least one largest frame');
  // The core keeps at most inflightBytesMax plus one message (≤ one frame) of appends in flight per follower, and
  // one snapshot chunk; a resend drops the queued copies it supersedes (outbound-lane.ts). So this much always fits.
  const raft = DEFAULT_RAFT_OPTIONS;
  const inflightBound =
    (raft.inflightBytesMax ?? raft.inflightMsgsMax * raft.msgBytesMax) +
    l.frameBytesMax +
    raft.snapshotChunkBytes;
  if (l.bulkQueueBytesMax < inflightBound)
    fail(`bulkQueueBytesMax must hold the core's appends in flight to one follower (${inflightBound} bytes)`);
  if (l.bulkQueueMessagesMax < raft.inflightMsgsMax + 1)
    fail(`bulkQueueMessagesMax must be > the core's inflightMsgsMax (${raft.inflightMsgsMax})`);
  if (l.reconnectDelayMsMin > l.reconnectDelayMsMax)
    fail('reconnectDelayMsMin must be <= reconnectDelayMsMax');
}

checkTransportLimits(DEFAULT_TRANSPORT_LIMITS);
