import { RaftError } from './ready';
import { VoteRequest } from './messages';
import { hasQuorum, quorumValue } from './quorum';
import { ConfigState, EntryType, decodeConfig, encodeConfig } from './types';
import { InteractionCluster, configOf, soloCore } from '../testing/interaction';

const address = (id: string) => ({ raftAddress: `${id}:7000`, httpUrl: `http://${id}` });

/** The configurations a node's durable log holds, in order. */
function configEntries(c: InteractionCluster, id: string): ConfigState[] {
  const st = c.node(id).storage;
  return st
    .entries(st.firstIndex(), st.lastIndex() + 1, Number.MAX_SAFE_INTEGER)
    .filter((e) => e.type === EntryType.Config)
    .map((e) => decodeConfig(e.data));
}

function settle(c: InteractionCluster, ticks = 5): void {
  c.stabilize();
  c.tickAll(ticks);
}

describe('membership', () => {
  it('joint consensus: a decision needs a majority of the incoming and of the outgoing voters', () => {
    const joint: ConfigState = {
      voters: ['a', 'b', 'd'],
      outgoing: ['a', 'b', 'c'],
      learners: ['l'],
      addresses: {},
    };
    const match: Record<string, number> = { a: 9, b: 5, c: 7, d: 3, l: 100 };
    // incoming majority holds ≥ 5 (a, b); outgoing majority holds ≥ 7 (a, c): the joint decision is 5.
    expect(quorumValue(joint, (id) => match[id] ?? 0)).toBe(5);
    expect(hasQuorum(joint, (id) => ['a', 'd'].includes(id))).toBe(false); // outgoing has only a
    expect(hasQuorum(joint, (id) => ['a', 'b'].includes(id))).toBe(true);
    expect(hasQuorum(joint, (id) => ['a', 'c', 'l'].includes(id))).toBe(false); // learners never count
  });

  it('a learner receives the log but is not counted for commit', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3'], {}, { learners: ['n4'] });
    c.elect('n1');
    c.cut('n1', 'n2');
    c.cut('n1', 'n3');
    const { index } = c.propose('n1', 'x');
    c.stabilize();
    expect(c.node('n4').storage.lastIndex()).toBe(index);
    expect(c.core('n1').status().commit).toBeLessThan(index);
    c.heal();
    // The appends to n2 and n3 were lost: resent once a heartbeat sent an election timeout later is answered.
    settle(c, 12);
    expect(c.core('n1').status().commit).toBeGreaterThanOrEqual(index);
    expect(c.core('n4').status().role).toBe('learner');
  });

  it('adding a learner is one direct configuration entry', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3']);
    c.addNode('n4');
    c.elect('n1');
    c.core('n1').changeMembership({ type: 'addLearner', id: 'n4', address: address('n4') });
    settle(c);
    const configs = configEntries(c, 'n1');
    expect(configs.map((k) => [k.voters, k.outgoing, k.learners])).toEqual([
      [['n1', 'n2', 'n3'], [], ['n4']],
    ]);
    expect(configs[0].addresses.n4).toEqual(address('n4'));
    expect(c.core('n4').status().role).toBe('learner');
    expect(c.node('n4').storage.lastIndex()).toBe(c.node('n1').storage.lastIndex());
  });

  it('promoting a learner enters joint consensus; once the joint entry commits the leader appends C_new', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3'], {}, { learners: ['n4'] });
    c.elect('n1');
    c.core('n1').changeMembership({ type: 'promote', id: 'n4' });
    settle(c);
    expect(configEntries(c, 'n1').map((k) => [k.voters, k.outgoing, k.learners])).toEqual([
      [['n1', 'n2', 'n3', 'n4'], ['n1', 'n2', 'n3'], []],
      [['n1', 'n2', 'n3', 'n4'], [], []],
    ]);
    for (const id of ['n1', 'n2', 'n3', 'n4'])
      expect(c.core(id).config()).toMatchObject({ voters: ['n1', 'n2', 'n3', 'n4'], outgoing: [] });
    expect(c.core('n4').status().role).toBe('follower');
  });

  it('only one membership change is in progress at a time', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3'], {}, { learners: ['n4', 'n5'] });
    c.elect('n1');
    c.core('n1').changeMembership({ type: 'promote', id: 'n4' });
    expect(() => c.core('n1').changeMembership({ type: 'promote', id: 'n5' })).toThrow(
      expect.objectContaining({ code: 'config_change_in_progress' }) as unknown as RaftError,
    );
    settle(c);
    expect(() => c.core('n1').changeMembership({ type: 'promote', id: 'n5' })).not.toThrow();
  });

  it('impossible changes are refused with invalid_request', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3']);
    c.elect('n1');
    expect(() => c.core('n1').changeMembership({ type: 'promote', id: 'n9' })).toThrow(
      expect.objectContaining({ code: 'invalid_request' }) as unknown as RaftError,
    );
    expect(() =>
      c.core('n1').changeMembership({ type: 'addLearner', id: 'n2', address: address('n2') }),
    ).toThrow(expect.objectContaining({ code: 'invalid_request' }) as unknown as RaftError);
  });

  it('a leader not in C_new steps down once C_new commits, and the remaining voters elect a leader', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3']);
    c.elect('n1');
    c.core('n1').changeMembership({ type: 'remove', id: 'n1' });
    c.stabilize();
    expect(c.core('n1').state).toBe('follower');
    expect(c.core('n1').config()).toMatchObject({ voters: ['n2', 'n3'], outgoing: [] });
    for (let i = 0; i < 100 && !['n2', 'n3'].some((id) => c.core(id).state === 'leader'); i++) c.tickAll(1);
    const leader = ['n2', 'n3'].find((id) => c.core(id).state === 'leader') as string;
    expect(leader).toBeDefined();
    c.propose(leader, 'after');
    settle(c);
    expect(c.appliedTexts(leader === 'n2' ? 'n3' : 'n2')).toEqual(['after']);
    expect(c.core('n1').state).toBe('follower');
  });

  it('a removed voter no longer counts: the two remaining voters commit alone', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3']);
    c.elect('n1');
    c.core('n1').changeMembership({ type: 'remove', id: 'n3' });
    settle(c);
    c.isolate('n3');
    const { index } = c.propose('n1', 'x');
    c.stabilize();
    expect(c.core('n1').status().commit).toBeGreaterThanOrEqual(index);
  });

  it('a server uses the latest configuration in its log, and reverts when a conflicting append truncates it', () => {
    const s = soloCore('n2', ['n1', 'n2', 'n3'], { terms: [1], term: 2 });
    const joint = { ...configOf(['n1', 'n2', 'n3', 'n4']), outgoing: ['n1', 'n2', 'n3'] };
    s.core.step({
      type: 'AppendRequest',
      from: 'n1',
      to: 'n2',
      term: 2,
      prevLogIndex: 1,
      prevLogTerm: 1,
      entries: [{ index: 2, term: 2, type: EntryType.Config, data: encodeConfig(joint) }],
      leaderCommit: 1,
      seq: 1,
    });
    expect(s.core.config()).toEqual(joint);
    s.persist();
    s.core.step({
      type: 'AppendRequest',
      from: 'n3',
      to: 'n2',
      term: 3,
      prevLogIndex: 1,
      prevLogTerm: 1,
      entries: [{ index: 2, term: 3, type: EntryType.Noop, data: new Uint8Array(0) }],
      leaderCommit: 1,
      seq: 1,
    });
    expect(s.core.config()).toEqual(configOf(['n1', 'n2', 'n3']));
  });

  it('a removed server cannot disrupt: vote requests within an election timeout of hearing from the leader are ignored, terms unchanged', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3']);
    c.elect('n1');
    c.tickAll(2);
    const term = c.core('n1').term;
    const request = (to: string, extra: Partial<VoteRequest> = {}): VoteRequest => ({
      type: 'VoteRequest',
      from: 'n9',
      to,
      term: term + 5,
      preVote: false,
      lastLogIndex: 1000,
      lastLogTerm: term,
      transfer: false,
      ...extra,
    });
    for (const to of ['n1', 'n2']) {
      c.core(to).step(request(to));
      c.core(to).step(request(to, { preVote: true }));
    }
    expect([c.core('n1').term, c.core('n2').term]).toEqual([term, term]);
    expect(c.core('n1').state).toBe('leader');
    expect(c.network).toEqual([]);
    c.stabilize();
    expect(c.network.filter((m) => m.to === 'n9')).toEqual([]);
    // A transfer (TimeoutNow) campaign is the one exception.
    c.core('n2').step(request('n2', { transfer: true }));
    expect(c.core('n2').term).toBe(term + 5);
  });
});
