import { AppendRequest } from './messages';
import { ackFrom, electSolo, soloCore } from '../testing/interaction';

const ack = ackFrom;

describe('commit rule', () => {
  it('a leader does not commit an entry of a previous term by counting replicas', () => {
    // n1 holds [1, 2]; it becomes leader at term 3 with its no-op at index 3.
    const s = soloCore('n1', ['n1', 'n2', 'n3'], { terms: [1, 2], term: 2 }, { preVote: false });
    electSolo(s);
    expect(s.core.term).toBe(3);
    s.core.step(ack('n2', 3, 2));
    expect(s.core.status().commit).toBe(0);
  });

  it('a previous-term entry commits together with the current term no-op', () => {
    const s = soloCore('n1', ['n1', 'n2', 'n3'], { terms: [1, 2], term: 2 }, { preVote: false });
    electSolo(s);
    s.core.step(ack('n2', 3, 3));
    expect(s.core.status().commit).toBe(3);
    expect(s.persist().committedEntries.map((e) => [e.index, e.term])).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
  });

  it('unsafe.commitPreviousTermByCount commits a previous-term entry by counting (simulator self-test only)', () => {
    const s = soloCore(
      'n1',
      ['n1', 'n2', 'n3'],
      { terms: [1, 2], term: 2 },
      { preVote: false, unsafe: { commitPreviousTermByCount: true } },
    );
    electSolo(s);
    s.core.step(ack('n2', 3, 2));
    expect(s.core.status().commit).toBe(2);
  });

  it('the leader counts itself only once its own entries are persisted', () => {
    const s = soloCore('n1', ['n1', 'n2', 'n3'], { terms: [1], term: 1 }, { preVote: false });
    s.core.campaign();
    s.persist();
    s.core.step({ type: 'VoteResponse', from: 'n2', to: 'n1', term: 2, preVote: false, granted: true });
    // The no-op (index 2) is handed out but not persisted yet; n2 acknowledges it.
    const rd = s.core.ready();
    s.core.step(ack('n2', 2, 2));
    expect(s.core.status().commit).toBe(0);
    s.storage.applyReady(rd);
    s.core.advance(rd);
    expect(s.core.status().commit).toBe(2);
  });

  it('the leader tells followers the new commit index', () => {
    const s = soloCore('n1', ['n1', 'n2', 'n3'], { terms: [1], term: 1 }, { preVote: false });
    electSolo(s);
    s.core.step(ack('n2', 2, 2));
    const commits = s
      .persist()
      .messages.filter((m): m is AppendRequest => m.type === 'AppendRequest')
      .map((m) => [m.to, m.leaderCommit]);
    expect(commits).toEqual(expect.arrayContaining([['n2', 2]]));
  });

  it('on restart the commit index is clamped to the last log index', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1, 1], term: 1, commit: 9 });
    expect(s.core.status().commit).toBe(2);
  });
});
