/**
 * One outbound connection to one peer for one lane (control or bulk): a bounded queue, a connection
 * that authenticates (handshake.ts), coalesced writes, and reconnects with exponential backoff + jitter.
 * States: idle (nothing to send) → connecting → open; on failure → backoff → connecting (or idle
 * when the queue emptied). Writes stop when the socket's buffer is full and resume on 'drain', so
 * what waits is in our bounded queue, never in an unbounded socket buffer.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Message } from '../core/messages';
import { NodeId } from '../core/types';
import { HostPort, formatHostPort } from './address';
import { FrameDecoder, FrameKind, encodeMessagesFrame, frameHeaderBytes } from './frame';
import {
  Lane,
  clientMac,
  decodeAccept,
  decodeHello,
  decodeRefuse,
  encodeAuth,
  macMatches,
  newNonce,
  serverMac,
} from './handshake';
import { TransportLimits } from './limits';
import { LogThrottle, PeerCounters, TransportLogger } from './stats';

export interface LaneContext {
  nodeId: NodeId;
  secret: string | null;
  limits: TransportLimits;
  logger: TransportLogger;
  throttle: LogThrottle;
  random: () => number;
  /** Dial with TLS, trusting `ca` (undefined: the system's trust store); null: plain TCP. */
  tls: { ca?: string | Buffer } | null;
  /** This node's advertised Raft address, sent in every Auth ('' = none). */
  advertise(): string;
  counters(peer: NodeId): PeerCounters;
  /** A connection attempt to `peer` was refused (nothing listens there now). */
  peerGone(peer: NodeId): void;
}

interface Queued {
  message: Message;
  bytes: number;
  atMs: number;
}

type State = 'idle' | 'connecting' | 'open' | 'backoff' | 'closed';

/** Dials after a lost control connection to tell a dead peer (refused) from a live one (accepted). */
const probeDialsMax = 5;
const probeRedialMs = 5;

/** The delay before reconnect attempt n (n ≥ 1 consecutive failures): random in [d/2, d]. */
export function reconnectDelayMs(failures: number, limits: TransportLimits, random: () => number): number {
  const d = Math.min(
    limits.reconnectDelayMsMax,
    limits.reconnectDelayMsMin * 2 ** Math.min(failures - 1, 30),
  );
  return Math.round(d / 2 + (random() * d) / 2);
}

export class OutboundLane {
  private queue: Queued[] = [];
  private head = 0;
  private queuedBytes = 0;
  private state: State = 'idle';
  private socket: net.Socket | null = null;
  /** Waiting for 'drain': the socket's buffer is full. */
  private blocked = false;
  private flushScheduled = false;
  private failures = 0;
  private lastFailure = '';
  /** Control lane: dials left to tell whether a peer whose connection dropped is still there (see fail()). */
  private probesLeft = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ctx: LaneContext,
    readonly peerId: NodeId,
    readonly lane: Lane,
    private address: HostPort,
  ) {}

  get connected(): boolean {
    return this.state === 'open';
  }

  get queued(): { messages: number; bytes: number } {
    return { messages: this.queue.length - this.head, bytes: this.queuedBytes };
  }

  /** Queues a message (bytes = its encoded size bound); sending happens at the end of the tick. */
  enqueue(message: Message, bytes: number): void {
    const c = this.ctx.counters(this.peerId);
    if (this.state === 'closed') {
      c.dropsNoRoute++;
      return;
    }
    if (bytes + frameHeaderBytes + 4 > this.ctx.limits.frameBytesMax) {
      c.dropsUnencodable++;
      this.ctx.logger.error(
        `${this.describe()}: dropped a ${message.type} of ~${bytes} bytes: over frameBytesMax ${this.ctx.limits.frameBytesMax}; send smaller chunks`,
      );
      return;
    }
    if (this.lane === 'bulk' && message.type === 'AppendRequest') this.dropSuperseded(message);
    if (!this.makeRoom(bytes)) {
      c.dropsQueueFull++;
      this.warnThrottled(
        'queue-full',
        `${this.describe()}: outbound queue full (${this.queued.messages} messages, ${this.queuedBytes} bytes); dropping`,
      );
      return;
    }
    this.queue.push({ message, bytes, atMs: Date.now() });
    this.queuedBytes += bytes;
    if (this.state === 'idle') this.connect();
    else if (this.state === 'open') this.scheduleFlush();
  }

  /** Control drops its oldest messages (fresh heartbeats matter more); bulk refuses the newest (keeps streams gap-free). */
  private makeRoom(bytes: number): boolean {
    const l = this.ctx.limits;
    const messagesMax = this.lane === 'control' ? l.controlQueueMessagesMax : l.bulkQueueMessagesMax;
    const bytesMax = this.lane === 'control' ? l.controlQueueBytesMax : l.bulkQueueBytesMax;
    if (bytes > bytesMax) return false;
    const fits = () => this.queue.length - this.head < messagesMax && this.queuedBytes + bytes <= bytesMax;
    if (this.lane === 'bulk') return fits();
    const c = this.ctx.counters(this.peerId);
    while (!fits()) {
      this.shift();
      c.dropsQueueFull++;
    }
    return true;
  }

  /**
   * A resend (the leader went back to probing, or a new term) supersedes the AppendRequests still queued from
   * before it: drop them rather than send them after it. Safe, as Raft tolerates lost messages; without it every
   * resend adds another copy of the leader's whole in-flight window to the queue.
   */
  private dropSuperseded(m: Extract<Message, { type: 'AppendRequest' }>): void {
    let kept = this.head;
    let dropped = 0;
    for (let i = this.head; i < this.queue.length; i++) {
      const q = this.queue[i];
      const old = q.message;
      if (
        old.type === 'AppendRequest' &&
        (old.term < m.term || (old.term === m.term && old.prevLogIndex >= m.prevLogIndex))
      ) {
        this.queuedBytes -= q.bytes;
        dropped++;
      } else {
        this.queue[kept++] = q;
      }
    }
    if (dropped === 0) return;
    this.queue.length = kept;
    if (kept === this.head) {
      this.queue = [];
      this.head = 0;
    }
    this.ctx.counters(this.peerId).dropsSuperseded += dropped;
  }

  setAddress(address: HostPort): void {
    if (address.host === this.address.host && address.port === this.address.port) return;
    this.address = address;
    if (this.state === 'closed') return;
    this.dropConnection();
    this.failures = 0;
    if (this.queue.length > this.head) this.connect();
  }

  close(): void {
    if (this.state === 'closed') return;
    this.dropConnection();
    this.state = 'closed';
    this.ctx.counters(this.peerId).dropsNoRoute += this.queue.length - this.head;
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
  }

  private describe(): string {
    return `node ${this.ctx.nodeId} → ${this.peerId} (${this.lane}) at ${formatHostPort(this.address)}`;
  }

  private warnThrottled(key: string, msg: string): void {
    if (this.ctx.throttle.allow(`${this.peerId}/${this.lane}/${key}`, Date.now())) this.ctx.logger.warn(msg);
  }

  private shift(): Queued {
    const q = this.queue[this.head];
    this.queue[this.head++] = undefined as unknown as Queued;
    this.queuedBytes -= q.bytes;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return q;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Forgets the current socket (if any) without scheduling anything. */
  private dropConnection(): void {
    this.clearTimer();
    const s = this.socket;
    this.socket = null;
    this.blocked = false;
    if (s) s.destroy();
    if (this.state !== 'closed') this.state = 'idle';
  }

  private connect(): void {
    this.clearTimer();
    this.state = 'connecting';
    const l = this.ctx.limits;
    const { host, port } = this.address;
    const socket = this.ctx.tls
      ? tls.connect({ host, port, ca: this.ctx.tls.ca, servername: net.isIP(host) ? undefined : host })
      : net.connect({ host, port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    const decoder = new FrameDecoder(l.handshakeFrameBytesMax);
    const clientNonce = newNonce();
    let phase: 'hello' | 'accept' | 'open' = 'hello';
    this.timer = setTimeout(
      () => this.fail(socket, `no handshake within ${l.connectTimeoutMs + l.handshakeTimeoutMs} ms`),
      l.connectTimeoutMs + l.handshakeTimeoutMs,
    );

    socket.on('data', (chunk: Buffer) => {
      if (this.socket !== socket) return;
      try {
        for (const f of decoder.push(chunk)) {
          if (phase === 'hello' && f.kind === FrameKind.Hello) {
            const serverNonce = decodeHello(f.payload);
            const advertise = this.ctx.advertise();
            const mac =
              this.ctx.secret === null
                ? Buffer.alloc(0)
                : clientMac(this.ctx.secret, serverNonce, this.ctx.nodeId, advertise);
            socket.write(
              encodeAuth({
                lane: this.lane,
                clientNonce,
                clientId: this.ctx.nodeId,
                expectedServerId: this.peerId,
                advertise,
                mac,
              }),
            );
            phase = 'accept';
          } else if (phase === 'accept' && f.kind === FrameKind.Accept) {
            const problem = this.checkAccept(decodeAccept(f.payload), clientNonce);
            if (problem) return this.fail(socket, problem);
            phase = 'open';
            this.opened();
          } else if (f.kind === FrameKind.Refuse) {
            return this.fail(socket, `refused by the peer: ${decodeRefuse(f.payload)}`);
          } else {
            return this.fail(socket, `unexpected frame kind ${f.kind} in phase ${phase}`);
          }
        }
      } catch (err) {
        this.fail(socket, `bad bytes from the peer: ${(err as Error).message}`);
      }
    });
    socket.on('drain', () => {
      if (this.socket !== socket) return;
      this.blocked = false;
      this.flush();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(socket, err.code ?? err.message));
    socket.on('close', () => this.fail(socket, 'connection closed'));
  }

  /** Why the server's Accept is not acceptable, or null. */
  private checkAccept(a: { serverId: string; mac: Buffer }, clientNonce: Buffer): string | null {
    if (a.serverId !== this.peerId)
      return `the peer is node ${a.serverId}, not ${this.peerId}: check the peer addresses`;
    if (this.ctx.secret === null) return null;
    if (a.mac.length === 0) return 'the peer did not prove the cluster secret (it runs without one?)';
    return macMatches(serverMac(this.ctx.secret, clientNonce, a.serverId), a.mac)
      ? null
      : 'the peer has a different cluster secret';
  }

  private opened(): void {
    this.clearTimer();
    const c = this.ctx.counters(this.peerId);
    c.connects++;
    if (c.connects > 1) c.reconnects++;
    if (this.failures > 0)
      this.ctx.logger.log(`${this.describe()}: connected after ${this.failures} failed attempts`);
    this.failures = 0;
    this.lastFailure = '';
    this.probesLeft = 0;
    this.state = 'open';
    this.flush();
  }

  private fail(socket: net.Socket, reason: string): void {
    if (this.socket !== socket) return; // a stale socket's late events
    const wasOpen = this.state === 'open';
    this.dropConnection();
    this.failures++;
    this.ctx.counters(this.peerId).connectFailures += wasOpen ? 0 : 1;
    if (wasOpen) this.ctx.logger.warn(`${this.describe()}: connection lost (${reason}); reconnecting`);
    else if (reason !== this.lastFailure)
      this.ctx.logger.warn(
        `${this.describe()}: cannot connect (${reason}); retrying with backoff up to ${this.ctx.limits.reconnectDelayMsMax} ms`,
      );
    this.lastFailure = reason;
    this.state = 'backoff';
    // A connection that was open and is now gone: the control lane dials again at once, even with nothing to
    // send, so that a peer whose process died is known within a round trip (refused) rather than after the
    // election timeout. A peer that merely closed one connection accepts the new one. A dying process may
    // still take a dial and reset it: a few more dials, a few ms apart, until refused or connected.
    if (this.lane === 'control' && wasOpen) this.probesLeft = probeDialsMax;
    if (reason === 'ECONNREFUSED') {
      this.probesLeft = 0;
      this.ctx.peerGone(this.peerId);
    }
    const probe = this.probesLeft > 0;
    if (probe) this.probesLeft--;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        if (this.state !== 'backoff') return;
        if (probe || this.queue.length > this.head) this.connect();
        else this.state = 'idle';
      },
      probe
        ? wasOpen
          ? 0
          : probeRedialMs
        : reconnectDelayMs(wasOpen ? 1 : this.failures, this.ctx.limits, this.ctx.random),
    );
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Writes the queue as frames of up to frameCoalesceBytesMax until it is empty or the socket is full. */
  private flush(): void {
    const socket = this.socket;
    if (this.state !== 'open' || this.blocked || !socket) return;
    this.dropStale();
    const c = this.ctx.counters(this.peerId);
    socket.cork();
    while (this.queue.length > this.head && !this.blocked) {
      const batch: Message[] = [];
      let bound = 0;
      while (
        this.queue.length > this.head &&
        (batch.length === 0 || bound + this.queue[this.head].bytes <= this.ctx.limits.frameCoalesceBytesMax)
      ) {
        const q = this.shift();
        batch.push(q.message);
        bound += q.bytes;
      }
      const { frame, encoded, failed } = encodeMessagesFrame(batch, bound);
      for (const f of failed) {
        c.dropsUnencodable++;
        this.ctx.logger.error(
          `${this.describe()}: dropped a ${f.message.type} that cannot be encoded: ${f.error.message}`,
        );
      }
      if (encoded === 0) continue;
      c.bytesSent += frame.length;
      c.messagesSent += encoded;
      c.framesSent++;
      if (!socket.write(frame)) this.blocked = true;
    }
    socket.uncork();
  }

  private dropStale(): void {
    const oldestMs = Date.now() - this.ctx.limits.queuedAgeMsMax;
    const c = this.ctx.counters(this.peerId);
    while (this.queue.length > this.head && this.queue[this.head].atMs < oldestMs) {
      this.shift();
      c.dropsStale++;
    }
  }
}
