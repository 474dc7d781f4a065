import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { AppendRequest, Message, SnapshotRequest } from '../core/messages';
import { FrameDecoder, FrameKind, encodeMessagesFrame, messagesFrameBound } from './frame';
import {
  clientMac,
  decodeAuth,
  decodeHello,
  encodeAuth,
  encodeHello,
  newNonce,
  protocolVersion,
} from './handshake';
import { DEFAULT_TRANSPORT_LIMITS } from './limits';
import { reconnectDelayMs } from './outbound-lane';
import { TcpPeerTransport } from './tcp-peer-transport';
import {
  CapturingLogger,
  TestNode,
  appendRequest,
  closedPort,
  startNode,
} from '../testing/transport-helpers';
import { Prng } from '../testing/prng';
import { makeTestCertificates, TestCertificates } from '../testing/tls-certs';
import { waitFor } from '../testing/wait-for';

jest.setTimeout(60_000);

const secret = 'correct horse battery staple';
const started: TcpPeerTransport[] = [];
const sockets: net.Socket[] = [];

async function node(id: string, s: string | null = secret, extra = {}): Promise<TestNode> {
  const n = await startNode(id, s, extra);
  started.push(n.transport);
  return n;
}

function link(a: TestNode, b: TestNode): void {
  a.transport.setPeers({ [b.transport.stats().nodeId]: b.transport.listenAddress });
  b.transport.setPeers({ [a.transport.stats().nodeId]: a.transport.listenAddress });
}

const heartbeat = (from: string, to: string, seq: number): AppendRequest =>
  appendRequest(from, to, seq, 0, 0);

async function rawConnect(address: string): Promise<net.Socket> {
  const [host, port] = address.split(':');
  const socket = net.connect({ host, port: Number(port) });
  sockets.push(socket);
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/**
 * A hand-driven client that completes the handshake as `clientId` (with the right secret), advertising
 * `advertise`; `macAdvertise` is what its MAC covers (a different value forges the advertised address).
 */
async function rawAuthenticated(
  address: string,
  clientId: string,
  serverId: string,
  advertise = '',
  macAdvertise = advertise,
): Promise<net.Socket> {
  const socket = await rawConnect(address);
  const decoder = new FrameDecoder(4096);
  const frames: { kind: FrameKind; payload: Buffer }[] = [];
  socket.on('data', (chunk: Buffer) =>
    frames.push(...decoder.push(chunk).map((f) => ({ kind: f.kind, payload: Buffer.from(f.payload) }))),
  );
  await waitFor('Hello', () => frames.length >= 1);
  const serverNonce = decodeHello(frames[0].payload);
  socket.write(
    encodeAuth({
      lane: 'control',
      clientNonce: newNonce(),
      clientId,
      expectedServerId: serverId,
      advertise,
      mac: clientMac(secret, serverNonce, clientId, macAdvertise),
    }),
  );
  await waitFor('Accept or Refuse', () => frames.length >= 2);
  expect(frames[1].kind).toBe(advertise === macAdvertise ? FrameKind.Accept : FrameKind.Refuse);
  return socket;
}

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(started.splice(0).map((t) => t.close()));
});

describe('TcpPeerTransport', () => {
  it('delivers messages both ways between two nodes on 127.0.0.1', async () => {
    const a = await node('n1');
    const b = await node('n2');
    link(a, b);
    const vote: Message = {
      type: 'VoteRequest',
      from: 'n1',
      to: 'n2',
      term: 5,
      preVote: false,
      lastLogIndex: 9,
      lastLogTerm: 4,
      transfer: false,
    };
    const reply: Message = {
      type: 'VoteResponse',
      from: 'n2',
      to: 'n1',
      term: 5,
      preVote: false,
      granted: true,
    };
    a.transport.send([vote]);
    await waitFor('n2 receives the vote request', () => b.received.length === 1);
    b.transport.send([reply]);
    await waitFor('n1 receives the vote response', () => a.received.length === 1);
    expect(b.received).toEqual([vote]);
    expect(a.received).toEqual([reply]);
    const s = a.transport.stats();
    expect(s.peers.n2).toMatchObject({
      messagesSent: 1,
      messagesReceived: 1,
      connects: 1,
      controlConnected: true,
      bulkConnected: false,
    });
    expect(s.peers.n2.bytesSent).toBeGreaterThan(0);
  });

  it('works without a cluster secret (loopback dev), still checking node ids', async () => {
    const a = await node('n1', null);
    const b = await node('n2', null);
    link(a, b);
    a.transport.send([heartbeat('n1', 'n2', 1)]);
    await waitFor('n2 receives', () => b.received.length === 1);
    // n3's address points at n2: the handshake exposes the mix-up instead of delivering to the wrong node.
    a.transport.setPeers({ n2: b.transport.listenAddress, n3: b.transport.listenAddress });
    a.transport.send([heartbeat('n1', 'n3', 2)]);
    await waitFor('n2 refuses a connection meant for n3', () =>
      b.logger.has('refused connection from 127.0.0.1', 'wants node n3'),
    );
    expect(b.received).toHaveLength(1);
  });

  it('coalesces the messages of one tick into one frame', async () => {
    const a = await node('n1');
    const b = await node('n2');
    link(a, b);
    const burst = (seq0: number) =>
      Array.from({ length: 300 }, (_, i) => appendRequest('n1', 'n2', seq0 + i, 1, 200));
    a.transport.send(burst(0)); // queued while connecting, flushed as one frame when the handshake completes
    await waitFor('first burst', () => b.received.length === 300);
    const framesBefore = a.transport.stats().peers.n2.framesSent;
    a.transport.send(burst(300).slice(0, 100));
    a.transport.send(burst(400).slice(0, 200)); // same tick, separate calls
    await waitFor('second burst', () => b.received.length === 600);
    expect(framesBefore).toBe(1);
    expect(a.transport.stats().peers.n2.framesSent).toBe(2);
    expect(b.transport.stats().peers.n1).toMatchObject({ framesReceived: 2, messagesReceived: 600 });
    expect(b.received.map((m) => (m as AppendRequest).seq)).toEqual([...Array(600).keys()]);
  });

  it('reconnects after the peer restarts on the same address', async () => {
    const a = await node('n1', secret, { random: new Prng(1).asFunction() });
    const b = await node('n2');
    link(a, b);
    a.transport.send([heartbeat('n1', 'n2', 1)]);
    await waitFor('first delivery', () => b.received.length === 1);
    const address = b.transport.listenAddress;
    await b.transport.close();
    const b2 = await startWithRetry('n2', address);
    let seq = 2;
    await waitFor('delivery to the restarted peer', () => {
      a.transport.send([heartbeat('n1', 'n2', seq++)]); // Raft would keep sending heartbeats meanwhile
      return b2.received.length > 0;
    });
    const s = a.transport.stats().peers.n2;
    expect(s.connects).toBeGreaterThanOrEqual(2);
    expect(s.reconnects).toBeGreaterThanOrEqual(1);
    expect(a.logger.has('n1 → n2 (control)', 'connection lost')).toBe(true);
    expect(b2.received[0]).toMatchObject({ type: 'AppendRequest', from: 'n1' });
  });

  it('tells the node when a peer it was connected to is gone (a dial right after the loss is refused)', async () => {
    const gone: string[] = [];
    const a = new TcpPeerTransport({
      nodeId: 'n1',
      listen: '127.0.0.1:0',
      secret,
      logger: new CapturingLogger(),
    });
    started.push(a);
    await a.start(() => {}, { peerGone: (peer) => gone.push(peer) });
    const b = await node('n2');
    const c = await node('n3');
    a.setPeers({ n2: b.transport.listenAddress, n3: c.transport.listenAddress });
    a.send([heartbeat('n1', 'n2', 1), heartbeat('n1', 'n3', 1)]);
    await waitFor('both deliveries', () => b.received.length === 1 && c.received.length === 1);
    await b.transport.close(); // n2's process is gone: its port refuses; n3 stays
    await waitFor('n2 reported gone, with nothing to send to it', () => gone.includes('n2'));
    expect(gone).toEqual(['n2']);
    a.send([heartbeat('n1', 'n3', 2)]);
    await waitFor('n3 still served', () => c.received.length === 2);
  });

  it('refuses and logs a peer with the wrong secret, delivering nothing', async () => {
    const a = await node('n1', 'another secret');
    const b = await node('n2');
    link(a, b);
    a.transport.send([heartbeat('n1', 'n2', 1)]);
    await waitFor('n2 logs the refusal', () =>
      b.logger.has('node n2 refused connection from 127.0.0.1:', 'wrong cluster secret'),
    );
    await waitFor('n1 logs why it cannot connect', () =>
      a.logger.has('n1 → n2 (control)', 'refused by the peer'),
    );
    expect(b.received).toEqual([]);
    expect(b.transport.stats().authFailures).toBeGreaterThanOrEqual(1);
    expect(a.transport.stats().peers.n2.connectFailures).toBeGreaterThanOrEqual(1);
  });

  it('refuses a peer without a secret when the cluster has one', async () => {
    const a = await node('n1', null);
    const b = await node('n2');
    link(a, b);
    a.transport.send([heartbeat('n1', 'n2', 1)]);
    await waitFor('n2 logs the refusal', () =>
      b.logger.has('refused connection from 127.0.0.1', 'sent no MAC'),
    );
    expect(b.received).toEqual([]);
  });

  it('refuses a connection that sends messages without the handshake', async () => {
    const b = await node('n2');
    const socket = await rawConnect(b.transport.listenAddress);
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.resume();
    const list = [heartbeat('n1', 'n2', 1)];
    socket.write(encodeMessagesFrame(list, messagesFrameBound(list)).frame);
    await waitFor('n2 logs the refusal', () =>
      b.logger.has('refused connection from 127.0.0.1', 'expected an Auth frame'),
    );
    await waitFor('n2 closes the socket', () => closed);
    expect(b.received).toEqual([]);
  });

  it('closes an authenticated connection that forges `from`, delivering nothing of that frame', async () => {
    const b = await node('n2');
    const socket = await rawAuthenticated(b.transport.listenAddress, 'n1', 'n2');
    const list = [heartbeat('n1', 'n2', 1), heartbeat('n3', 'n2', 2)];
    socket.write(encodeMessagesFrame(list, messagesFrameBound(list)).frame);
    await waitFor('n2 logs the forged sender', () =>
      b.logger.has("from 'n3' on a connection authenticated as n1"),
    );
    expect(b.received).toEqual([]);
    expect(b.transport.stats().protocolErrors).toBe(1);
  });

  it('survives garbage bytes before and after the handshake, and keeps serving', async () => {
    const b = await node('n2');
    const random = new Prng(7).asFunction();
    const garbage = Buffer.from(Array.from({ length: 4096 }, () => Math.floor(random() * 256)));
    const s1 = await rawConnect(b.transport.listenAddress);
    s1.write(garbage);
    await waitFor('n2 refuses the garbage', () =>
      b.logger.has('refused connection from 127.0.0.1', 'bad bytes before the handshake'),
    );
    const s2 = await rawAuthenticated(b.transport.listenAddress, 'n1', 'n2');
    const frameOfGarbage = Buffer.alloc(9 + 64);
    frameOfGarbage.writeUInt32LE(5 + 64, 0);
    frameOfGarbage[4] = FrameKind.Messages;
    frameOfGarbage.writeUInt32LE(3, 5);
    garbage.copy(frameOfGarbage, 9, 0, 64);
    s2.write(frameOfGarbage);
    await waitFor('n2 closes the connection with a log line', () =>
      b.logger.has('closed connection from n1 (control) at 127.0.0.1', 'undecodable messages'),
    );
    const a = await node('n1');
    link(a, b);
    a.transport.send([heartbeat('n1', 'n2', 1)]);
    await waitFor('a real peer still gets through', () => b.received.length === 1);
  });

  it('does not hold heartbeats behind a large snapshot stream (separate lanes)', async () => {
    const a = await node('n1');
    const b = await node('n2');
    link(a, b);
    const chunkBytes = 1024 * 1024;
    const chunks = 64;
    const data = new Uint8Array(chunkBytes).fill(0xab);
    const chunk = (i: number): SnapshotRequest => ({
      type: 'SnapshotRequest',
      from: 'n1',
      to: 'n2',
      term: 3,
      meta: {
        index: 1000,
        term: 3,
        config: { voters: ['n1', 'n2'], outgoing: [], learners: [], addresses: {} },
      },
      offset: i * chunkBytes,
      data,
      done: i === chunks - 1,
      seq: i,
    });
    // Warm both lanes up so the race below is between a heartbeat and a stream, not two handshakes.
    a.transport.send([chunk(0), heartbeat('n1', 'n2', 0)]);
    await waitFor('both lanes open', () => b.received.length === 2);
    const order: string[] = [];
    const snapshotBytes: number[] = [];
    const orig = b.received.push.bind(b.received);
    b.received.push = (...ms: Message[]) => {
      for (const m of ms) {
        order.push(m.type === 'SnapshotRequest' ? `snap${m.seq}` : `hb${(m as AppendRequest).seq}`);
        if (m.type === 'SnapshotRequest') snapshotBytes.push(m.data.byteLength);
      }
      return orig(...ms);
    };
    a.transport.send(Array.from({ length: chunks }, (_, i) => chunk(i)));
    a.transport.send([heartbeat('n1', 'n2', 1)]);
    await waitFor('heartbeat and whole snapshot delivered', () => order.length === chunks + 1);
    const hb = order.indexOf('hb1');
    expect(hb).toBeGreaterThanOrEqual(0);
    expect(hb).toBeLessThan(order.indexOf(`snap${chunks - 1}`));
    expect(order.filter((o) => o.startsWith('snap'))).toEqual(
      Array.from({ length: chunks }, (_, i) => `snap${i}`),
    );
    expect(snapshotBytes.every((n) => n === chunkBytes)).toBe(true);
    expect(a.transport.stats().peers.n2).toMatchObject({
      controlConnected: true,
      bulkConnected: true,
      dropsQueueFull: 0,
    });
  });

  it('bounds the outbound queue of an unreachable peer, dropping the oldest control messages', async () => {
    const a = await node('n1', secret, { limits: { controlQueueMessagesMax: 10 } });
    a.transport.setPeers({ n2: `127.0.0.1:${await closedPort()}` });
    a.transport.send(Array.from({ length: 25 }, (_, i) => heartbeat('n1', 'n2', i)));
    a.transport.send([heartbeat('n1', 'n9', 0)]);
    const s = a.transport.stats();
    expect(s.peers.n2).toMatchObject({ dropsQueueFull: 15, queuedMessages: 10, messagesSent: 0 });
    expect(s.peers.n9.dropsNoRoute).toBe(1);
    await waitFor('a connect failure logged', () =>
      a.logger.has('n1 → n2 (control)', 'cannot connect', 'ECONNREFUSED'),
    );
  });

  it('a resend from an earlier index (or a newer term) drops the bulk AppendRequests queued before it', async () => {
    const a = await node('n1', secret);
    a.transport.setPeers({ n2: `127.0.0.1:${await closedPort()}` });
    const big = (seq: number, prevLogIndex: number, term = 1) => ({
      ...appendRequest('n1', 'n2', seq, 2, 64 * 1024),
      prevLogIndex,
      term,
    });
    a.transport.send([big(1, 10), big(2, 12), big(3, 14)]);
    expect(a.transport.stats().peers.n2).toMatchObject({ queuedMessages: 3, dropsSuperseded: 0 });
    a.transport.send([big(4, 12)]);
    expect(a.transport.stats().peers.n2).toMatchObject({ queuedMessages: 2, dropsSuperseded: 2 });
    a.transport.send([big(5, 100, 2)]);
    expect(a.transport.stats().peers.n2).toMatchObject({ queuedMessages: 1, dropsSuperseded: 4 });
  });

  it('refuses to start on an address in use, naming it', async () => {
    const a = await node('n1');
    const clash = new TcpPeerTransport({
      nodeId: 'n2',
      listen: a.transport.listenAddress,
      secret,
      logger: new CapturingLogger(),
    });
    await expect(clash.start(() => {})).rejects.toThrow(`cannot listen on ${a.transport.listenAddress}`);
    await clash.close();
  });
});

describe('TcpPeerTransport address learning (a node that knows no peer can answer the one that dials it)', () => {
  const reply = (from: string, to: string): Message => ({
    type: 'AppendResponse',
    from,
    to,
    term: 3,
    success: true,
    matchIndex: 7,
    conflictTerm: 0,
    conflictIndex: 0,
    lastLogIndex: 7,
    seq: 1,
  });

  it('B, with no address for A, learns it from A dialing in and sends to A', async () => {
    const a = await node('n1');
    const b = await node('n2');
    a.transport.setPeers({ n2: b.transport.listenAddress }); // B gets no setPeers at all
    b.transport.send([reply('n2', 'n1')]);
    expect(b.transport.stats().peers.n1).toMatchObject({ address: null, dropsNoRoute: 1 });

    a.transport.send([heartbeat('n1', 'n2', 1)]);
    await waitFor('n2 receives from n1', () => b.received.length === 1);
    expect(b.transport.stats().peers.n1).toMatchObject({
      address: a.transport.listenAddress,
      addressLearned: true,
    });
    expect(b.logger.has('learned the address of peer n1', a.transport.listenAddress)).toBe(true);

    b.transport.send([reply('n2', 'n1')]);
    await waitFor('n1 receives the reply over n2’s own connection', () => a.received.length === 1);
    expect(a.received).toEqual([reply('n2', 'n1')]);
    expect(b.transport.stats().peers.n1).toMatchObject({ controlConnected: true, messagesSent: 1 });
    // A setPeers that does not name n1 (B's configuration is still empty) keeps the learned address.
    b.transport.setPeers({});
    expect(b.transport.stats().peers.n1).toMatchObject({ address: a.transport.listenAddress });
  });

  it('learns nothing from a handshake with the wrong secret', async () => {
    const a = await node('n1', 'another secret');
    const b = await node('n2');
    a.transport.setPeers({ n2: b.transport.listenAddress });
    a.transport.send([heartbeat('n1', 'n2', 1)]);
    await waitFor('n2 refuses n1', () => b.logger.has('refused connection', 'wrong cluster secret'));
    b.transport.send([reply('n2', 'n1')]);
    expect(b.transport.stats().peers.n1).toMatchObject({ address: null, addressLearned: false });
    expect(b.transport.stats().peers.n1.dropsNoRoute).toBe(1);
    expect(b.logger.has('learned the address')).toBe(false);
    expect(a.received).toEqual([]);
  });

  it('refuses, and learns nothing from, an advertised address the MAC does not cover', async () => {
    const b = await node('n2');
    // The right secret, but the advertised address was swapped after the MAC was made (a tampering relay).
    await rawAuthenticated(b.transport.listenAddress, 'n1', 'n2', '10.9.9.9:7000', '127.0.0.1:7000');
    await waitFor('n2 refuses', () => b.logger.has('refused connection', 'wrong cluster secret'));
    b.transport.send([reply('n2', 'n1')]);
    expect(b.transport.stats().peers.n1.address).toBeNull();
    // The same client with an honest MAC is accepted and teaches its address.
    await rawAuthenticated(b.transport.listenAddress, 'n1', 'n2', '127.0.0.1:7000');
    await waitFor('n2 learns', () => b.transport.stats().peers.n1?.address === '127.0.0.1:7000');
  });

  it('never replaces a configured address with a learned one; a configured one replaces a learned one', async () => {
    const a = await node('n1');
    const b = await node('n2');
    const configured = `127.0.0.1:${await closedPort()}`;
    b.transport.setPeers({ n1: configured });
    a.transport.setPeers({ n2: b.transport.listenAddress });
    a.transport.send([heartbeat('n1', 'n2', 1)]);
    await waitFor('n2 receives from n1', () => b.received.length === 1);
    expect(b.transport.stats().peers.n1).toMatchObject({ address: configured, addressLearned: false });
    expect(b.logger.has('learned the address')).toBe(false);

    // Unconfigured, n1 is forgotten; a peer with no configured address (n3) is learned when it dials in...
    b.transport.setPeers({});
    expect(b.transport.stats().peers.n1.address).toBeNull();
    const c = await node('n3');
    c.transport.setPeers({ n2: b.transport.listenAddress });
    c.transport.send([heartbeat('n3', 'n2', 1)]);
    await waitFor('n2 learns n3', () => b.transport.stats().peers.n3?.addressLearned === true);
    // ...and a configuration that names the peer replaces the learned address.
    b.transport.setPeers({ n3: configured });
    expect(b.transport.stats().peers.n3).toMatchObject({ address: configured, addressLearned: false });
    expect(b.logger.has('peer n3 is configured at', 'replacing the address', c.transport.listenAddress)).toBe(
      true,
    );
    // Configured now, it is dropped by a setPeers that does not name it (as before learning existed).
    b.transport.setPeers({});
    expect(b.transport.stats().peers.n3.address).toBeNull();
  });

  it('takes the connection’s source IP for a wildcard advertised host; advertises nothing when told not to', async () => {
    const port = await closedPort();
    const a = await node('n1', secret, { listen: `127.0.0.1:${port}`, advertise: `0.0.0.0:${port}` });
    const b = await node('n2');
    const c = await node('n3', secret, { advertise: null });
    a.transport.setPeers({ n2: b.transport.listenAddress });
    c.transport.setPeers({ n2: b.transport.listenAddress });
    a.transport.send([heartbeat('n1', 'n2', 1)]);
    c.transport.send([heartbeat('n3', 'n2', 1)]);
    await waitFor('n2 receives from both', () => b.received.length === 2);
    expect(b.transport.stats().peers.n1).toMatchObject({
      address: `127.0.0.1:${port}`,
      addressLearned: true,
    });
    expect(b.transport.stats().peers.n3.address).toBeNull();
    b.transport.send([reply('n2', 'n1')]);
    await waitFor('n1 receives the reply', () => a.received.length === 1);
  });

  it('refuses a peer of another handshake version, naming both versions', async () => {
    const b = await node('n2');
    const socket = await rawConnect(b.transport.listenAddress);
    socket.resume();
    const auth = encodeAuth({
      lane: 'control',
      clientNonce: newNonce(),
      clientId: 'n1',
      expectedServerId: 'n2',
      advertise: '127.0.0.1:7000',
      mac: Buffer.alloc(32),
    });
    auth[5] = 1; // the version byte, first in the payload after the 5-byte frame header
    socket.write(auth);
    await waitFor('n2 refuses the old version', () =>
      b.logger.has('refused connection', 'speaks handshake protocol version 1, this node speaks 2'),
    );
    expect(b.transport.stats().peers.n1).toBeUndefined();
    const hello = encodeHello(newNonce());
    hello[9] = protocolVersion + 1; // after the frame header and the u32 magic
    expect(() => decodeHello(hello.subarray(5))).toThrow(
      `the peer speaks handshake protocol version ${protocolVersion + 1}, this node speaks ${protocolVersion}`,
    );
    const ok = encodeAuth({
      lane: 'bulk',
      clientNonce: newNonce(),
      clientId: 'n1',
      expectedServerId: 'n2',
      advertise: '[::1]:7000',
      mac: Buffer.alloc(0),
    });
    expect(decodeAuth(ok.subarray(5))).toMatchObject({
      lane: 'bulk',
      clientId: 'n1',
      advertise: '[::1]:7000',
    });
  });
});

describe('TcpPeerTransport with TLS', () => {
  let certs: TestCertificates;
  beforeAll(() => {
    certs = makeTestCertificates(fs.mkdtempSync(path.join(os.tmpdir(), 'raft-tls-')));
  });
  afterAll(() => fs.rmSync(certs.dir, { recursive: true, force: true }));

  const withTls = (ca = certs.ca) => ({ tls: { cert: certs.cert, key: certs.key, ca } });

  it('delivers messages both ways inside TLS (the listening socket speaks TLS), the secret still checked', async () => {
    const a = await node('n1', secret, withTls());
    const b = await node('n2', secret, withTls());
    link(a, b);
    a.transport.send([heartbeat('n1', 'n2', 1)]);
    await waitFor('n2 receives over TLS', () => b.received.length === 1);
    b.transport.send([heartbeat('n2', 'n1', 2)]);
    await waitFor('n1 receives over TLS', () => a.received.length === 1);
    expect(b.logger.has('listening for Raft peers on', '(TLS)')).toBe(true);
    // A TLS client trusting the CA completes a handshake with the Raft port and then gets the Hello frame.
    const [host, port] = b.transport.listenAddress.split(':');
    const socket = tls.connect({ host, port: Number(port), ca: certs.ca });
    sockets.push(socket);
    const first = await new Promise<Buffer>((resolve, reject) => {
      socket.once('data', resolve);
      socket.once('error', reject);
    });
    expect(first.length).toBeGreaterThan(0);
  });

  it('refuses a plain-TCP peer, and a TLS peer cannot connect to a plain node', async () => {
    const a = await node('n1', secret);
    const b = await node('n2', secret, withTls());
    link(a, b);
    a.transport.send([heartbeat('n1', 'n2', 1)]);
    b.transport.send([heartbeat('n2', 'n1', 1)]);
    await waitFor('n2 logs the failed TLS handshake', () =>
      b.logger.has('node n2 refused a connection from', 'TLS handshake failed'),
    );
    await waitFor('n2 cannot connect to the plain n1', () =>
      b.logger.has('n2 → n1 (control)', 'cannot connect'),
    );
    expect(a.received).toEqual([]);
    expect(b.received).toEqual([]);
    expect(b.transport.stats().authFailures).toBeGreaterThanOrEqual(1);
  });

  it('does not connect to a peer whose certificate does not chain to the trusted CA', async () => {
    const a = await node('n1', secret, withTls(fs.readFileSync(certs.otherCaFile)));
    const b = await node('n2', secret, withTls());
    link(a, b);
    a.transport.send([heartbeat('n1', 'n2', 1)]);
    await waitFor('n1 cannot verify n2', () => a.logger.has('n1 → n2 (control)', 'cannot connect'));
    expect(a.logger.lines.join('\n')).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/i);
    expect(b.received).toEqual([]);
  });
});

describe('reconnectDelayMs', () => {
  it('grows exponentially from the minimum to the maximum, with jitter in [d/2, d]', () => {
    const l = DEFAULT_TRANSPORT_LIMITS;
    expect(reconnectDelayMs(1, l, () => 0)).toBe(l.reconnectDelayMsMin / 2);
    expect(reconnectDelayMs(1, l, () => 0.999999)).toBe(l.reconnectDelayMsMin);
    expect(reconnectDelayMs(3, l, () => 0.999999)).toBe(l.reconnectDelayMsMin * 4);
    expect(reconnectDelayMs(100, l, () => 0.999999)).toBe(l.reconnectDelayMsMax);
    expect(reconnectDelayMs(100, l, () => 0)).toBe(l.reconnectDelayMsMax / 2);
  });
});

async function startWithRetry(id: string, address: string): Promise<TestNode> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await node(id, secret, { listen: address });
    } catch (err) {
      if (attempt >= 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
