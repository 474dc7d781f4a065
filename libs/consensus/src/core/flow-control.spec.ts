import { AppendRequest } from './messages';
import { RaftError } from './ready';
import { ackFrom, appendsTo, electSolo, soloCore } from '../testing/interaction';

const ack = ackFrom;
const bytes = (n: number) => new Uint8Array(n).fill(7);

function leaderWith(options: Parameters<typeof soloCore>[3]) {
  const s = soloCore('n1', ['n1', 'n2', 'n3'], { terms: [1], term: 1 }, { preVote: false, ...options });
  electSolo(s);
  return s;
}

describe('flow control', () => {
  it('a probing follower gets one AppendRequest at a time until it answers', () => {
    const s = leaderWith({});
    s.core.propose(bytes(1));
    s.core.propose(bytes(1));
    expect(appendsTo(s.persist().messages, 'n2')).toEqual([]);
    s.core.step(ack('n2', 2, 1));
    expect(s.core.status().progress.n2.state).toBe('replicate');
  });

  it('in replicate state at most inflightMsgsMax AppendRequests are in flight; an acknowledgement frees room', () => {
    const s = leaderWith({ inflightMsgsMax: 2, msgBytesMax: 1 });
    s.core.step(ack('n2', 2, 2));
    s.persist();
    for (let i = 0; i < 5; i++) s.core.propose(bytes(1));
    const sent = appendsTo(s.persist().messages, 'n2');
    expect(sent.map((m) => m.entries.map((e) => e.index))).toEqual([[3], [4]]);
    s.core.step(ack('n2', 2, 3));
    expect(appendsTo(s.persist().messages, 'n2').map((m) => m.entries.map((e) => e.index))).toEqual(
      expect.arrayContaining([[5]]),
    );
  });

  it('an AppendRequest carries at most msgBytesMax of payload, but always at least one entry', () => {
    const s = leaderWith({ msgBytesMax: 10, inflightMsgsMax: 1 });
    s.core.step(ack('n2', 2, 2));
    s.persist();
    const sizes = () =>
      appendsTo(s.persist().messages, 'n2')
        .filter((m) => m.entries.length > 0)
        .map((m) => m.entries.map((e) => e.data.byteLength));
    // Index 3 goes out alone; 4..7 wait for room in the window and then go out in batches.
    s.core.propose(bytes(1));
    expect(sizes()).toEqual([[1]]);
    for (const n of [4, 4, 4, 20]) s.core.propose(bytes(n));
    expect(sizes()).toEqual([]);
    s.core.step(ack('n2', 2, 3));
    expect(sizes()).toEqual([[4, 4]]);
    s.core.step(ack('n2', 2, 5));
    expect(sizes()).toEqual([[4]]);
    s.core.step(ack('n2', 2, 6));
    expect(sizes()).toEqual([[20]]);
  });

  it('after a rejection the leader goes back to probing from the hinted index', () => {
    const s = leaderWith({});
    s.core.step({
      type: 'AppendResponse',
      from: 'n2',
      to: 'n1',
      term: 2,
      success: false,
      matchIndex: 0,
      conflictTerm: 0,
      conflictIndex: 1,
      lastLogIndex: 0,
      seq: 0,
    });
    const sent = appendsTo(s.persist().messages, 'n2');
    expect(sent.map((m) => m.prevLogIndex)).toEqual([0]);
    expect(s.core.status().progress.n2).toMatchObject({ state: 'probe', next: 1 });
  });

  it('only the first rejection of a window restarts replication; rejections of older messages are stale', () => {
    // Found by the simulator's swarm (a reordering network, one entry per message, 64 in flight): every stale
    // rejection restarted the window, each restart drew more rejections, and the messages multiplied.
    const s = leaderWith({ inflightMsgsMax: 64, msgBytesMax: 1 });
    s.core.step(ack('n2', 2, 2));
    s.persist();
    for (let i = 0; i < 6; i++) s.core.propose(bytes(1));
    const window = appendsTo(s.persist().messages, 'n2').filter((m) => m.entries.length > 0);
    expect(window.map((m) => m.prevLogIndex)).toEqual([2, 3, 4, 5, 6, 7]);
    // Index 3 is delayed on the way; the follower rejects every later message of the window.
    const reject = (m: AppendRequest) =>
      s.core.step({
        type: 'AppendResponse',
        from: 'n2',
        to: 'n1',
        term: 2,
        success: false,
        matchIndex: 0,
        conflictTerm: 0,
        conflictIndex: 3,
        lastLogIndex: 2,
        seq: m.seq,
      });
    reject(window[1]);
    expect(s.core.status().progress.n2).toMatchObject({ state: 'probe', next: 3 });
    const probe = appendsTo(s.persist().messages, 'n2');
    expect(probe.map((m) => m.prevLogIndex)).toEqual([2]);
    for (const m of window.slice(2)) reject(m);
    expect(appendsTo(s.persist().messages, 'n2')).toEqual([]);
    // The probe's own rejection is news: it is acted on.
    reject(probe[0]);
    expect(appendsTo(s.persist().messages, 'n2').map((m) => m.prevLogIndex)).toEqual([2]);
  });

  it('a heartbeat carries commit = min(follower match, commit)', () => {
    const s = leaderWith({ heartbeatTicks: 1 });
    s.core.step(ack('n2', 2, 2));
    s.persist();
    expect(s.core.status().commit).toBe(2);
    s.core.tick();
    const beats = s
      .persist()
      .messages.filter((m): m is AppendRequest => m.type === 'AppendRequest' && m.entries.length === 0);
    expect(beats.find((m) => m.to === 'n2')?.leaderCommit).toBe(2);
    expect(beats.find((m) => m.to === 'n3')?.leaderCommit).toBe(0);
  });

  it('a lost append in replicate state is resent once a heartbeat sent an election timeout later is answered without it', () => {
    const s = leaderWith({ heartbeatTicks: 1, electionTicks: 10, checkQuorum: false });
    s.core.step(ack('n2', 2, 2));
    s.persist();
    s.core.propose(bytes(1)); // index 3, sent and lost
    s.persist();
    const beatAfter = (ticks: number) => {
      for (let i = 0; i < ticks; i++) s.core.tick();
      return appendsTo(s.persist().messages, 'n2')
        .filter((m) => m.entries.length === 0)
        .pop() as AppendRequest;
    };
    // A heartbeat answer may overtake an append still on its way (another connection): no resend yet.
    s.core.step(ack('n2', 2, 2, beatAfter(1).seq));
    expect(appendsTo(s.persist().messages, 'n2').filter((m) => m.entries.length > 0)).toEqual([]);
    s.core.step(ack('n2', 2, 2, beatAfter(9).seq));
    expect(appendsTo(s.persist().messages, 'n2').map((m) => m.entries.map((e) => e.index))).toEqual([[3]]);
  });

  it('at most inflightBytesMax payload bytes are in flight (one message may cross it); acknowledgements free them', () => {
    const s = leaderWith({ inflightMsgsMax: 100, msgBytesMax: 10, inflightBytesMax: 25 });
    s.core.step(ack('n2', 2, 2));
    s.persist();
    for (let i = 0; i < 8; i++) s.core.propose(bytes(10)); // indexes 3..10
    const sent = () =>
      appendsTo(s.persist().messages, 'n2')
        .filter((m) => m.entries.length > 0)
        .map((m) => m.entries.map((e) => e.index));
    expect(sent()).toEqual([[3], [4], [5]]);
    s.core.step(ack('n2', 2, 3));
    expect(sent()).toEqual([[6]]);
    s.core.step(ack('n2', 2, 5));
    expect(sent()).toEqual([[7], [8]]);
    expect(s.core.status().progress.n2.next).toBe(9);
  });

  it('inflightBytesMax below msgBytesMax is refused at construction', () => {
    expect(() => leaderWith({ msgBytesMax: 100, inflightBytesMax: 10 })).toThrow(/inflightBytesMax/);
  });

  it('proposals are refused with overloaded while uncommittedBytesMax bytes are uncommitted', () => {
    const s = leaderWith({ uncommittedBytesMax: 100 });
    s.core.propose(bytes(60));
    s.core.propose(bytes(40));
    expect(() => s.core.propose(bytes(1))).toThrow(
      expect.objectContaining({ code: 'overloaded' }) as unknown as RaftError,
    );
    s.core.step(ack('n2', 2, 4));
    s.persist();
    expect(s.core.status().commit).toBe(4);
    expect(s.core.propose(bytes(1)).index).toBe(5);
  });

  it('a follower refuses proposals with not_leader, naming the leader', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 1 });
    s.core.step({
      type: 'AppendRequest',
      from: 'n1',
      to: 'n2',
      term: 1,
      prevLogIndex: 1,
      prevLogTerm: 1,
      entries: [],
      leaderCommit: 0,
      seq: 1,
    });
    let caught: unknown;
    try {
      s.core.propose(bytes(1));
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(RaftError);
    expect(caught).toMatchObject({ code: 'not_leader', leaderId: 'n1' });
  });
});
