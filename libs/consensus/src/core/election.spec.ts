import { AppendRequest, Message, VoteRequest, VoteResponse } from './messages';
import { InteractionCluster, soloCore } from '../testing/interaction';

const voteRequest = (
  from: string,
  to: string,
  term: number,
  lastLogIndex: number,
  lastLogTerm: number,
  extra: Partial<VoteRequest> = {},
): VoteRequest => ({
  type: 'VoteRequest',
  from,
  to,
  term,
  preVote: false,
  lastLogIndex,
  lastLogTerm,
  transfer: false,
  ...extra,
});

const votesIn = (msgs: Message[]) => msgs.filter((m): m is VoteResponse => m.type === 'VoteResponse');

describe('elections', () => {
  it('the election timeout is drawn in [electionTicks, 2 * electionTicks)', () => {
    for (const [random, expected] of [
      [0, 10],
      [0.5, 15],
      [0.999, 19],
    ] as const) {
      const { core } = soloCore(
        'n1',
        ['n1', 'n2', 'n3'],
        {},
        { electionTicks: 10, preVote: false, random: () => random },
      );
      let ticks = 0;
      while (core.state === 'follower' && ticks < 100) {
        core.tick();
        ticks++;
      }
      expect(ticks).toBe(expected);
      expect(core.state).toBe('candidate');
    }
  });

  it('a candidate increments its term, votes for itself and asks every other voter only after persisting that', () => {
    const { core } = soloCore('n1', ['n1', 'n2', 'n3'], { terms: [1, 1], term: 1 }, { preVote: false });
    core.campaign();
    const rd = core.ready();
    expect(rd.hardState).toMatchObject({ term: 2, vote: 'n1' });
    expect(rd.messages.filter((m) => m.type === 'VoteRequest')).toEqual([]);
    expect(rd.persistedMessages).toEqual([
      voteRequest('n1', 'n2', 2, 2, 1),
      voteRequest('n1', 'n3', 2, 2, 1),
    ]);
  });

  it('a granted vote goes out only after the vote and term are persisted', () => {
    const { core } = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 1 });
    core.step(voteRequest('n1', 'n2', 2, 1, 1));
    const rd = core.ready();
    expect(rd.hardState).toEqual({ term: 2, vote: 'n1', commit: 0 });
    expect(votesIn(rd.messages)).toEqual([]);
    expect(votesIn(rd.persistedMessages)).toEqual([
      { type: 'VoteResponse', from: 'n2', to: 'n1', term: 2, preVote: false, granted: true },
    ]);
  });

  it('election restriction: a vote goes only to a candidate whose log is at least as up to date (last term, then index)', () => {
    // The voter's log ends at index 3, term 2.
    const cases: [lastLogIndex: number, lastLogTerm: number, granted: boolean][] = [
      [5, 1, false], // older last term, longer log
      [2, 2, false], // same last term, shorter log
      [3, 2, true], // same last term, same length
      [4, 2, true], // same last term, longer
      [1, 3, true], // newer last term, shorter log
    ];
    for (const [lastLogIndex, lastLogTerm, granted] of cases) {
      const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1, 1, 2], term: 2 });
      s.core.step(voteRequest('n1', 'n2', 3, lastLogIndex, lastLogTerm));
      expect({
        lastLogIndex,
        lastLogTerm,
        granted: votesIn(s.persist().persistedMessages)[0].granted,
      }).toEqual({ lastLogIndex, lastLogTerm, granted });
    }
  });

  it('a voter grants at most one vote per term', () => {
    const s = soloCore('n3', ['n1', 'n2', 'n3'], { terms: [1], term: 1 });
    s.core.step(voteRequest('n1', 'n3', 2, 1, 1));
    s.core.step(voteRequest('n2', 'n3', 2, 1, 1));
    s.core.step(voteRequest('n1', 'n3', 2, 1, 1));
    expect(votesIn(s.persist().persistedMessages).map((m) => [m.to, m.granted])).toEqual([
      ['n1', true],
      ['n2', false],
      ['n1', true],
    ]);
  });

  it('a candidate that gets a majority of votes becomes leader and appends a no-op entry of its term', () => {
    const s = soloCore('n1', ['n1', 'n2', 'n3'], { terms: [1], term: 1 }, { preVote: false });
    s.core.campaign();
    s.persist();
    s.core.step({ type: 'VoteResponse', from: 'n2', to: 'n1', term: 2, preVote: false, granted: true });
    expect(s.core.state).toBe('leader');
    const rd = s.persist();
    expect(rd.entries).toEqual([expect.objectContaining({ index: 2, term: 2, type: 1 })]);
    expect(rd.softState).toEqual({ leaderId: 'n1', role: 'leader' });
  });

  it('a candidate that a majority rejects becomes follower', () => {
    const s = soloCore('n1', ['n1', 'n2', 'n3'], { terms: [1], term: 1 }, { preVote: false });
    s.core.campaign();
    s.core.step({ type: 'VoteResponse', from: 'n2', to: 'n1', term: 2, preVote: false, granted: false });
    expect(s.core.state).toBe('candidate');
    s.core.step({ type: 'VoteResponse', from: 'n3', to: 'n1', term: 2, preVote: false, granted: false });
    expect(s.core.state).toBe('follower');
  });

  it('a candidate that hears from a leader of its term becomes its follower', () => {
    const s = soloCore('n1', ['n1', 'n2', 'n3'], { terms: [1], term: 1 }, { preVote: false });
    s.core.campaign();
    s.core.step({
      type: 'AppendRequest',
      from: 'n2',
      to: 'n1',
      term: 2,
      prevLogIndex: 1,
      prevLogTerm: 1,
      entries: [],
      leaderCommit: 0,
      seq: 1,
    });
    expect(s.core.state).toBe('follower');
    expect(s.core.leaderId).toBe('n2');
  });

  it('pre-vote: a pre-candidate asks at term + 1 without changing its term; a voter grants without changing its own', () => {
    const candidate = soloCore('n1', ['n1', 'n2', 'n3'], { terms: [1], term: 1 });
    candidate.core.campaign();
    expect(candidate.core.state).toBe('pre-candidate');
    const rd = candidate.persist();
    expect(rd.hardState).toBeUndefined();
    const requests = [...rd.messages, ...rd.persistedMessages].filter(
      (m): m is VoteRequest => m.type === 'VoteRequest',
    );
    expect(requests.map((m) => [m.to, m.term, m.preVote])).toEqual([
      ['n2', 2, true],
      ['n3', 2, true],
    ]);

    const voter = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 1 });
    voter.core.step(requests[0]);
    const vrd = voter.persist();
    expect(vrd.hardState).toBeUndefined();
    expect(voter.core.term).toBe(1);
    expect(votesIn(vrd.persistedMessages)).toEqual([
      { type: 'VoteResponse', from: 'n2', to: 'n1', term: 2, preVote: true, granted: true },
    ]);

    candidate.core.step(votesIn(vrd.persistedMessages)[0]);
    expect(candidate.core.state).toBe('candidate');
    expect(candidate.core.term).toBe(2);
  });

  it('pre-vote: a pre-vote is refused when the candidate log is behind', () => {
    const voter = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1, 1], term: 1 });
    voter.core.step(voteRequest('n1', 'n2', 2, 1, 1, { preVote: true }));
    expect(votesIn(voter.persist().persistedMessages)[0]).toMatchObject({
      granted: false,
      preVote: true,
      term: 1,
    });
  });

  it('pre-vote: a partitioned node does not inflate its term and cannot depose the leader when it returns', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3'], { preVote: true, checkQuorum: true });
    c.elect('n1');
    const term = c.core('n1').term;
    c.isolate('n3');
    c.tickAll(100);
    expect(c.core('n3').term).toBe(term);
    expect(c.core('n3').state).not.toBe('leader');
    c.heal();
    c.tickAll(30);
    expect(c.core('n1').state).toBe('leader');
    expect(c.core('n1').term).toBe(term);
    expect(c.core('n3').leaderId).toBe('n1');
  });

  it('check-quorum: a leader that did not hear from a majority within an election timeout steps down', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3'], { checkQuorum: true, electionTicks: 10 });
    c.elect('n1');
    c.isolate('n1');
    for (let i = 0; i < 20 && c.core('n1').state === 'leader'; i++) {
      c.core('n1').tick();
      c.stabilize();
    }
    expect(c.core('n1').state).toBe('follower');
  });

  it('check-quorum: a leader that hears from a majority stays leader', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3'], { checkQuorum: true, electionTicks: 10 });
    c.elect('n1');
    c.isolate('n3');
    c.tickAll(50);
    expect(c.core('n1').state).toBe('leader');
  });

  it('a leader that sees a higher term becomes follower', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3']);
    c.elect('n1');
    c.core('n1').step({
      type: 'AppendResponse',
      from: 'n2',
      to: 'n1',
      term: 9,
      success: false,
      matchIndex: 0,
      conflictTerm: 0,
      conflictIndex: 0,
      lastLogIndex: 0,
      seq: 0,
    });
    expect(c.core('n1').state).toBe('follower');
    expect(c.core('n1').term).toBe(9);
  });

  it('a stale leader is answered with the newer term so that it steps down', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 5 });
    s.core.step({
      type: 'AppendRequest',
      from: 'n1',
      to: 'n2',
      term: 3,
      prevLogIndex: 1,
      prevLogTerm: 1,
      entries: [],
      leaderCommit: 0,
      seq: 7,
    });
    const answers = s.persist().persistedMessages;
    // seq 0: the answer is at term 5 and must not acknowledge a heartbeat round of a (restarted) term-5 leader.
    expect(answers).toEqual([
      expect.objectContaining({ type: 'AppendResponse', to: 'n1', term: 5, success: false, seq: 0 }),
    ]);
  });

  it('a restarted node knows no leader: it answers vote requests at once (no extra election timeout)', () => {
    const s = soloCore(
      'n2',
      ['n1', 'n2', 'n3'],
      { terms: [1], term: 1 },
      { keepStartupGuard: true, electionTicks: 10 },
    );
    s.core.step(voteRequest('n1', 'n2', 2, 1, 1));
    expect(s.core.term).toBe(2);
    expect(votesIn(s.persist().persistedMessages)[0].granted).toBe(true);
  });

  it('with lease reads on, a restarted node ignores vote requests for one election timeout (a lease it acknowledged may be in use)', () => {
    const s = soloCore(
      'n2',
      ['n1', 'n2', 'n3'],
      { terms: [1], term: 1 },
      { keepStartupGuard: true, electionTicks: 10, leaseReads: true },
    );
    s.core.step(voteRequest('n1', 'n2', 2, 1, 1));
    expect(s.core.term).toBe(1);
    expect(s.core.hasReady()).toBe(false);
    for (let i = 0; i < 10; i++) s.core.tick();
    s.core.step(voteRequest('n1', 'n2', 2, 1, 1));
    expect(votesIn(s.persist().persistedMessages)[0].granted).toBe(true);
  });

  it('a node that heard from the leader within the election timeout ignores vote requests, then answers them', () => {
    const s = soloCore(
      'n2',
      ['n1', 'n2', 'n3'],
      { terms: [1], term: 1 },
      { keepStartupGuard: true, electionTicks: 10 },
    );
    s.core.step({
      type: 'AppendRequest',
      from: 'n1',
      to: 'n2',
      term: 1,
      prevLogIndex: 1,
      prevLogTerm: 1,
      entries: [],
      leaderCommit: 1,
      seq: 1,
    });
    s.persist();
    s.core.step(voteRequest('n3', 'n2', 2, 1, 1));
    expect(s.core.term).toBe(1);
    expect(s.core.hasReady()).toBe(false);
    for (let i = 0; i < 9; i++) s.core.tick();
    s.core.step(voteRequest('n3', 'n2', 2, 1, 1));
    expect(s.core.term).toBe(1);
    s.core.tick();
    s.core.step(voteRequest('n3', 'n2', 2, 1, 1));
    expect(votesIn(s.persist().persistedMessages)[0].granted).toBe(true);
  });

  it('a learner never campaigns', () => {
    const s = soloCore('n4', ['n1', 'n2', 'n3'], { learners: ['n4'] }, { electionTicks: 5 });
    expect(s.core.status().role).toBe('learner');
    for (let i = 0; i < 50; i++) s.core.tick();
    s.core.campaign();
    expect(s.core.status().role).toBe('learner');
    expect(s.core.hasReady()).toBe(false);
  });

  describe('a hint that the leader is gone (its Raft port refuses connections)', () => {
    const heartbeat: AppendRequest = {
      type: 'AppendRequest',
      from: 'n1',
      to: 'n2',
      term: 1,
      prevLogIndex: 1,
      prevLogTerm: 1,
      entries: [],
      leaderCommit: 1,
      seq: 1,
    };
    const followerOfN1 = (opts: { leaseReads?: boolean } = {}) => {
      const s = soloCore(
        'n2',
        ['n1', 'n2', 'n3'],
        { terms: [1], term: 1 },
        { keepStartupGuard: true, electionTicks: 10, ...opts },
      );
      s.core.step(heartbeat);
      s.persist();
      return s;
    };

    it('makes a follower forget its leader and answer vote requests at once', () => {
      const s = followerOfN1();
      s.core.step(voteRequest('n3', 'n2', 2, 1, 1));
      expect(s.core.hasReady()).toBe(false); // still guarded by the live leader
      expect(s.core.leaderGone('n3')).toBe(false); // not its leader: nothing changes
      expect(s.core.leaderGone('n1')).toBe(true);
      expect(s.core.status().leaderId).toBeNull();
      s.core.step(voteRequest('n3', 'n2', 2, 1, 1));
      expect(votesIn(s.persist().persistedMessages)[0].granted).toBe(true);
    });

    it('lets a leaderless follower start a pre-vote round at once, and a pre-candidate start it again', () => {
      const s = followerOfN1();
      expect(s.core.campaignIfLeaderless()).toBe(false); // it has a leader
      s.core.leaderGone('n1');
      expect(s.core.campaignIfLeaderless()).toBe(true);
      expect(s.core.status().role).toBe('pre-candidate');
      expect(s.core.term).toBe(1); // a pre-vote changes no term
      const first = s.persist();
      expect(
        [...first.messages, ...first.persistedMessages].filter((m) => m.type === 'VoteRequest'),
      ).toHaveLength(2);
      expect(s.core.campaignIfLeaderless()).toBe(true);
      const again = s.persist();
      expect(
        [...again.messages, ...again.persistedMessages].filter((m) => m.type === 'VoteRequest'),
      ).toHaveLength(2);
      // A leader of the term appears: nothing more to do.
      s.core.step({ ...heartbeat, term: 2, from: 'n3' });
      expect(s.core.campaignIfLeaderless()).toBe(false);
    });

    it('is ignored with lease reads on: the old leader may still serve reads under its lease', () => {
      const s = followerOfN1({ leaseReads: true });
      expect(s.core.leaderGone('n1')).toBe(false);
      expect(s.core.status().leaderId).toBe('n1');
      s.core.step(voteRequest('n3', 'n2', 2, 1, 1));
      expect(s.core.hasReady()).toBe(false);
    });
  });
});
