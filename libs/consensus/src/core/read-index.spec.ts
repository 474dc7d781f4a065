import { AppendRequest, Message } from './messages';
import { RaftError } from './ready';
import { InteractionCluster, ackFrom, electSolo, soloCore } from '../testing/interaction';

const heartbeatsTo = (msgs: Message[], to: string) =>
  msgs.filter((m): m is AppendRequest => m.type === 'AppendRequest' && m.to === to && m.entries.length === 0);
const ack = ackFrom;

/** n1 leads n1..n5 at term 2 and has committed its no-op (index 2). */
function committedLeader(options: Parameters<typeof soloCore>[3] = {}) {
  const s = soloCore(
    'n1',
    ['n1', 'n2', 'n3', 'n4', 'n5'],
    { terms: [1], term: 1 },
    { preVote: false, ...options },
  );
  electSolo(s);
  s.core.step(ack('n2', 2, 2, 0));
  s.core.step(ack('n3', 2, 2, 0));
  s.persist();
  expect(s.core.status().commit).toBe(2);
  return s;
}

describe('ReadIndex', () => {
  it('a read is released only after a majority acknowledged a heartbeat round sent after it', () => {
    const s = committedLeader();
    s.core.readIndex('r1');
    const rd = s.persist();
    expect(rd.readStates).toEqual([]);
    const seq = heartbeatsTo(rd.messages, 'n2')[0].seq;
    // An acknowledgement of an older round does not count.
    s.core.step(ack('n2', 2, 2, seq - 1));
    s.core.step(ack('n3', 2, 2, seq - 1));
    expect(s.persist().readStates).toEqual([]);
    s.core.step(ack('n2', 2, 2, seq));
    expect(s.persist().readStates).toEqual([]);
    s.core.step(ack('n3', 2, 2, seq));
    expect(s.persist().readStates).toEqual([{ ctx: 'r1', index: 2 }]);
  });

  it('a read records the commit index at its arrival', () => {
    const s = committedLeader();
    s.core.readIndex('r1');
    const seq = heartbeatsTo(s.persist().messages, 'n2')[0].seq;
    s.core.propose(new Uint8Array([1]));
    s.persist();
    s.core.step(ack('n2', 2, 3, seq));
    s.core.step(ack('n3', 2, 3, seq));
    expect(s.core.status().commit).toBe(3);
    expect(s.persist().readStates).toEqual([{ ctx: 'r1', index: 2 }]);
  });

  it('a read waits until the leader has committed an entry of its own term', () => {
    const s = soloCore('n1', ['n1', 'n2', 'n3'], { terms: [1], term: 1 }, { preVote: false });
    electSolo(s);
    s.core.readIndex('r1');
    const rd = s.persist();
    expect(rd.readStates).toEqual([]);
    expect(heartbeatsTo(rd.messages, 'n2')).toEqual([]);
    s.core.step(ack('n2', 2, 2, 0));
    const rd2 = s.persist();
    const seq = Math.max(...heartbeatsTo(rd2.messages, 'n2').map((m) => m.seq));
    s.core.step(ack('n2', 2, 2, seq));
    expect(s.persist().readStates).toEqual([{ ctx: 'r1', index: 2 }]);
  });

  it('a single-voter leader serves a read at once', () => {
    const c = new InteractionCluster(['n1']);
    c.tickAll(20);
    c.core('n1').readIndex('r1');
    c.stabilize();
    expect(c.node('n1').readStates).toEqual([{ ctx: 'r1', index: 1 }]);
  });

  it('a follower refuses to serve a read (not_leader): the shell forwards it', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 1 });
    expect(() => s.core.readIndex('r1')).toThrow(RaftError);
    expect(() => s.core.readIndex('r1')).toThrow(
      expect.objectContaining({ code: 'not_leader' }) as unknown as Error,
    );
  });

  it('pending reads fail with leadership_lost when the leader steps down', () => {
    const s = committedLeader();
    s.core.readIndex('r1');
    s.persist();
    s.core.step({
      type: 'AppendRequest',
      from: 'n2',
      to: 'n1',
      term: 3,
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [],
      leaderCommit: 0,
      seq: 1,
    });
    const rd = s.persist();
    expect(rd.readStates).toEqual([]);
    expect(rd.failedReads.map((f) => [f.ctx, f.error.code])).toEqual([['r1', 'leadership_lost']]);
  });

  it('a read in a three-node cluster completes end to end', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3']);
    c.elect('n1');
    c.propose('n1', 'x');
    c.stabilize();
    c.core('n1').readIndex('r1');
    c.stabilize();
    expect(c.node('n1').readStates).toEqual([{ ctx: 'r1', index: 2 }]);
  });

  describe('lease reads (opt-in)', () => {
    const opts = { leaseReads: true, electionTicks: 10, clockDriftTicksMax: 2, heartbeatTicks: 1 };

    it('a leader whose majority acknowledged within electionTicks - clockDriftTicksMax serves a lease read at once', () => {
      const s = committedLeader(opts);
      s.core.tick();
      const seq = heartbeatsTo(s.persist().messages, 'n2')[0].seq;
      s.core.step(ack('n2', 2, 2, seq));
      s.core.step(ack('n3', 2, 2, seq));
      s.core.readIndex('r1', { lease: true });
      expect(s.persist().readStates).toEqual([{ ctx: 'r1', index: 2 }]);
    });

    it('an expired lease falls back to a heartbeat round', () => {
      const s = committedLeader(opts);
      s.core.tick();
      const seq = heartbeatsTo(s.persist().messages, 'n2')[0].seq;
      s.core.step(ack('n2', 2, 2, seq));
      s.core.step(ack('n3', 2, 2, seq));
      // 8 = electionTicks - clockDriftTicksMax ticks later the lease is over.
      for (let i = 0; i < 8; i++) s.core.tick();
      s.persist();
      s.core.readIndex('r1', { lease: true });
      expect(s.persist().readStates).toEqual([]);
    });

    it('without leaseReads in the options, lease: true still confirms with a heartbeat round', () => {
      const s = committedLeader({ ...opts, leaseReads: false });
      s.core.tick();
      const seq = heartbeatsTo(s.persist().messages, 'n2')[0].seq;
      s.core.step(ack('n2', 2, 2, seq));
      s.core.step(ack('n3', 2, 2, seq));
      s.core.readIndex('r1', { lease: true });
      expect(s.persist().readStates).toEqual([]);
    });

    it('after sending TimeoutNow the leader stops serving lease reads for the rest of its term', () => {
      const s = committedLeader(opts);
      s.core.tick();
      const seq = heartbeatsTo(s.persist().messages, 'n2')[0].seq;
      s.core.step(ack('n2', 2, 2, seq));
      s.core.step(ack('n3', 2, 2, seq));
      s.core.transferLeadership('n2');
      expect(s.persist().messages.some((m) => m.type === 'TimeoutNow')).toBe(true);
      for (let i = 0; i < 10; i++) s.core.tick(); // the transfer times out, we are still leader
      s.persist();
      expect(s.core.state).toBe('leader');
      s.core.tick();
      const seq2 = heartbeatsTo(s.persist().messages, 'n2')[0].seq;
      s.core.step(ack('n2', 2, 2, seq2));
      s.core.step(ack('n3', 2, 2, seq2));
      s.core.readIndex('r1', { lease: true });
      expect(s.persist().readStates).toEqual([]);
    });
  });
});
