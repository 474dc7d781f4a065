import { Message } from '../core/messages';
import { NodeId } from '../core/types';
import { PeerTransport } from '../node/ports';

export type MessageFilter = (message: Message) => boolean;

/**
 * An in-process network for tests: every node registers a LoopbackTransport with the hub; messages are
 * delivered asynchronously (next macrotask), in order per sender, as copies (no shared buffers between nodes).
 * Controls: isolate/partition/heal, and arbitrary drop filters.
 */
export class LoopbackNetwork {
  private readonly handlers = new Map<NodeId, (message: Message) => void>();
  private readonly cut = new Set<string>();
  private readonly filters = new Set<MessageFilter>();
  /** Called for every message a node sends (before drops): instrumentation for tests. */
  readonly sendListeners: ((message: Message) => void)[] = [];
  delivered = 0;
  dropped = 0;

  transport(id: NodeId): LoopbackTransport {
    return new LoopbackTransport(this, id);
  }

  /** Cuts every link between `id` and the rest, both ways. */
  isolate(id: NodeId): void {
    for (const other of this.handlers.keys()) if (other !== id) this.cutLink(id, other);
    this.isolated.add(id);
  }

  /** Cuts the links between the two groups, both ways. */
  partition(a: NodeId[], b: NodeId[]): void {
    for (const x of a) for (const y of b) this.cutLink(x, y);
  }

  heal(): void {
    this.cut.clear();
    this.isolated.clear();
    this.filters.clear();
  }

  /** Drops every message for which `filter` returns true, until removed or healed. Returns the remover. */
  drop(filter: MessageFilter): () => void {
    this.filters.add(filter);
    return () => this.filters.delete(filter);
  }

  private readonly isolated = new Set<NodeId>();

  private cutLink(x: NodeId, y: NodeId): void {
    this.cut.add(`${x}>${y}`);
    this.cut.add(`${y}>${x}`);
  }

  /** @internal */
  register(id: NodeId, handler: (message: Message) => void): void {
    if (this.handlers.has(id))
      throw new Error(`loopback network: node ${id} is already registered; close its transport first`);
    this.handlers.set(id, handler);
  }

  /** @internal */
  unregister(id: NodeId): void {
    this.handlers.delete(id);
  }

  /** @internal */
  send(messages: Message[]): void {
    const copies: Message[] = [];
    for (const m of messages) {
      for (const listener of this.sendListeners) listener(m);
      if (this.isBlocked(m)) {
        this.dropped++;
        continue;
      }
      copies.push(structuredClone(m));
    }
    if (copies.length === 0) return;
    setImmediate(() => {
      for (const m of copies) {
        // Checked again at delivery: a partition made meanwhile also cuts messages in flight.
        const handler = this.handlers.get(m.to);
        if (!handler || this.isBlocked(m)) {
          this.dropped++;
          continue;
        }
        this.delivered++;
        handler(m);
      }
    });
  }

  private isBlocked(m: Message): boolean {
    if (this.isolated.has(m.from) || this.isolated.has(m.to)) return true;
    if (this.cut.has(`${m.from}>${m.to}`)) return true;
    for (const f of this.filters) if (f(m)) return true;
    return false;
  }
}

export class LoopbackTransport implements PeerTransport {
  peers: Record<NodeId, string> = {};
  private started = false;

  constructor(
    private readonly network: LoopbackNetwork,
    readonly id: NodeId,
  ) {}

  async start(onMessage: (message: Message) => void): Promise<void> {
    if (this.started) throw new Error(`loopback transport ${this.id}: already started`);
    this.network.register(this.id, onMessage);
    this.started = true;
  }

  send(messages: Message[]): void {
    if (!this.started || messages.length === 0) return;
    this.network.send(messages);
  }

  setPeers(peers: Record<NodeId, string>): void {
    this.peers = { ...peers };
  }

  async close(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.network.unregister(this.id);
  }
}
