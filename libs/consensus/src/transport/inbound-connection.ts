/**
 * The server side of one peer connection: sends Hello, checks Auth (node id, cluster secret, and with
 * them the Raft address the peer advertises: the transport may learn it, see tcp-peer-transport.ts), then
 * decodes MESSAGES frames and hands over messages whose `from` is the authenticated node.
 * Anything wrong closes this connection with a log line naming the remote address and the reason;
 * nothing here throws into the event loop.
 */
import * as net from 'node:net';
import { Message } from '../core/messages';
import { NodeId } from '../core/types';
import { FrameDecoder, FrameKind, decodeMessagesPayload } from './frame';
import {
  AuthRequest,
  Lane,
  clientMac,
  decodeAuth,
  encodeAccept,
  encodeHello,
  encodeRefuse,
  macMatches,
  newNonce,
  serverMac,
} from './handshake';
import { TransportLimits } from './limits';
import { PeerCounters, TransportLogger } from './stats';

export interface InboundContext {
  nodeId: NodeId;
  secret: string | null;
  limits: TransportLimits;
  logger: TransportLogger;
  counters(peer: NodeId): PeerCounters;
  authenticated(conn: InboundConnection): void;
  closed(conn: InboundConnection): void;
  deliver(conn: InboundConnection, messages: Message[]): void;
  refused(): void;
  protocolError(): void;
  misrouted(count: number): void;
}

/** How long a refused peer gets to read the Refuse frame before the socket is destroyed. */
const refuseLingerMs = 1000;

export class InboundConnection {
  readonly remote: string;
  /** The peer's IP as this socket sees it (IPv4-mapped IPv6 as plain IPv4), or null if unknown. */
  readonly remoteHost: string | null;
  peerId: NodeId | null = null;
  lane: Lane | null = null;
  /** The Raft address the authenticated peer advertised in its Auth ('' = none); covered by its MAC. */
  advertised = '';
  private phase: 'auth' | 'open' | 'closed' = 'auth';
  private readonly decoder: FrameDecoder;
  private readonly nonce = newNonce();
  private timer: NodeJS.Timeout | null;

  constructor(
    private readonly ctx: InboundContext,
    private readonly socket: net.Socket,
  ) {
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.remoteHost = socket.remoteAddress?.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1') ?? null;
    this.decoder = new FrameDecoder(ctx.limits.handshakeFrameBytesMax);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {}); // 'close' follows; resets from peers that go away are routine
    socket.on('close', () => this.onClose());
    this.timer = setTimeout(
      () => this.refuse(`no handshake within ${ctx.limits.handshakeTimeoutMs} ms`),
      ctx.limits.handshakeTimeoutMs,
    );
    socket.write(encodeHello(this.nonce));
  }

  /** Closes at once (transport shutdown, or replaced by a newer connection of the same peer and lane). */
  destroy(): void {
    this.phase = 'closed';
    this.clearTimer();
    this.socket.destroy();
  }

  private isClosed(): boolean {
    return this.phase === 'closed';
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private onClose(): void {
    this.phase = 'closed';
    this.clearTimer();
    this.ctx.closed(this);
  }

  private onData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    if (this.peerId !== null) this.ctx.counters(this.peerId).bytesReceived += chunk.length;
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      return this.phase === 'auth'
        ? this.refuse(`bad bytes before the handshake: ${(err as Error).message}`)
        : this.protocolError(`undecodable frame: ${(err as Error).message}`);
    }
    for (const f of frames) {
      if (this.isClosed()) return;
      if (this.phase === 'auth') {
        if (f.kind !== FrameKind.Auth) return this.refuse(`expected an Auth frame, got kind ${f.kind}`);
        this.onAuth(f.payload);
      } else if (f.kind !== FrameKind.Messages) {
        return this.protocolError(`unexpected frame kind ${f.kind} after the handshake`);
      } else {
        this.onMessages(f.payload);
      }
    }
  }

  private onAuth(payload: Buffer): void {
    let auth: AuthRequest;
    try {
      auth = decodeAuth(payload);
    } catch (err) {
      return this.refuse(`bad Auth frame: ${(err as Error).message}`);
    }
    const problem = this.checkAuth(auth);
    if (problem) return this.refuse(problem);
    this.clearTimer();
    this.peerId = auth.clientId;
    this.lane = auth.lane;
    this.advertised = auth.advertise;
    this.phase = 'open';
    this.decoder.frameBytesMax = this.ctx.limits.frameBytesMax;
    const mac =
      this.ctx.secret === null
        ? Buffer.alloc(0)
        : serverMac(this.ctx.secret, auth.clientNonce, this.ctx.nodeId);
    this.socket.write(encodeAccept({ serverId: this.ctx.nodeId, mac }));
    this.ctx.authenticated(this);
  }

  /** Why the Auth is not acceptable, or null. */
  private checkAuth(a: AuthRequest): string | null {
    const idBytes = Buffer.byteLength(a.clientId, 'utf8');
    if (idBytes === 0 || idBytes > this.ctx.limits.nodeIdBytesMax) return `bad node id (${idBytes} bytes)`;
    if (a.clientId === this.ctx.nodeId) return `the peer claims this node's own id ${a.clientId}`;
    if (a.expectedServerId !== this.ctx.nodeId)
      return `peer ${a.clientId} wants node ${a.expectedServerId}, this is ${this.ctx.nodeId}`;
    if (this.ctx.secret === null) return null;
    if (a.mac.length === 0) return `peer ${a.clientId} sent no MAC: it has no cluster secret`;
    if (!macMatches(clientMac(this.ctx.secret, this.nonce, a.clientId, a.advertise), a.mac))
      return `bad MAC from a peer claiming to be ${a.clientId}: wrong cluster secret`;
    return null;
  }

  private onMessages(payload: Buffer): void {
    const peer = this.peerId as NodeId;
    let messages: Message[];
    try {
      messages = decodeMessagesPayload(payload);
    } catch (err) {
      return this.protocolError(`undecodable messages: ${(err as Error).message}`);
    }
    const forged = messages.find((m) => m.from !== peer);
    if (forged)
      return this.protocolError(
        `a ${forged.type} from '${forged.from}' on a connection authenticated as ${peer}`,
      );
    const c = this.ctx.counters(peer);
    c.framesReceived++;
    c.messagesReceived += messages.length;
    const mine = messages.filter((m) => m.to === this.ctx.nodeId);
    if (mine.length !== messages.length) this.ctx.misrouted(messages.length - mine.length);
    if (mine.length > 0) this.ctx.deliver(this, mine);
  }

  private refuse(reason: string): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.clearTimer();
    this.ctx.refused();
    this.ctx.logger.warn(`node ${this.ctx.nodeId} refused connection from ${this.remote}: ${reason}`);
    this.socket.end(encodeRefuse(reason));
    setTimeout(() => this.socket.destroy(), refuseLingerMs).unref();
  }

  private protocolError(reason: string): void {
    if (this.phase === 'closed') return;
    this.ctx.protocolError();
    this.ctx.logger.warn(
      `node ${this.ctx.nodeId} closed connection from ${this.peerId} (${this.lane}) at ${this.remote}: ${reason}`,
    );
    this.destroy();
  }
}
