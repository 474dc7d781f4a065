import { InteractionCluster } from '../testing/interaction';

describe('replication', () => {
  it('a single-node cluster elects itself after its election timeout and commits on its own persist', () => {
    const c = new InteractionCluster(['n1']);
    for (let i = 0; i < 19 && c.core('n1').status().role !== 'leader'; i++) c.tickAll(1);
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
});
