import { Message } from '../core/messages';
import { ConfigState, EntryType } from '../core/types';
import { CodecError, decodeMessage, encodeMessage, messageBytesUpperBound } from './codec';
import {
  FrameDecoder,
  FrameKind,
  decodeMessagesPayload,
  encodeMessagesFrame,
  messagesFrameBound,
} from './frame';
import { Prng } from '../testing/prng';

const config: ConfigState = {
  voters: ['n1', 'n2', 'nœud-3'],
  outgoing: ['n1'],
  learners: ['学习者'],
  addresses: {
    n1: { raftAddress: '127.0.0.1:7101', httpUrl: 'http://127.0.0.1:7001' },
    'nœud-3': { raftAddress: '[::1]:7103', httpUrl: 'http://[::1]:7003' },
  },
};

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

const everyType: Message[] = [
  {
    type: 'VoteRequest',
    from: 'n1',
    to: 'n2',
    term: 7,
    preVote: true,
    lastLogIndex: 2 ** 53 - 1,
    lastLogTerm: 6,
    transfer: false,
  },
  {
    type: 'VoteRequest',
    from: 'n1',
    to: 'n2',
    term: 7,
    preVote: false,
    lastLogIndex: 0,
    lastLogTerm: 0,
    transfer: true,
  },
  { type: 'VoteResponse', from: 'n2', to: 'n1', term: 7, preVote: true, granted: false },
  { type: 'VoteResponse', from: 'n2', to: 'n1', term: 7, preVote: false, granted: true },
  {
    type: 'AppendRequest',
    from: 'n1',
    to: 'n2',
    term: 7,
    prevLogIndex: 10,
    prevLogTerm: 6,
    entries: [],
    leaderCommit: 9,
    seq: 1,
  },
  {
    type: 'AppendRequest',
    from: 'n1',
    to: 'n2',
    term: 7,
    prevLogIndex: 10,
    prevLogTerm: 6,
    leaderCommit: 9,
    seq: 2,
    entries: [
      { index: 11, term: 7, type: EntryType.Noop, data: new Uint8Array(0) },
      { index: 12, term: 7, type: EntryType.Normal, data: bytes(200, 1) },
      { index: 13, term: 7, type: EntryType.Config, data: new TextEncoder().encode(JSON.stringify(config)) },
    ],
  },
  {
    type: 'AppendResponse',
    from: 'n2',
    to: 'n1',
    term: 7,
    success: true,
    matchIndex: 13,
    conflictTerm: 0,
    conflictIndex: 0,
    lastLogIndex: 13,
    seq: 2,
  },
  {
    type: 'AppendResponse',
    from: 'n2',
    to: 'n1',
    term: 7,
    success: false,
    matchIndex: 0,
    conflictTerm: 5,
    conflictIndex: 4,
    lastLogIndex: 8,
    seq: 3,
  },
  {
    type: 'SnapshotRequest',
    from: 'n1',
    to: 'n2',
    term: 7,
    meta: { index: 100, term: 6, config },
    offset: 0,
    data: bytes(1000, 2),
    done: false,
    seq: 4,
  },
  {
    type: 'SnapshotRequest',
    from: 'n1',
    to: 'n2',
    term: 7,
    meta: { index: 100, term: 6, config: { voters: [], outgoing: [], learners: [], addresses: {} } },
    offset: 1000,
    data: new Uint8Array(0),
    done: true,
    seq: 5,
  },
  {
    type: 'SnapshotResponse',
    from: 'n2',
    to: 'n1',
    term: 7,
    index: 100,
    nextOffset: -1,
    installed: false,
    seq: 5,
  },
  {
    type: 'SnapshotResponse',
    from: 'n2',
    to: 'n1',
    term: 7,
    index: 100,
    nextOffset: 1000,
    installed: true,
    seq: 6,
  },
  { type: 'TimeoutNow', from: 'n1', to: 'n2', term: 8 },
];

describe('codec round trip', () => {
  it.each(everyType.map((m, i) => [`${i} ${m.type}`, m] as const))(
    '%s decodes to the same message',
    (_name, m) => {
      const wire = encodeMessage(m);
      expect(wire.length).toBeLessThanOrEqual(messageBytesUpperBound(m));
      expect(decodeMessage(wire)).toEqual(m);
    },
  );

  it('keeps unicode node ids intact', () => {
    const m: Message = { type: 'TimeoutNow', from: 'узел-1 🚀', to: 'ノード二', term: 1 };
    expect(decodeMessage(encodeMessage(m))).toEqual(m);
  });

  it('carries big entry data and snapshot chunks as raw bytes', () => {
    const big = bytes(8 * 1024 * 1024, 3);
    const m: Message = {
      type: 'AppendRequest',
      from: 'n1',
      to: 'n2',
      term: 1,
      prevLogIndex: 0,
      prevLogTerm: 0,
      leaderCommit: 0,
      seq: 0,
      entries: [{ index: 1, term: 1, type: EntryType.Normal, data: big }],
    };
    const wire = encodeMessage(m);
    expect(wire.length).toBeLessThan(big.length + 200); // raw, not base64 or JSON
    const back = decodeMessage(wire) as typeof m;
    expect(Buffer.from(back.entries[0].data).equals(Buffer.from(big))).toBe(true);
  });

  it('decodes entry data as copies that do not alias the received buffer', () => {
    const m = everyType[5] as Extract<Message, { type: 'AppendRequest' }>;
    const wire = encodeMessage(m);
    const back = decodeMessage(wire) as typeof m;
    wire.fill(0);
    expect(back.entries[1].data).toEqual(m.entries[1].data);
  });

  it('refuses to encode numbers that are not safe integers or unknown entry types', () => {
    expect(() => encodeMessage({ type: 'TimeoutNow', from: 'a', to: 'b', term: 1.5 })).toThrow(CodecError);
    expect(() => encodeMessage({ type: 'TimeoutNow', from: 'a', to: 'b', term: 2 ** 53 })).toThrow(
      CodecError,
    );
    const bad = {
      ...(everyType[5] as Extract<Message, { type: 'AppendRequest' }>),
      entries: [{ index: 1, term: 1, type: 9 as EntryType, data: new Uint8Array(1) }],
    };
    expect(() => encodeMessage(bad)).toThrow(/entry.type 9/);
  });
});

describe('frames', () => {
  it('carry many messages in one frame and split correctly at every byte boundary', () => {
    const frame = encodeMessagesFrame(everyType, messagesFrameBound(everyType));
    expect(frame.encoded).toBe(everyType.length);
    const stream = Buffer.concat([frame.frame, frame.frame]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new FrameDecoder(1 << 20);
      const frames = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
      expect(frames).toHaveLength(2);
      for (const f of frames) {
        expect(f.kind).toBe(FrameKind.Messages);
        expect(f.payload.equals(frame.frame.subarray(5))).toBe(true);
      }
    }
    expect(decodeMessagesPayload(frame.frame.subarray(5))).toEqual(everyType);
  });

  it('leave an unencodable message out and keep the rest', () => {
    const list: Message[] = [
      everyType[0],
      { type: 'TimeoutNow', from: 'a', to: 'b', term: NaN },
      everyType[12],
    ];
    const out = encodeMessagesFrame(list, messagesFrameBound(list));
    expect(out.encoded).toBe(2);
    expect(out.failed.map((f) => f.message)).toEqual([list[1]]);
    const [f] = new FrameDecoder(1 << 20).push(out.frame);
    expect(decodeMessagesPayload(f.payload)).toEqual([everyType[0], everyType[12]]);
  });

  it('refuse a length over the limit before buffering it', () => {
    const d = new FrameDecoder(1024);
    const header = Buffer.alloc(5);
    header.writeUInt32LE(1025, 0);
    expect(() => d.push(header)).toThrow(/frame length 1025/);
  });

  it('turn corrupted bytes into CodecError, never another exception (seeded fuzz)', () => {
    const random = new Prng(42).asFunction();
    const good = encodeMessagesFrame(everyType, messagesFrameBound(everyType)).frame;
    let decodeErrors = 0;
    for (let round = 0; round < 3000; round++) {
      const bad = Buffer.from(good);
      const flips = 1 + Math.floor(random() * 4);
      for (let i = 0; i < flips; i++) bad[Math.floor(random() * bad.length)] = Math.floor(random() * 256);
      const cut = random() < 0.3 ? bad.subarray(0, Math.floor(random() * bad.length)) : bad;
      try {
        for (const f of new FrameDecoder(1 << 20).push(cut)) decodeMessagesPayload(f.payload);
      } catch (err) {
        if (!(err instanceof CodecError)) throw new Error(`round ${round}: ${String(err)}`);
        decodeErrors++;
      }
    }
    expect(decodeErrors).toBeGreaterThan(1000);
  });
});
