import 'reflect-metadata';
import { Controller, INestMicroservice, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern, Payload } from '@nestjs/microservices';
import { Message, TcpPeerTransport } from '@app/consensus';
import { RAFT_MESSAGE_PATTERN, RaftTransportStrategy } from './raft-transport.strategy';
import { CapturingLogger, TestNode, appendRequest, startNode, waitFor } from '@app/consensus/testing';

jest.setTimeout(60_000);

const secret = 's3cret';
const inbox: Message[] = [];

@Controller()
class RaftInboxController {
  @EventPattern(RAFT_MESSAGE_PATTERN)
  onRaftMessage(@Payload() m: Message): void {
    inbox.push(m);
  }
}

@Module({ controllers: [RaftInboxController] })
class RaftInboxModule {}

describe('RaftTransportStrategy', () => {
  let app: INestMicroservice | null = null;
  let peer: TestNode | null = null;

  afterEach(async () => {
    await app?.close();
    await peer?.transport.close();
    app = null;
    peer = null;
    inbox.length = 0;
  });

  it('runs as a Nest microservice and dispatches inbound messages to @EventPattern(RAFT_MESSAGE_PATTERN)', async () => {
    const transport = new TcpPeerTransport({
      nodeId: 'n1',
      listen: '127.0.0.1:0',
      secret,
      logger: new CapturingLogger(),
    });
    const strategy = new RaftTransportStrategy(transport);
    app = await NestFactory.createMicroservice(RaftInboxModule, { strategy, logger: false });
    await app.listen();
    peer = await startNode('n2', secret);
    peer.transport.setPeers({ n1: transport.listenAddress });
    transport.setPeers({ n2: peer.transport.listenAddress });
    const m = appendRequest('n2', 'n1', 7, 2, 200);
    peer.transport.send([m]);
    await waitFor('the controller receives the message', () => inbox.length === 1);
    expect(inbox[0]).toEqual(m);
    // And the other way: the app's transport sends with the same wire.
    transport.send([{ type: 'TimeoutNow', from: 'n1', to: 'n2', term: 8 }]);
    await waitFor('the peer receives', () => peer!.received.length === 1);
    expect(strategy.unwrap<TcpPeerTransport>()).toBe(transport);
  });

  it('hands a PeerTransport to the node shell that receives instead of the controller', async () => {
    const transport = new TcpPeerTransport({
      nodeId: 'n1',
      listen: '127.0.0.1:0',
      secret,
      logger: new CapturingLogger(),
    });
    const strategy = new RaftTransportStrategy(transport);
    const forNode = strategy.peerTransport();
    const nodeInbox: Message[] = [];
    await forNode.start((m) => nodeInbox.push(m)); // the node starts first; Nest's listen() later is a no-op
    app = await NestFactory.createMicroservice(RaftInboxModule, { strategy, logger: false });
    await app.listen();
    peer = await startNode('n2', secret);
    peer.transport.setPeers({ n1: transport.listenAddress });
    peer.transport.send([{ type: 'TimeoutNow', from: 'n2', to: 'n1', term: 3 }]);
    await waitFor('the node receives', () => nodeInbox.length === 1);
    expect(inbox).toEqual([]);
  });
});
