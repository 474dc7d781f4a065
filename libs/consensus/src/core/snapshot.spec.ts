import { Message, SnapshotRequest, SnapshotResponse } from './messages';
import { RaftCore } from './raft';
import { DEFAULT_RAFT_OPTIONS } from './options';
import { SnapshotMeta } from './types';
import { MemoryStorage } from '../testing/memory-storage';
import { InteractionCluster, configOf, entriesWithTerms, soloCore } from '../testing/interaction';

const bytesOf = (text: string) => new TextEncoder().encode(text);
const config = configOf(['n1', 'n2', 'n3']);
const meta: SnapshotMeta = { index: 10, term: 2, config };
const chunk = (offset: number, text: string, done: boolean, seq = 1): SnapshotRequest => ({
  type: 'SnapshotRequest',
  from: 'n1',
  to: 'n2',
  term: 2,
  meta,
  offset,
  data: bytesOf(text),
  done,
  seq,
});
const snapshotAnswers = (msgs: Message[]) =>
  msgs.filter((m): m is SnapshotResponse => m.type === 'SnapshotResponse');

/** n1 leads; n3 was cut off while n1 committed entries and compacted its log past them. */
function laggingFollower(snapshotChunkBytes: number) {
  const c = new InteractionCluster(['n1', 'n2', 'n3'], { snapshotChunkBytes });
  c.elect('n1');
  c.isolate('n3');
  for (const t of ['a', 'b', 'c', 'd']) c.propose('n1', t);
  c.stabilize();
  const n1 = c.node('n1');
  const applied = n1.applied[n1.applied.length - 1].index;
  const snap = n1.storage.compact(applied, bytesOf('0123456789'), n1.core.configs.at(applied));
  n1.core.snapshotTaken(snap);
  c.heal();
  return { c, snap };
}

describe('snapshots', () => {
  it('the leader sends a snapshot to a follower that needs a compacted entry; the follower installs it and catches up', () => {
    const { c, snap } = laggingFollower(1024);
    c.propose('n1', 'e');
    c.stabilize();
    c.tickAll(3);
    const n3 = c.node('n3').storage;
    expect(n3.snapshotMeta()).toEqual(snap);
    expect(new TextDecoder().decode(n3.snapshotData())).toBe('0123456789');
    expect(c.core('n3').status().commit).toBe(c.core('n1').status().commit);
    expect(c.appliedTexts('n3')).toEqual(['e']);
  });

  it('chunks go one at a time, each after the previous one is acknowledged, and the last one installs', () => {
    const { c, snap } = laggingFollower(4);
    const offsets: number[] = [];
    for (let round = 0; round < 200 && c.node('n3').storage.snapshotMeta().index !== snap.index; round++) {
      for (const id of ['n1', 'n2', 'n3']) c.processReady(id);
      const inFlight = c.network.filter((m): m is SnapshotRequest => m.type === 'SnapshotRequest');
      expect(inFlight.length).toBeLessThanOrEqual(1);
      offsets.push(...inFlight.map((m) => m.offset));
      c.deliver();
      if (round % 5 === 0) for (const id of ['n1', 'n2', 'n3']) c.core(id).tick();
    }
    expect(offsets).toEqual([0, 4, 8]);
    expect(c.node('n3').storage.snapshotMeta()).toEqual(snap);
  });

  it('the follower persists each chunk before acknowledging it, and installs with the last one', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 2 });
    s.core.step(chunk(0, 'abcd', false));
    const rd1 = s.persist();
    expect(rd1.snapshotChunk).toMatchObject({ offset: 0, done: false });
    expect(rd1.snapshot).toBeUndefined();
    expect(snapshotAnswers(rd1.messages)).toEqual([]);
    expect(snapshotAnswers(rd1.persistedMessages)).toEqual([
      expect.objectContaining({ index: 10, nextOffset: 4, installed: false }),
    ]);
    s.core.step(chunk(4, 'ef', true));
    const rd2 = s.persist();
    expect(rd2.snapshotChunk).toMatchObject({ offset: 4, done: true });
    expect(rd2.snapshot).toEqual(meta);
    expect(snapshotAnswers(rd2.persistedMessages)).toEqual([
      expect.objectContaining({ nextOffset: 6, installed: true }),
    ]);
    expect(s.storage.snapshotMeta()).toEqual(meta);
    expect(new TextDecoder().decode(s.storage.snapshotData())).toBe('abcdef');
    expect(s.core.status()).toMatchObject({ commit: 10, applied: 10, lastIndex: 10 });
  });

  it('a duplicate or out-of-order chunk is answered with the follower current offset', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 2 });
    s.core.step(chunk(0, 'abcd', false));
    s.persist();
    s.core.step(chunk(0, 'abcd', false));
    s.core.step(chunk(8, 'ij', true));
    const rd = s.persist();
    expect(rd.snapshotChunk).toBeUndefined();
    expect(snapshotAnswers(rd.persistedMessages).map((m) => [m.nextOffset, m.installed])).toEqual([
      [4, false],
      [4, false],
    ]);
  });

  it('after a restart the follower resumes a transfer from its durable bytes', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 2 });
    s.core.step(chunk(0, 'abcd', false));
    s.persist();
    const storage = s.storage.clone();
    const initial = storage.initialState(config);
    expect(initial.partialSnapshot).toEqual({ index: 10, term: 2, bytes: 4 });
    const restarted = new RaftCore({ ...DEFAULT_RAFT_OPTIONS, id: 'n2', random: () => 0 }, storage, initial);
    restarted.step(chunk(0, 'abcd', false));
    expect(snapshotAnswers(restarted.ready().persistedMessages)).toEqual([
      expect.objectContaining({ nextOffset: 4, installed: false }),
    ]);
  });

  it('the leader resumes from the offset the follower reports', () => {
    const { c } = laggingFollower(4);
    let first: SnapshotRequest | undefined;
    for (let round = 0; round < 50 && !first; round++) {
      c.core('n1').tick();
      for (const id of ['n1', 'n2', 'n3']) c.processReady(id);
      first = c.network.find((m): m is SnapshotRequest => m.type === 'SnapshotRequest' && m.to === 'n3');
      if (!first) c.deliver();
    }
    if (!first) throw new Error('no snapshot chunk was sent to n3');
    expect(first.offset).toBe(0);
    // n3 answers the first chunk as if it already held 8 bytes (from a transfer before its restart).
    c.network = [];
    c.core('n1').step({
      type: 'SnapshotResponse',
      from: 'n3',
      to: 'n1',
      term: first.term,
      index: first.meta.index,
      nextOffset: 8,
      installed: false,
      seq: first.seq,
    });
    c.processReady('n1');
    expect(
      c.network.filter((m): m is SnapshotRequest => m.type === 'SnapshotRequest').map((m) => m.offset),
    ).toEqual([8]);
  });

  it('a snapshot at or below the follower commit index is not installed', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], {
      terms: [1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2],
      term: 2,
      commit: 11,
    });
    s.core.step(chunk(0, 'abcd', true));
    const rd = s.persist();
    expect(rd.snapshotChunk).toBeUndefined();
    expect(rd.snapshot).toBeUndefined();
    expect(snapshotAnswers(rd.persistedMessages)).toEqual([expect.objectContaining({ installed: true })]);
    expect(s.storage.lastIndex()).toBe(12);
  });

  it('a snapshot chunk that is not ready yet (pending) is retried on a later heartbeat', () => {
    const storage = new MemoryStorage({
      snapshot: { index: 5, term: 1, config },
      snapshotData: bytesOf('xyz'),
      entries: entriesWithTerms([1], 6),
      hardState: { term: 1, vote: null, commit: 6 },
    });
    let pendingAnswers = 2;
    const reader = Object.create(storage) as MemoryStorage;
    reader.snapshotChunk = (offset: number, max: number) =>
      pendingAnswers-- > 0
        ? ('pending' as unknown as ReturnType<MemoryStorage['snapshotChunk']>)
        : storage.snapshotChunk(offset, max);
    const leader = new RaftCore(
      { ...DEFAULT_RAFT_OPTIONS, id: 'n1', random: () => 0, preVote: false, heartbeatTicks: 1 },
      reader,
      storage.initialState(config),
    );
    leader.ticksSinceHeardLeader = Number.MAX_SAFE_INTEGER;
    leader.campaign();
    const advance = () => {
      const rd = leader.ready();
      storage.applyReady(rd);
      leader.advance(rd);
      return rd;
    };
    advance();
    leader.step({ type: 'VoteResponse', from: 'n2', to: 'n1', term: 2, preVote: false, granted: true });
    advance();
    leader.step({
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
    const sent = () =>
      advance().messages.filter((m): m is SnapshotRequest => m.type === 'SnapshotRequest' && m.to === 'n2');
    expect(sent()).toEqual([]);
    leader.tick();
    expect(sent()).toEqual([]);
    leader.tick();
    expect(sent().map((m) => [m.offset, m.done])).toEqual([[0, true]]);
  });
});
