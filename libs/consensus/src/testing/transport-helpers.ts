/** Helpers for the transport's specs and benchmark (no test-framework imports). */
import * as net from 'node:net';
import { AppendRequest, Message } from '../core/messages';
import { EntryType } from '../core/types';
import { TransportLogger } from '../transport/stats';
import { TcpPeerTransport, TcpPeerTransportOptions } from '../transport/tcp-peer-transport';

export class CapturingLogger implements TransportLogger {
  readonly lines: string[] = [];
  log(m: string): void {
    this.lines.push(`log ${m}`);
  }
  warn(m: string): void {
    this.lines.push(`warn ${m}`);
  }
  error(m: string): void {
    this.lines.push(`error ${m}`);
  }
  has(...parts: string[]): boolean {
    return this.lines.some((l) => parts.every((p) => l.includes(p)));
  }
}

export interface TestNode {
  transport: TcpPeerTransport;
  received: Message[];
  logger: CapturingLogger;
}

export async function startNode(
  nodeId: string,
  secret: string | null,
  extra: Partial<TcpPeerTransportOptions> = {},
): Promise<TestNode> {
  const logger = new CapturingLogger();
  const received: Message[] = [];
  const transport = new TcpPeerTransport({ nodeId, listen: '127.0.0.1:0', secret, logger, ...extra });
  await transport.start((m) => received.push(m));
  return { transport, received, logger };
}

/** A port that was free a moment ago and has no listener. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export function appendRequest(
  from: string,
  to: string,
  seq: number,
  entries: number,
  entryBytes: number,
): AppendRequest {
  const data = new Uint8Array(entryBytes).fill(seq & 0xff);
  return {
    type: 'AppendRequest',
    from,
    to,
    term: 3,
    prevLogIndex: seq * entries,
    prevLogTerm: 3,
    leaderCommit: seq,
    seq,
    entries: Array.from({ length: entries }, (_, i) => ({
      index: seq * entries + i + 1,
      term: 3,
      type: EntryType.Normal,
      data,
    })),
  };
}
