import { RaftError } from './ready';
import { InteractionCluster } from '../testing/interaction';

describe('leadership transfer', () => {
  it('the leader catches the target up, sends TimeoutNow, and the target wins at once without pre-vote', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3'], { preVote: true });
    c.elect('n1');
    c.isolate('n3');
    c.propose('n1', 'a');
    c.propose('n1', 'b');
    c.stabilize();
    c.heal();
    const term = c.core('n1').term;
    c.core('n1').transferLeadership('n3');
    c.stabilize();
    expect(c.core('n3').state).toBe('leader');
    expect(c.core('n3').term).toBe(term + 1);
    expect(c.core('n1').state).toBe('follower');
    expect(c.logLines.some((l) => l.startsWith('node n3 became pre-candidate'))).toBe(false);
    c.propose('n3', 'c');
    c.stabilize();
    c.tickAll(3);
    for (const id of ['n1', 'n2', 'n3']) expect(c.appliedTexts(id)).toEqual(['a', 'b', 'c']);
  });

  it('the leader refuses proposals while a transfer is in progress', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3']);
    c.elect('n1');
    c.isolate('n3');
    c.core('n1').transferLeadership('n3');
    expect(() => c.propose('n1', 'x')).toThrow(
      expect.objectContaining({ code: 'transfer_in_progress' }) as unknown as RaftError,
    );
  });

  it('a transfer that does not finish within an election timeout is aborted', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3'], { electionTicks: 10 });
    c.elect('n1');
    c.isolate('n3');
    c.core('n1').transferLeadership('n3');
    for (let i = 0; i < 10; i++) c.core('n1').tick();
    expect(c.core('n1').state).toBe('leader');
    expect(() => c.propose('n1', 'x')).not.toThrow();
  });

  it('without a target the most caught-up voter is chosen', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3']);
    c.elect('n1');
    c.isolate('n3');
    c.propose('n1', 'a');
    c.stabilize();
    c.heal();
    c.core('n1').transferLeadership(null);
    c.stabilize();
    expect(c.core('n2').state).toBe('leader');
  });

  it('a transfer to a non-voter is refused', () => {
    const c = new InteractionCluster(['n1', 'n2', 'n3'], {}, { learners: ['n4'] });
    c.elect('n1');
    expect(() => c.core('n1').transferLeadership('n4')).toThrow(
      expect.objectContaining({ code: 'invalid_request' }) as unknown as RaftError,
    );
  });
});
