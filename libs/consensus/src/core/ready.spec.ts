import { DEFAULT_RAFT_OPTIONS } from './options';
import { RaftCore } from './raft';
import { appendFromLeader, configOf, electSolo, entriesWithTerms, soloCore } from '../testing/interaction';
import { MemoryStorage } from '../testing/memory-storage';

const append = appendFromLeader;

describe('Ready contract', () => {
  it('a Ready taken before the previous one is advanced holds only entries not handed out yet', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 1 });
    s.core.step(append(1, 1, [1, 1], 1));
    const rd1 = s.core.ready();
    s.core.step(append(3, 1, [1], 1));
    const rd2 = s.core.ready();
    expect(rd1.entries.map((e) => e.index)).toEqual([2, 3]);
    expect(rd2.entries.map((e) => e.index)).toEqual([4]);
    for (const rd of [rd1, rd2]) {
      s.storage.applyReady(rd);
      s.core.advance(rd);
    }
    expect(s.core.hasReady()).toBe(false);
    expect(s.core.log.stableIndex()).toBe(4);
  });

  it('entries handed out but replaced by a newer leader before advance are handed out again, and the stale advance is ignored', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 1 });
    s.core.step(append(1, 1, [1, 1], 1));
    const rd1 = s.core.ready();
    s.core.step(append(1, 1, [2], 2));
    const rd2 = s.core.ready();
    expect(rd2.entries.map((e) => [e.index, e.term])).toEqual([[2, 2]]);
    s.storage.applyReady(rd1);
    s.core.advance(rd1);
    expect(s.core.log.stableIndex()).toBe(1);
    s.storage.applyReady(rd2);
    s.core.advance(rd2);
    expect(s.core.log.stableIndex()).toBe(2);
    expect([s.storage.lastIndex(), s.storage.term(2)]).toEqual([2, 2]);
  });

  it('an acknowledgement of an older term is not sent once a newer leader may have replaced what it promised', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 1 });
    s.core.step(append(1, 1, [1, 1], 1));
    s.core.step(append(1, 1, [2], 2));
    const acks = s.persist().persistedMessages.filter((m) => m.type === 'AppendResponse');
    expect(acks).toEqual([expect.objectContaining({ term: 2, success: true, matchIndex: 2 })]);
  });

  it('hard state is in a Ready only when the term or the vote changed', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 1 });
    s.core.step(append(1, 1, [1], 1, 2));
    expect(s.persist().hardState).toBeUndefined();
    s.core.step(append(2, 1, [3], 3, 3));
    expect(s.persist().hardState).toEqual({ term: 3, vote: null, commit: 3 });
  });

  it('committed entries are handed out once, in order, and applied advances with advance()', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 1 });
    s.core.step(append(1, 1, [1, 1], 1, 2));
    const rd1 = s.core.ready();
    s.core.step(append(3, 1, [], 1, 3));
    const rd2 = s.core.ready();
    expect(rd1.committedEntries.map((e) => e.index)).toEqual([1, 2]);
    expect(rd2.committedEntries.map((e) => e.index)).toEqual([3]);
    expect(s.core.status().applied).toBe(0);
    s.storage.applyReady(rd1);
    s.core.advance(rd1);
    expect(s.core.status().applied).toBe(2);
  });

  it('status reports role, term, leader, indexes and the leader view of its peers', () => {
    const s = soloCore('n1', ['n1', 'n2', 'n3'], { terms: [1], term: 1 }, { preVote: false });
    electSolo(s);
    const st = s.core.status();
    expect(st).toMatchObject({
      id: 'n1',
      role: 'leader',
      term: 2,
      leaderId: 'n1',
      lastIndex: 2,
      commit: 0,
      snapshot: { index: 0, term: 0 },
    });
    expect(Object.keys(st.progress).sort()).toEqual(['n1', 'n2', 'n3']);
    expect(st.progress.n2).toMatchObject({ state: 'probe', match: 0 });
  });

  it('log lines share one shape: "node <id> <what happened>"', () => {
    const lines: string[] = [];
    const s = soloCore(
      'n1',
      ['n1', 'n2', 'n3'],
      { terms: [1], term: 4 },
      { preVote: false, logger: (l) => lines.push(l) },
    );
    electSolo(s);
    expect(lines).toContain('node n1 became leader at term 5');
  });

  it('committed entries are handed out in batches of at most committedEntriesPerReadyMax and committedBytesPerReadyMax', () => {
    const s = soloCore(
      'n2',
      ['n1', 'n2', 'n3'],
      { terms: [1, 1, 1, 1, 1, 1, 1], term: 1, commit: 7 },
      { committedEntriesPerReadyMax: 3 },
    );
    const batches: number[][] = [];
    for (let i = 0; i < 10 && s.core.hasReady(); i++)
      batches.push(s.persist().committedEntries.map((e) => e.index));
    expect(batches.filter((b) => b.length > 0)).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  it('a restarted core hands out committed entries from after the applied index the shell reports, not from the snapshot', () => {
    const storage = new MemoryStorage({
      entries: entriesWithTerms([1, 1, 1, 1, 1]),
      hardState: { term: 1, vote: null, commit: 2 },
    });
    const core = new RaftCore({ ...DEFAULT_RAFT_OPTIONS, id: 'n2', random: () => 0 }, storage, {
      ...storage.initialState(configOf(['n1', 'n2', 'n3'])),
      applied: 4,
    });
    expect(core.status()).toMatchObject({ commit: 4, applied: 4 });
    core.step(append(5, 1, [], 1, 5));
    expect(core.ready().committedEntries.map((e) => e.index)).toEqual([5]);
  });
});
