import { Entry, EntryType } from '../core/types';
import { ClusterChecker, Violation } from './checkers';
import { CounterStateMachine, encodeWrite, entryKey } from './counter-state-machine';
import { SimNetwork } from './network';
import { Prng } from './prng';
import { Scheduler } from './scheduler';
import { ShadowLog } from './shadow-log';
import { TraceRing } from './trace';

const enc = new TextEncoder();
function entry(index: number, term: number, text = `w:${index * 100 + term}`): Entry {
  return { index, term, type: EntryType.Normal, data: enc.encode(text) };
}

function violationOf(fn: () => void): Violation {
  try {
    fn();
  } catch (err) {
    if (err instanceof Violation) return err;
    throw err;
  }
  throw new Error('expected a violation, none was raised');
}

describe('Prng', () => {
  it('gives the same stream for the same seed and a different one for another seed', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const c = new Prng(43);
    const sa = Array.from({ length: 20 }, () => a.next());
    expect(Array.from({ length: 20 }, () => b.next())).toEqual(sa);
    expect(Array.from({ length: 20 }, () => c.next())).not.toEqual(sa);
    for (const x of sa) expect(x >= 0 && x < 1).toBe(true);
  });

  it('derives independent, reproducible child streams', () => {
    const x = new Prng(7).derive('n1');
    const y = new Prng(7).derive('n1');
    const z = new Prng(7).derive('n2');
    expect(x.next()).toBe(y.next());
    expect(new Prng(7).derive('n1').next()).not.toBe(z.next());
  });

  it('int stays within its inclusive bounds and hits both ends', () => {
    const p = new Prng(1);
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) seen.add(p.int(2, 5));
    expect([...seen].sort()).toEqual([2, 3, 4, 5]);
    expect(() => p.int(3, 2)).toThrow(/empty range/);
  });
});

describe('Scheduler', () => {
  it('pops events by time, ties in insertion order, and advances virtual time', () => {
    const s = new Scheduler<string>();
    s.at(5, 'c');
    s.at(1, 'a');
    s.at(5, 'd');
    s.at(3, 'b');
    const order: string[] = [];
    for (let e = s.pop(); e; e = s.pop()) order.push(`${e.event}@${s.now()}`);
    expect(order).toEqual(['a@1', 'b@3', 'c@5', 'd@5']);
    expect(() => s.at(2, 'late')).toThrow(/before now/);
  });

  it('keeps heap order over many random inserts', () => {
    const s = new Scheduler<number>();
    const p = new Prng(9);
    for (let i = 0; i < 500; i++) s.at(p.range(0, 100), i);
    let last = -1;
    for (let e = s.pop(); e; e = s.pop()) {
      expect(e.time).toBeGreaterThanOrEqual(last);
      last = e.time;
    }
  });
});

describe('SimNetwork', () => {
  const faults = {
    dropRate: 0,
    duplicateRate: 0,
    delayMsMin: 1,
    delayMsMax: 2,
    longDelayRate: 0,
    longDelayMsMax: 0,
  };

  it('blocks both directions across a symmetric partition and heals', () => {
    const n = new SimNetwork(new Prng(1), faults);
    n.partition([['a', 'b'], ['c']]);
    expect(n.route('a', 'c')).toEqual([]);
    expect(n.route('c', 'b')).toEqual([]);
    expect(n.route('a', 'b')).toHaveLength(1);
    n.heal();
    expect(n.route('a', 'c')).toHaveLength(1);
  });

  it('blocks one way only', () => {
    const n = new SimNetwork(new Prng(1), faults);
    n.blockOneWay('a', 'b');
    expect(n.canReach('a', 'b')).toBe(false);
    expect(n.canReach('b', 'a')).toBe(true);
  });

  it('drops and duplicates at about the configured rates', () => {
    const n = new SimNetwork(new Prng(3), { ...faults, dropRate: 0.2, duplicateRate: 0.1 });
    let copies = 0;
    for (let i = 0; i < 10_000; i++) copies += n.route('a', 'b').length;
    expect(n.stats.dropped).toBeGreaterThan(1500);
    expect(n.stats.dropped).toBeLessThan(2500);
    expect(n.stats.duplicated).toBeGreaterThan(500);
    expect(copies).toBe(10_000 - n.stats.dropped + n.stats.duplicated);
  });

  it('rejects impossible settings', () => {
    expect(() => new SimNetwork(new Prng(1), { ...faults, dropRate: 2 })).toThrow(/rates/);
  });
});

describe('ShadowLog', () => {
  it('appends, truncates on conflict and rejects gaps', () => {
    const l = new ShadowLog();
    l.append([entry(1, 1), entry(2, 1), entry(3, 1)]);
    l.append([entry(2, 2)]);
    expect(l.lastIndex()).toBe(2);
    expect(l.term(2)).toBe(2);
    expect(() => l.append([entry(5, 2)])).toThrow(/gap/);
  });

  it('compacts and resets to a snapshot', () => {
    const l = new ShadowLog();
    l.append([entry(1, 1), entry(2, 1), entry(3, 2)]);
    l.compactTo(2);
    expect(l.term(2)).toBe(1);
    expect(l.term(1)).toBeUndefined();
    expect(l.term(3)).toBe(2);
    l.resetToSnapshot(10, 3);
    expect(l.lastIndex()).toBe(10);
    expect(l.term(10)).toBe(3);
  });
});

describe('ClusterChecker', () => {
  it('flags two leaders in one term (Election Safety)', () => {
    const c = new ClusterChecker();
    c.observeLeader(3, 'n1');
    c.observeLeader(3, 'n1');
    c.observeLeader(4, 'n2');
    expect(violationOf(() => c.observeLeader(3, 'n2')).invariant).toBe('ElectionSafety');
  });

  it('flags the same (index, term) with different content or history (Log Matching)', () => {
    const c = new ClusterChecker();
    c.observeEntries('n1', [entry(5, 2, 'w:1')], () => 1);
    expect(violationOf(() => c.observeEntries('n2', [entry(5, 2, 'w:2')], () => 1)).invariant).toBe(
      'LogMatching',
    );
    expect(violationOf(() => c.observeEntries('n3', [entry(5, 2, 'w:1')], () => 2)).invariant).toBe(
      'LogMatching',
    );
  });

  it('flags a different entry committed at an index (State Machine Safety)', () => {
    const c = new ClusterChecker();
    c.observeCommitted('n1', entry(1, 1, 'w:1'), 1);
    c.observeCommitted('n2', entry(1, 1, 'w:1'), 1);
    expect(violationOf(() => c.observeCommitted('n3', entry(1, 2, 'w:9'), 2)).invariant).toBe(
      'StateMachineSafety',
    );
    c.observeDigest('n1', 1, 123, 'x');
    expect(violationOf(() => c.observeDigest('n2', 1, 124, 'y')).invariant).toBe('StateMachineSafety');
  });

  it('flags a leader missing a committed entry (Leader Completeness)', () => {
    const c = new ClusterChecker();
    c.observeCommitted('n1', entry(1, 1), 1);
    c.observeCommitted('n1', entry(2, 1), 1);
    c.checkLeaderCompleteness('n2', 2, 0, 2, () => 1);
    expect(violationOf(() => c.checkLeaderCompleteness('n3', 2, 0, 1, () => 1)).invariant).toBe(
      'LeaderCompleteness',
    );
    expect(
      violationOf(() => c.checkLeaderCompleteness('n3', 2, 0, 2, (i) => (i === 2 ? 2 : 1))).invariant,
    ).toBe('LeaderCompleteness');
  });

  it('does not require a leader of a lower term to hold entries committed in a later term (late votes)', () => {
    // Sim seed 1051077: n3's term-6 votes arrived after the leader of term 7 had committed index 31.
    const c = new ClusterChecker();
    c.observeCommitted('n1', entry(1, 5), 5);
    c.observeCommitted('n1', entry(2, 7), 7);
    c.checkLeaderCompleteness('n3', 6, 0, 1, () => 5);
    expect(violationOf(() => c.checkLeaderCompleteness('n3', 8, 0, 1, () => 5)).invariant).toBe(
      'LeaderCompleteness',
    );
    // An entry of an earlier term committed only in term 7 is not required of a leader of term 6 either.
    c.observeCommitted('n1', entry(3, 5), 7);
    c.checkLeaderCompleteness('n4', 6, 0, 1, () => 5);
  });
});

describe('CounterStateMachine', () => {
  it('round-trips through snapshot bytes with the same digest', () => {
    const sm = new CounterStateMachine({ voters: ['n1'], outgoing: [], learners: [], addresses: {} });
    for (let i = 1; i <= 5; i++) {
      const e: Entry = { index: i, term: 1, type: EntryType.Normal, data: encodeWrite(i) };
      sm.apply(e, entryKey(e));
    }
    const copy = CounterStateMachine.restore({ index: 5, term: 1, config: sm.config }, sm.serialize());
    expect(copy.digest).toBe(sm.digest);
    expect(copy.count).toBe(5);
    expect(() =>
      CounterStateMachine.restore({ index: 6, term: 1, config: sm.config }, sm.serialize()),
    ).toThrow(/meta says/);
    expect(() =>
      sm.apply({ index: 9, term: 1, type: EntryType.Noop, data: new Uint8Array() }, '1:noop'),
    ).toThrow(/contiguous/);
  });
});

describe('TraceRing', () => {
  it('keeps the last N records, oldest first', () => {
    const t = new TraceRing(3);
    for (let i = 0; i < 5; i++) t.note(i, `e${i}`);
    const lines = t.lines();
    expect(lines[0]).toMatch(/2 earlier events/);
    expect(lines.slice(1).map((l) => l.trim().split(/\s+/)[1])).toEqual(['e2', 'e3', 'e4']);
  });
});
