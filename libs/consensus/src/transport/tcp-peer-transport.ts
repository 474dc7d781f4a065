/**
 * PeerTransport over TCP with the binary codec of codec.ts.
 *
 * Decision (bench/transport.ts, `npm run bench:transport`): a custom binary transport, not Nest's
 * built-in TCP. Nest TCP sends JSON text (`len#{...}`) on one connection: entry bytes must travel as
 * base64, every message is stringified and parsed on its own, and a snapshot on the same socket
 * queues every heartbeat behind it. Measured on this (shared, loaded) 2-core box, both ends in one
 * process: 1-entry AppendRequests 12-51k msg/s (Nest) vs 105-616k (binary); 64-entry 0.8-3.0k vs
 * 4.9-8.8k msg/s (10-39 vs 63-113 MB/s of 200-byte entries); heartbeat p50 during a 64 MiB snapshot
 * 71-156 ms (Nest, max ~300 ms: more than an election timeout) vs ~2 ms (binary, max ~12 ms), and the
 * snapshot itself 45-86 vs 420-990 MB/s. So the wire is ours; Nest sees it as a
 * CustomTransportStrategy (apps/event-store/src/transport/raft-transport.strategy.ts) and the node shell can use this class without Nest.
 *
 * Per peer there are two outbound connections ("lanes"): control (votes, heartbeats, small appends,
 * responses) and bulk (SnapshotRequest, AppendRequests over bulkAppendBytesMin), so heartbeats never
 * wait behind a snapshot. Messages on different lanes may overtake each other; Raft tolerates reordering.
 * Each node connects out to its peers and receives on its listening socket: replies travel on the
 * replier's own outbound connections.
 *
 * Address book: the addresses given by setPeers (the cluster configuration) plus addresses learned from
 * handshakes. A dialing node advertises its own Raft address inside the authenticated part of the
 * handshake (handshake.ts); the accepting node records it for that peer only if it has no address for
 * it, so that a node that knows no member yet (join mode with an empty INITIAL_CLUSTER) can answer the
 * leader that dialed it. A configured address always wins: a learned one never replaces it, and a later
 * setPeers that names the peer replaces the learned one. setPeers leaves learned addresses of peers it
 * does not name in place.
 *
 * TLS (optional, `tls`): the listening socket is a TLS server with this node's certificate, and every lane
 * dials with TLS, verifying the peer's certificate against `tls.ca` (else the system's trust store) and
 * the host of the peer's address. The handshake above still runs inside it: the cluster secret is what
 * authenticates a peer as a member; TLS keeps the log's bytes and the MACs' inputs private on the wire.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Message } from '../core/messages';
import { NodeId } from '../core/types';
import { PeerTransport, TransportEvents } from '../node/ports';
import { HostPort, formatHostPort, parseHostPort } from './address';
import { messageBytesUpperBound } from './codec';
import { InboundConnection } from './inbound-connection';
import { DEFAULT_TRANSPORT_LIMITS, TransportLimits, checkTransportLimits } from './limits';
import { LaneContext, OutboundLane } from './outbound-lane';
import {
  LogThrottle,
  PeerCounters,
  PeerStats,
  TransportLogger,
  TransportStats,
  newPeerCounters,
} from './stats';

export interface TcpPeerTransportOptions {
  nodeId: NodeId;
  /** 'host:port' to listen on (RAFT_ADDR); port 0 picks a free port (see `listenAddress`). */
  listen: string;
  /** The shared cluster secret; null only for loopback development (ids are still checked). */
  secret: string | null;
  /**
   * 'host:port' the other nodes reach this node at (its raftAddress in the cluster configuration), sent in
   * the handshake so that a peer with no address for this node can dial back. Default: the listen address
   * as bound. A wildcard host (0.0.0.0, ::) stands for "the IP the peer sees my connection come from".
   * null: advertise nothing.
   */
  advertise?: string | null;
  logger?: TransportLogger;
  limits?: Partial<TransportLimits>;
  /** Randomness for reconnect jitter (tests may seed it). */
  random?: () => number;
  /** TLS on both directions (PEM): this node's certificate and key, and the CA(s) its peers' certificates chain to. */
  tls?: TransportTls | null;
}

export interface TransportTls {
  cert: string | Buffer;
  key: string | Buffer;
  /** null/undefined: the system's trust store. */
  ca?: string | Buffer | null;
}

interface Peer {
  address: string;
  /** Learned from the peer's handshake (not given by setPeers): any setPeers naming the peer replaces it. */
  learned: boolean;
  control: OutboundLane;
  bulk: OutboundLane;
}

const logThrottleMs = 10_000;
/** An advertised address longer than this is refused at construction (it must fit the handshake frame). */
const advertiseBytesMax = 255;

function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || /^[0:]+$/.test(host);
}

function consoleLogger(nodeId: NodeId): TransportLogger {
  const prefix = `[raft-transport ${nodeId}]`;
  return {
    log: (m) => console.log(prefix, m),
    warn: (m) => console.warn(prefix, m),
    error: (m) => console.error(prefix, m),
  };
}

export class TcpPeerTransport implements PeerTransport {
  private readonly limits: TransportLimits;
  private readonly logger: TransportLogger;
  private readonly listenAt: HostPort;
  private readonly advertiseAt: HostPort | null;
  private readonly laneCtx: LaneContext;
  private readonly throttle = new LogThrottle(logThrottleMs);
  private readonly peers = new Map<NodeId, Peer>();
  private readonly counterMap = new Map<NodeId, PeerCounters>();
  private readonly inbound = new Set<InboundConnection>();
  /** The newest authenticated inbound connection per `${peer}/${lane}`; an older one is closed. */
  private readonly inboundByKey = new Map<string, InboundConnection>();
  private server: net.Server | null = null;
  private bound: HostPort | null = null;
  private onMessage: ((m: Message) => void) | null = null;
  private events: TransportEvents = {};
  private closing: Promise<void> | null = null;
  private authFailures = 0;
  private protocolErrors = 0;
  private dropsMisrouted = 0;

  constructor(private readonly opts: TcpPeerTransportOptions) {
    this.limits = { ...DEFAULT_TRANSPORT_LIMITS, ...opts.limits };
    checkTransportLimits(this.limits);
    const idBytes = Buffer.byteLength(opts.nodeId, 'utf8');
    if (idBytes === 0 || idBytes > this.limits.nodeIdBytesMax) {
      throw new Error(
        `TcpPeerTransport: node id '${opts.nodeId}' must be 1..${this.limits.nodeIdBytesMax} UTF-8 bytes`,
      );
    }
    if (opts.secret !== null && opts.secret.length === 0)
      throw new Error('TcpPeerTransport: the cluster secret is empty; pass null to run without one');
    this.listenAt = parseHostPort(opts.listen, `listen address of node ${opts.nodeId}`);
    this.advertiseAt = null;
    if (typeof opts.advertise === 'string') {
      if (Buffer.byteLength(opts.advertise, 'utf8') > advertiseBytesMax)
        throw new Error(`TcpPeerTransport: advertised address over ${advertiseBytesMax} bytes`);
      this.advertiseAt = parseHostPort(opts.advertise, `advertised address of node ${opts.nodeId}`);
    }
    this.logger = opts.logger ?? consoleLogger(opts.nodeId);
    this.laneCtx = {
      nodeId: opts.nodeId,
      secret: opts.secret,
      limits: this.limits,
      logger: this.logger,
      throttle: this.throttle,
      random: opts.random ?? Math.random,
      tls: opts.tls ? { ca: opts.tls.ca ?? undefined } : null,
      advertise: () => this.advertised(),
      counters: (peer) => this.counters(peer),
      peerGone: (peer) => this.events.peerGone?.(peer),
    };
  }

  /** The address actually bound (after start), e.g. with the port chosen for port 0. */
  get listenAddress(): string {
    if (!this.bound) throw new Error(`TcpPeerTransport of ${this.opts.nodeId}: not started`);
    return formatHostPort(this.bound);
  }

  /** What this node advertises in its handshakes ('' = nothing). */
  private advertised(): string {
    if (this.opts.advertise === null) return '';
    if (this.advertiseAt) return formatHostPort(this.advertiseAt);
    return this.bound ? formatHostPort(this.bound) : formatHostPort(this.listenAt);
  }

  async start(onMessage: (message: Message) => void, events: TransportEvents = {}): Promise<void> {
    if (this.server) throw new Error(`TcpPeerTransport of ${this.opts.nodeId}: already started`);
    if (this.closing) throw new Error(`TcpPeerTransport of ${this.opts.nodeId}: closed; create a new one`);
    this.onMessage = onMessage;
    this.events = events;
    const t = this.opts.tls;
    const server = t
      ? tls.createServer(
          { cert: t.cert, key: t.key, handshakeTimeout: this.limits.handshakeTimeoutMs },
          (socket) => this.accept(socket),
        )
      : net.createServer((socket) => this.accept(socket));
    if (t)
      server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
        this.authFailures++;
        if (this.throttle.allow('tls-client-error', Date.now()))
          this.logger.warn(
            `node ${this.opts.nodeId} refused a connection from ${socket.remoteAddress}: TLS handshake failed (${err.code ?? err.message}); peers must dial with TLS`,
          );
      });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(
          new Error(
            `node ${this.opts.nodeId} cannot listen on ${this.opts.listen} for Raft peers: ${err.code ?? err.message}; choose a free address (RAFT_ADDR)`,
          ),
        );
      };
      server.once('error', onError);
      server.listen(this.listenAt.port, this.listenAt.host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) =>
      this.logger.error(`node ${this.opts.nodeId}: listening socket error: ${err.message}`),
    );
    const a = server.address() as net.AddressInfo;
    this.bound = { host: this.listenAt.host, port: a.port };
    this.logger.log(
      `node ${this.opts.nodeId} listening for Raft peers on ${this.listenAddress}${t ? ' (TLS)' : ''}${this.opts.secret === null ? ' (no cluster secret)' : ''}`,
    );
  }

  send(messages: Message[]): void {
    for (const m of messages) {
      try {
        this.route(m);
      } catch (err) {
        this.logger.error(
          `node ${this.opts.nodeId}: cannot send a ${m?.type} to ${m?.to}: ${(err as Error).message}`,
        );
      }
    }
  }

  private route(m: Message): void {
    const peer = this.closing ? undefined : this.peers.get(m.to);
    if (!peer) {
      this.counters(m.to).dropsNoRoute++;
      if (this.throttle.allow(`noroute/${m.to}`, Date.now())) {
        this.logger.warn(
          `node ${this.opts.nodeId}: no address for peer ${m.to}${this.closing ? ' (transport closed)' : ''}; dropping messages to it`,
        );
      }
      return;
    }
    const bytes = messageBytesUpperBound(m);
    const bulk =
      m.type === 'SnapshotRequest' || (m.type === 'AppendRequest' && bytes > this.limits.bulkAppendBytesMin);
    (bulk ? peer.bulk : peer.control).enqueue(m, bytes);
  }

  setPeers(peers: Record<NodeId, string>): void {
    if (this.closing) return;
    const wanted = new Map<NodeId, HostPort>();
    for (const [id, address] of Object.entries(peers)) {
      if (id === this.opts.nodeId) continue;
      try {
        const idBytes = Buffer.byteLength(id, 'utf8');
        if (idBytes === 0 || idBytes > this.limits.nodeIdBytesMax)
          throw new Error(`node id must be 1..${this.limits.nodeIdBytesMax} UTF-8 bytes`);
        wanted.set(id, parseHostPort(address, `address of peer ${id}`));
      } catch (err) {
        this.logger.error(`node ${this.opts.nodeId}: ignoring peer '${id}': ${(err as Error).message}`);
      }
    }
    for (const [id, peer] of this.peers) {
      if (wanted.has(id) || peer.learned) continue;
      peer.control.close();
      peer.bulk.close();
      this.peers.delete(id);
    }
    for (const [id, hp] of wanted) {
      const address = formatHostPort(hp);
      const peer = this.peers.get(id);
      if (!peer) {
        this.addPeer(id, hp, false);
      } else {
        if (peer.learned && peer.address !== address)
          this.logger.log(
            `node ${this.opts.nodeId}: peer ${id} is configured at ${address}; replacing the address ${peer.address} learned from its handshake`,
          );
        peer.learned = false;
        if (peer.address !== address) {
          peer.address = address;
          peer.control.setAddress(hp);
          peer.bulk.setAddress(hp);
        }
      }
    }
  }

  private addPeer(id: NodeId, hp: HostPort, learned: boolean): void {
    this.peers.set(id, {
      address: formatHostPort(hp),
      learned,
      control: new OutboundLane(this.laneCtx, id, 'control', hp),
      bulk: new OutboundLane(this.laneCtx, id, 'bulk', hp),
    });
  }

  /**
   * Records the address an authenticated peer advertised, if this node has no configured address for it
   * (a learned one is updated: the peer may have restarted elsewhere). See the address book above.
   */
  private learn(conn: InboundConnection): void {
    const id = conn.peerId;
    if (id === null || conn.advertised === '' || this.closing) return;
    const peer = this.peers.get(id);
    if (peer && !peer.learned) return;
    let hp: HostPort;
    try {
      hp = parseHostPort(conn.advertised, `the address advertised by peer ${id}`);
      if (hp.port === 0) throw new Error(`the address advertised by peer ${id} has port 0`);
    } catch (err) {
      if (this.throttle.allow(`bad-advertise/${id}`, Date.now()))
        this.logger.warn(`node ${this.opts.nodeId}: not learning an address: ${(err as Error).message}`);
      return;
    }
    if (isWildcardHost(hp.host)) {
      if (conn.remoteHost === null) return;
      hp = { host: conn.remoteHost, port: hp.port };
    }
    const address = formatHostPort(hp);
    if (peer?.address === address) return;
    if (peer) {
      peer.address = address;
      peer.control.setAddress(hp);
      peer.bulk.setAddress(hp);
    } else {
      this.addPeer(id, hp, true);
    }
    this.logger.log(
      `node ${this.opts.nodeId}: learned the address of peer ${id} from its handshake: ${address} (no configured address for it)`,
    );
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    for (const peer of this.peers.values()) {
      peer.control.close();
      peer.bulk.close();
    }
    this.peers.clear();
    for (const conn of this.inbound) conn.destroy();
    this.inbound.clear();
    this.inboundByKey.clear();
    const server = this.server;
    this.closing = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    return this.closing;
  }

  stats(): TransportStats {
    const peers: Record<NodeId, PeerStats> = {};
    for (const [id, c] of this.counterMap) {
      const p = this.peers.get(id);
      const qc = p?.control.queued ?? { messages: 0, bytes: 0 };
      const qb = p?.bulk.queued ?? { messages: 0, bytes: 0 };
      peers[id] = {
        ...c,
        address: p?.address ?? null,
        addressLearned: p?.learned ?? false,
        controlConnected: p?.control.connected ?? false,
        bulkConnected: p?.bulk.connected ?? false,
        queuedMessages: qc.messages + qb.messages,
        queuedBytes: qc.bytes + qb.bytes,
      };
    }
    return {
      nodeId: this.opts.nodeId,
      listen: this.bound ? this.listenAddress : this.opts.listen,
      peers,
      authFailures: this.authFailures,
      protocolErrors: this.protocolErrors,
      dropsMisrouted: this.dropsMisrouted,
      inboundConnections: this.inbound.size,
    };
  }

  private counters(peer: NodeId): PeerCounters {
    let c = this.counterMap.get(peer);
    if (!c) {
      c = newPeerCounters();
      this.counterMap.set(peer, c);
    }
    return c;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (this.inbound.size >= this.limits.inboundConnectionsMax) {
      this.authFailures++;
      if (this.throttle.allow('inbound-full', Date.now())) {
        this.logger.warn(
          `node ${this.opts.nodeId} refused connection from ${socket.remoteAddress}:${socket.remotePort}: ${this.inbound.size} inbound connections (inboundConnectionsMax)`,
        );
      }
      socket.destroy();
      return;
    }
    const conn = new InboundConnection(
      {
        nodeId: this.opts.nodeId,
        secret: this.opts.secret,
        limits: this.limits,
        logger: this.logger,
        counters: (peer) => this.counters(peer),
        authenticated: (c) => this.authenticated(c),
        closed: (c) => this.closed(c),
        deliver: (_c, messages) => this.deliver(messages),
        refused: () => this.authFailures++,
        protocolError: () => this.protocolErrors++,
        misrouted: (n) => (this.dropsMisrouted += n),
      },
      socket,
    );
    this.inbound.add(conn);
  }

  private authenticated(conn: InboundConnection): void {
    const key = `${conn.peerId}/${conn.lane}`;
    const older = this.inboundByKey.get(key);
    this.inboundByKey.set(key, conn);
    if (older && older !== conn) older.destroy();
    this.learn(conn);
  }

  private closed(conn: InboundConnection): void {
    this.inbound.delete(conn);
    const key = `${conn.peerId}/${conn.lane}`;
    if (this.inboundByKey.get(key) === conn) this.inboundByKey.delete(key);
  }

  private deliver(messages: Message[]): void {
    const handler = this.onMessage;
    if (!handler || this.closing) return;
    for (const m of messages) {
      try {
        handler(m);
      } catch (err) {
        if (this.throttle.allow('handler-error', Date.now())) {
          this.logger.error(
            `node ${this.opts.nodeId}: the message handler threw on a ${m.type} from ${m.from}: ${(err as Error).stack ?? err}`,
          );
        }
      }
    }
  }
}
