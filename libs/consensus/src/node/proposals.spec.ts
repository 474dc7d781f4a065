import { emptyConfig } from '../core/types';
import { AppliedConfigs } from './applied-configs';
import type { ProposalStages } from './metrics';
import { PendingProposals } from './proposals';

describe('PendingProposals', () => {
  it('resolves a proposal only when the entry applied at its index has its term', async () => {
    const p = new PendingProposals('n1');
    const same = p.add(5, 2, Number.MAX_SAFE_INTEGER);
    const replaced = p.add(6, 2, Number.MAX_SAFE_INTEGER);
    p.settle(5, 2, 'ok');
    p.settle(6, 3, 'someone else’s result');
    await expect(same).resolves.toEqual({ index: 5, result: 'ok' });
    await expect(replaced).rejects.toMatchObject({ code: 'unavailable' });
    expect(p.size).toBe(0);
  });

  it('a new proposal at a reused index rejects the old one as not committed', async () => {
    const p = new PendingProposals('n1');
    const old = p.add(7, 1, Number.MAX_SAFE_INTEGER);
    const fresh = p.add(7, 4, Number.MAX_SAFE_INTEGER);
    await expect(old).rejects.toMatchObject({ code: 'unavailable' });
    p.settle(7, 4, 1);
    await expect(fresh).resolves.toEqual({ index: 7, result: 1 });
  });

  it('expires in deadline order with timeout, and a snapshot abandons the proposals it covers', async () => {
    const p = new PendingProposals('n1');
    const a = p.add(1, 1, 100);
    const b = p.add(2, 1, 200);
    const c = p.add(3, 1, 300);
    p.expire(150);
    await expect(a).rejects.toMatchObject({ code: 'timeout' });
    p.abandonUpTo(2);
    await expect(b).rejects.toMatchObject({ code: 'timeout' });
    expect(p.size).toBe(1);
    p.rejectAll(new Error('stopped'));
    await expect(c).rejects.toThrow('stopped');
  });
});

describe('AppliedConfigs', () => {
  it('answers the configuration as of an index and forgets what no later snapshot needs', () => {
    const c0 = emptyConfig();
    const c1 = { ...emptyConfig(), voters: ['a'] };
    const c2 = { ...emptyConfig(), voters: ['a', 'b'] };
    const configs = new AppliedConfigs(0, c0);
    configs.record(10, c1);
    configs.record(20, c2);
    expect(configs.at(9)).toBe(c0);
    expect(configs.at(10)).toBe(c1);
    expect(configs.at(25)).toBe(c2);
    configs.pruneBefore(15);
    expect(configs.at(15)).toBe(c1);
    expect(() => configs.at(5)).toThrow(/before the oldest/);
    expect(() => configs.record(20, c0)).toThrow(/recorded after/);
  });

  it('reports the time each applied proposal spent being persisted, acknowledged by a quorum and applied', async () => {
    const seen: ProposalStages[] = [];
    const p = new PendingProposals('n1', (s) => seen.push(s));
    const a = p.add(1, 1, Number.MAX_SAFE_INTEGER, 100);
    const b = p.add(2, 1, Number.MAX_SAFE_INTEGER, 104);
    p.markPersisted(1, 110); // one fsync covered entry 1 only
    p.markPersisted(2, 113);
    p.markCommitted(2, 120); // one acknowledgement committed both
    p.settle(1, 1, 'a', 121);
    p.settle(2, 1, 'b', 125);
    await Promise.all([a, b]);
    expect(seen).toEqual([
      { persistMs: 10, quorumMs: 10, applyMs: 1 },
      { persistMs: 9, quorumMs: 7, applyMs: 5 },
    ]);
    // A proposal replaced by another leader's entry is not a measurement.
    const lost = p.add(3, 1, Number.MAX_SAFE_INTEGER, 130);
    p.settle(3, 2, 'other', 140);
    await expect(lost).rejects.toMatchObject({ code: 'unavailable' });
    expect(seen).toHaveLength(2);
  });
});
