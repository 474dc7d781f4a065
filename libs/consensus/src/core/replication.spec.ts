import { AppendRequest, AppendResponse, Message } from './messages';
import { MemoryStorage } from '../testing/memory-storage';
import {
  InteractionCluster,
  appendFromLeader,
  appendsTo,
  configOf,
  electSolo,
  entriesWithTerms,
  soloCore,
} from '../testing/interaction';

const responsesFrom = (msgs: Message[], from: string) =>
  msgs.filter((m): m is AppendResponse => m.type === 'AppendResponse' && m.from === from);

const append = (
  prevLogIndex: number,
  prevLogTerm: number,
  terms: number[],
  leaderCommit = 0,
  term = 5,
): AppendRequest => appendFromLeader(prevLogIndex, prevLogTerm, terms, term, leaderCommit);

/** A 3-node cluster where n1 and n3 hold `leaderTerms` and n2 holds `followerTerms`; all at hard-state term `term`. */
function divergedCluster(leaderTerms: number[], followerTerms: number[], term: number): InteractionCluster {
  const c = new InteractionCluster([], { preVote: false });
  const config = configOf(['n1', 'n2', 'n3']);
  for (const [id, terms] of [
    ['n1', leaderTerms],
    ['n2', followerTerms],
    ['n3', leaderTerms],
  ] as const) {
    c.addNode(
      id,
      config,
      new MemoryStorage({ entries: entriesWithTerms(terms), hardState: { term, vote: null, commit: 0 } }),
    );
  }
  return c;
}

/** Elects n1 while recording every message; returns n2's answers and n1's AppendRequests to n2. */
function electAndRecord(c: InteractionCluster): { toN2: AppendRequest[]; fromN2: AppendResponse[] } {
  const seen: Message[] = [];
  const orig = c.deliver.bind(c);
  c.deliver = (filter) => {
    seen.push(...c.network);
    return orig(filter);
  };
  c.elect('n1');
  return { toN2: appendsTo(seen, 'n2'), fromN2: responsesFrom(seen, 'n2') };
}

const termsOf = (c: InteractionCluster, id: string) => {
  const st = c.node(id).storage;
  return st.entries(st.firstIndex(), st.lastIndex() + 1, Number.MAX_SAFE_INTEGER).map((e) => e.term);
};

describe('replication', () => {
  it('a single-node cluster elects itself after its election timeout and commits on its own persist', () => {
    const c = new InteractionCluster(['n1']);
    for (let i = 0; i < 20 && c.core('n1').status().role !== 'leader'; i++) c.tickAll(1);
    expect(c.core('n1').status().role).toBe('leader');
    c.propose('n1', 'a');
    c.stabilize();
    expect(c.appliedTexts('n1')).toEqual(['a']);
    expect(c.core('n1').status().commit).toBe(2);
  });

  it('a leader replicates entries to every follower and commits them on a majority', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3']);
    c.elect('n1');
    c.propose('n1', 'x');
    c.propose('n1', 'y');
    c.stabilize();
    for (const id of ['n1', 'n2', 'n3']) expect(c.appliedTexts(id)).toEqual(['x', 'y']);
  });

  it('log matching: a follower rejects an AppendRequest whose previous entry it does not hold with that term', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1, 1, 2], term: 2 });
    s.core.step(append(3, 3, [5]));
    const [r] = responsesFrom(s.persist().persistedMessages, 'n2');
    expect(r).toMatchObject({ success: false, conflictTerm: 2, conflictIndex: 3, lastLogIndex: 3 });
    expect(s.storage.lastIndex()).toBe(3);
  });

  it('a follower appends after a matching previous entry and acknowledges only after persisting', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1, 1], term: 1 });
    s.core.step(append(2, 1, [5, 5]));
    const rd = s.core.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([3, 4]);
    expect(responsesFrom(rd.messages, 'n2')).toEqual([]);
    expect(responsesFrom(rd.persistedMessages, 'n2')).toEqual([
      expect.objectContaining({ success: true, matchIndex: 4 }),
    ]);
  });

  it('a conflicting suffix at a follower is truncated and replaced by the leader entries', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1, 1, 2, 2], term: 2 });
    s.core.step(append(2, 1, [5]));
    const rd = s.persist();
    expect(rd.entries.map((e) => [e.index, e.term])).toEqual([[3, 5]]);
    expect([s.storage.lastIndex(), s.storage.term(3)]).toEqual([3, 5]);
  });

  it('a duplicate or reordered AppendRequest does not truncate entries the follower already holds', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1, 1, 5, 5], term: 5 });
    s.core.step(append(1, 1, [1, 5]));
    const rd = s.persist();
    expect(rd.entries).toEqual([]);
    expect(s.storage.lastIndex()).toBe(4);
    expect(responsesFrom(rd.persistedMessages, 'n2')[0]).toMatchObject({ success: true, matchIndex: 3 });
  });

  it('a follower commits min(leaderCommit, index of the last new entry)', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 1 });
    s.core.step(append(1, 1, [5, 5], 10));
    expect(s.core.status().commit).toBe(3);
    const rd = s.persist();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1, 2, 3]);
  });

  it('fast backup, follower log too short: one rejection, then the leader resumes right after its last entry', () => {
    const c = divergedCluster([1, 1, 1, 1], [1], 1);
    const { toN2, fromN2 } = electAndRecord(c);
    expect(fromN2.filter((r) => !r.success)).toEqual([
      expect.objectContaining({ conflictTerm: 0, lastLogIndex: 1 }),
    ]);
    expect(toN2.map((m) => m.prevLogIndex)).toEqual([4, 1]);
    expect(termsOf(c, 'n2')).toEqual(termsOf(c, 'n1'));
  });

  it('fast backup, follower has a term the leader lacks: one rejection, then the leader resumes at that term first index', () => {
    const c = divergedCluster([1, 1, 1, 1], [1, 1, 3, 3, 3], 3);
    const { toN2, fromN2 } = electAndRecord(c);
    expect(fromN2.filter((r) => !r.success)).toEqual([
      expect.objectContaining({ conflictTerm: 3, conflictIndex: 3, lastLogIndex: 5 }),
    ]);
    expect(toN2.map((m) => m.prevLogIndex)).toEqual([4, 2]);
    expect(termsOf(c, 'n2')).toEqual(termsOf(c, 'n1'));
  });

  it('fast backup, both hold the conflicting term: one rejection, then the leader resumes after its last entry of that term', () => {
    const c = divergedCluster([1, 2, 2, 3], [1, 2, 2, 2, 2, 2], 3);
    const { toN2, fromN2 } = electAndRecord(c);
    expect(fromN2.filter((r) => !r.success)).toEqual([
      expect.objectContaining({ conflictTerm: 2, conflictIndex: 2, lastLogIndex: 6 }),
    ]);
    expect(toN2.map((m) => m.prevLogIndex)).toEqual([4, 3]);
    expect(termsOf(c, 'n2')).toEqual(termsOf(c, 'n1'));
  });

  it('the leader appends proposals to its log and sends them at once, before its own persist', () => {
    const s = soloCore('n1', ['n1', 'n2', 'n3'], {}, { preVote: false });
    electSolo(s);
    // Make both followers replicate (probe answered).
    for (const from of ['n2', 'n3'])
      s.core.step({
        type: 'AppendResponse',
        from,
        to: 'n1',
        term: s.core.term,
        success: true,
        matchIndex: 1,
        conflictTerm: 0,
        conflictIndex: 0,
        lastLogIndex: 1,
        seq: 0,
      });
    s.persist();
    s.core.propose(new TextEncoder().encode('p'));
    const rd = s.core.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([2]);
    expect(appendsTo(rd.messages, 'n2').map((m) => m.entries.map((e) => e.index))).toEqual([[2]]);
    expect(appendsTo(rd.messages, 'n3').map((m) => m.entries.map((e) => e.index))).toEqual([[2]]);
  });
});
