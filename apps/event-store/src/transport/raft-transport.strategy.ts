/**
 * The Raft transport as a Nest microservice (kept in the app: the consensus library knows nothing of Nest): `app.connectMicroservice({ strategy })` then
 * `app.startAllMicroservices()` starts listening; `app.close()` closes it.
 * Inbound messages go to the handler given with `setHandler` (or to the node through
 * `peerTransport()`), else to a controller method decorated `@EventPattern(RAFT_MESSAGE_PATTERN)`.
 * The wire is TcpPeerTransport's (binary frames, two lanes per peer, HMAC handshake); see the
 * decision in tcp-peer-transport.ts.
 */
import { CustomTransportStrategy, Server } from '@nestjs/microservices';
import { BaseRpcContext } from '@nestjs/microservices/ctx-host/base-rpc.context';
import { Message, NodeId, PeerTransport, TcpPeerTransport, TransportEvents } from '@app/consensus';

export const RAFT_MESSAGE_PATTERN = 'raft.message';

export class RaftTransportStrategy extends Server implements CustomTransportStrategy {
  private handler: ((m: Message) => void) | null;
  private events: TransportEvents = {};
  private starting: Promise<void> | null = null;

  constructor(
    readonly transport: TcpPeerTransport,
    handler?: (m: Message) => void,
  ) {
    super();
    this.handler = handler ?? null;
  }

  /** Called by Nest on startAllMicroservices / listen. */
  listen(callback: (err?: unknown, info?: unknown) => void): void {
    this.ensureStarted().then(
      () => callback(),
      (err) => callback(err),
    );
  }

  /** Called by Nest on app.close(). */
  async close(): Promise<void> {
    await this.transport.close();
  }

  setHandler(handler: (m: Message) => void, events: TransportEvents = {}): void {
    this.handler = handler;
    this.events = events;
  }

  /**
   * A PeerTransport for the node shell when Nest owns the lifecycle: its start() routes inbound
   * messages to the node and starts listening if Nest has not yet (either order works).
   */
  peerTransport(): PeerTransport {
    return {
      start: async (onMessage, events) => {
        this.setHandler(onMessage, events);
        await this.ensureStarted();
      },
      send: (messages) => this.transport.send(messages),
      setPeers: (peers: Record<NodeId, string>) => this.transport.setPeers(peers),
      close: () => this.transport.close(),
    };
  }

  on(): never {
    throw new Error(
      'RaftTransportStrategy has no events to subscribe to; use transport.stats() for counters',
    );
  }

  unwrap<T>(): T {
    return this.transport as T;
  }

  private ensureStarted(): Promise<void> {
    // The node's events go through a field: the node may register after Nest started the transport.
    this.starting ??= this.transport.start((m) => this.dispatch(m), {
      peerGone: (peer) => this.events.peerGone?.(peer),
    });
    return this.starting;
  }

  private dispatch(m: Message): void {
    if (this.handler) return this.handler(m);
    if (!this.getHandlerByPattern(RAFT_MESSAGE_PATTERN)) {
      this.logger.warn?.(`no handler for inbound Raft messages: dropped a ${m.type} from ${m.from}`);
      return;
    }
    this.handleEvent(
      RAFT_MESSAGE_PATTERN,
      { pattern: RAFT_MESSAGE_PATTERN, data: m },
      new BaseRpcContext([m.from]),
    ).catch((err: Error) =>
      this.logger.error(
        `the ${RAFT_MESSAGE_PATTERN} handler failed on a ${m.type} from ${m.from}: ${err.message}`,
      ),
    );
  }
}
