/**
 * `npm run bench:transport`: Nest's built-in TCP transport (JSON over one socket) against the custom
 * binary transport (TcpPeerTransport: binary frames, coalescing, control and bulk lanes), sender and
 * receiver in this one process on 127.0.0.1 (both transports pay the same in-process cost).
 *  - throughput of AppendRequests with 200-byte entries, 1 and 64 entries per message
 *    (a window of messages in flight, like the core's pipelining);
 *  - heartbeat latency (a heartbeat every 5 ms) while a 64 MiB snapshot streams in 1 MiB chunks
 *    (8 chunks in flight; 3 snapshots back to back for more samples), and the snapshot's MB/s;
 *    an idle baseline for comparison.
 * Prints a table; asserts nothing.
 */
import 'reflect-metadata';
import * as net from 'node:net';
import { ClientTCP, ServerTCP } from '@nestjs/microservices';
import { AppendRequest, Message, SnapshotRequest, Entry, EntryType, TcpPeerTransport } from '@app/consensus';
import { percentile, runBench } from './support/report';

const entryBytes = 200;
const throughputSeconds = Number(process.env.BENCH_SECONDS ?? 3);
const snapshotBytes = 64 * 1024 * 1024;
const snapshotChunkBytes = 1024 * 1024;
const snapshotChunksInFlight = 8;
const heartbeatEveryMs = 5;
const idleHeartbeats = 200;
const snapshotRounds = 3;

/** One direction of a transport: sender → receiver, with the receiver's callback set by the harness. */
interface Harness {
  name: string;
  send(m: Message): void;
  close(): Promise<void>;
}

type Receive = (m: Message) => void;

const quietLogger = {
  log: () => {},
  warn: (m: string) => console.warn(m),
  error: (m: string) => console.error(m),
};

async function binaryHarness(receive: Receive): Promise<Harness> {
  const receiver = new TcpPeerTransport({
    nodeId: 'n2',
    listen: '127.0.0.1:0',
    secret: 'bench-secret',
    logger: quietLogger,
  });
  const sender = new TcpPeerTransport({
    nodeId: 'n1',
    listen: '127.0.0.1:0',
    secret: 'bench-secret',
    logger: quietLogger,
  });
  await receiver.start(receive);
  await sender.start(() => {});
  sender.setPeers({ n2: receiver.listenAddress });
  return {
    name: 'custom binary (TcpPeerTransport)',
    send: (m) => sender.send([m]),
    close: async () => {
      const d = sender.stats().peers.n2;
      const drops = d ? d.dropsQueueFull + d.dropsStale + d.dropsUnencodable : 0;
      if (drops > 0) console.warn(`  (binary transport dropped ${drops} messages)`);
      await sender.close();
      await receiver.close();
    },
  };
}

/** What a Nest TCP adapter would have to do: JSON has no bytes, so payloads travel as base64. */
function toJson(m: Message): unknown {
  if (m.type === 'AppendRequest')
    return { ...m, entries: m.entries.map((e) => ({ ...e, data: Buffer.from(e.data).toString('base64') })) };
  if (m.type === 'SnapshotRequest') return { ...m, data: Buffer.from(m.data).toString('base64') };
  return m;
}

function fromJson(j: any): Message {
  if (j.type === 'AppendRequest')
    return {
      ...j,
      entries: j.entries.map((e: any) => ({ ...e, data: new Uint8Array(Buffer.from(e.data, 'base64')) })),
    };
  if (j.type === 'SnapshotRequest') return { ...j, data: new Uint8Array(Buffer.from(j.data, 'base64')) };
  return j as Message;
}

async function nestHarness(receive: Receive): Promise<Harness> {
  const server = new ServerTCP({ host: '127.0.0.1', port: 0 });
  server.addHandler('raft', async (data: unknown) => receive(fromJson(data)), true);
  await new Promise<void>((resolve, reject) =>
    server.listen((err?: unknown) => (err ? reject(err) : resolve())),
  );
  const port = (server.unwrap<net.Server>().address() as net.AddressInfo).port;
  const client = new ClientTCP({ host: '127.0.0.1', port });
  await client.connect();
  return {
    name: 'Nest built-in TCP (JSON)',
    send: (m) => {
      client.emit('raft', toJson(m)).subscribe({ error: (err) => console.error('nest emit failed:', err) });
    },
    close: async () => {
      client.close();
      await new Promise((r) => setTimeout(r, 100)); // let the server see the FIN before it closes its sockets
      server.close();
    },
  };
}

function appendRequest(seq: number, entries: number, data: Uint8Array): AppendRequest {
  const list: Entry[] = new Array(entries);
  for (let i = 0; i < entries; i++)
    list[i] = { index: seq * entries + i + 1, term: 2, type: EntryType.Normal, data };
  return {
    type: 'AppendRequest',
    from: 'n1',
    to: 'n2',
    term: 2,
    prevLogIndex: seq * entries,
    prevLogTerm: 2,
    leaderCommit: seq,
    seq,
    entries: list,
  };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

async function throughput(make: (r: Receive) => Promise<Harness>, entries: number) {
  const windowMessages = entries === 1 ? 2048 : 256;
  let received = 0;
  const h = await make(() => received++);
  const data = new Uint8Array(entryBytes).fill(7);
  // Warm up (connections, JIT) before timing.
  for (let i = 0; i < 100; i++) h.send(appendRequest(i, entries, data));
  while (received < 100) await tick();
  received = 0;
  let sent = 0;
  const start = process.hrtime.bigint();
  const endAt = start + BigInt(throughputSeconds * 1e9);
  while (process.hrtime.bigint() < endAt) {
    while (sent - received < windowMessages) h.send(appendRequest(sent++, entries, data));
    await tick();
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await h.close();
  const msgsPerS = received / seconds;
  return { name: h.name, msgsPerS, mbPerS: (msgsPerS * entries * entryBytes) / 1e6 };
}

async function heartbeatUnderSnapshot(make: (r: Receive) => Promise<Harness>) {
  const sentAt = new Map<number, bigint>();
  const latencies: number[] = [];
  let chunksReceived = 0;
  const h = await make((m) => {
    if (m.type === 'SnapshotRequest') chunksReceived++;
    else if (m.type === 'AppendRequest') {
      const t = sentAt.get(m.seq);
      if (t !== undefined) latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  });
  let hbSeq = 0;
  const heartbeat = () => {
    const seq = hbSeq++;
    sentAt.set(seq, process.hrtime.bigint());
    h.send(appendRequest(seq, 0, new Uint8Array(0)));
  };
  // Idle baseline (also opens the control connection).
  for (let i = 0; i < idleHeartbeats; i++) {
    const before = latencies.length;
    heartbeat();
    while (latencies.length === before) await tick();
  }
  const idle = latencies.splice(0).sort((a, b) => a - b);

  const data = new Uint8Array(snapshotChunkBytes).fill(9);
  const chunks = snapshotBytes / snapshotChunkBytes;
  const chunk = (i: number): SnapshotRequest => ({
    type: 'SnapshotRequest',
    from: 'n1',
    to: 'n2',
    term: 2,
    meta: {
      index: 5000,
      term: 2,
      config: { voters: ['n1', 'n2', 'n3'], outgoing: [], learners: [], addresses: {} },
    },
    offset: i * snapshotChunkBytes,
    data,
    done: i === chunks - 1,
    seq: i,
  });
  const timer = setInterval(heartbeat, heartbeatEveryMs);
  const start = process.hrtime.bigint();
  for (let round = 0; round < snapshotRounds; round++) {
    chunksReceived = 0;
    let sentChunks = 0;
    while (chunksReceived < chunks) {
      while (sentChunks < chunks && sentChunks - chunksReceived < snapshotChunksInFlight)
        h.send(chunk(sentChunks++));
      await tick();
    }
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  clearInterval(timer);
  await new Promise((r) => setTimeout(r, 200)); // let heartbeats in flight land
  await h.close();
  const busy = latencies.sort((a, b) => a - b);
  return {
    name: h.name,
    idleP50: percentile(idle, 50),
    p50: percentile(busy, 50),
    p99: percentile(busy, 99),
    max: busy[busy.length - 1],
    heartbeats: busy.length,
    snapshotMBps: (snapshotRounds * snapshotBytes) / 1e6 / seconds,
  };
}

const f = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  const harnesses = [nestHarness, binaryHarness];
  console.log(
    `transport benchmark: sender and receiver in one process on 127.0.0.1, ${throughputSeconds} s per throughput run, node ${process.version}\n`,
  );
  console.log('AppendRequest throughput (200-byte entries; MB/s of entry payload)');
  console.log('| transport | entries/msg | messages/s | MB/s |');
  console.log('|---|---:|---:|---:|');
  for (const entries of [1, 64]) {
    for (const make of harnesses) {
      const r = await throughput(make, entries);
      console.log(`| ${r.name} | ${entries} | ${f(r.msgsPerS)} | ${f(r.mbPerS, 1)} |`);
    }
  }
  console.log(
    `\nHeartbeat latency (ms) while a 64 MiB snapshot streams (1 MiB chunks, ${snapshotChunksInFlight} in flight, ${snapshotRounds} snapshots, a heartbeat every ${heartbeatEveryMs} ms)`,
  );
  console.log('| transport | idle p50 | p50 | p99 | max | heartbeats | snapshot MB/s |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const make of harnesses) {
    const r = await heartbeatUnderSnapshot(make);
    console.log(
      `| ${r.name} | ${f(r.idleP50, 2)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${f(r.max, 2)} | ${r.heartbeats} | ${f(r.snapshotMBps, 1)} |`,
    );
  }
}

runBench('bench:transport', main);
