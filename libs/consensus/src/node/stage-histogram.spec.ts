import { Histogram, Registry } from 'prom-client';
import { stageBuckets } from './metrics';
import { StageHistogram } from './stage-histogram';

/** Every sample line as `name{sorted labels}` → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = (m[2] ?? '').split(',').filter(Boolean).sort().join(',');
    out.set(`${m[1]}{${labels}}`, Number(m[3]));
  }
  return out;
}

describe('StageHistogram', () => {
  it("prints exactly what prom-client's Histogram prints for the same observations", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const fast = new StageHistogram('t_stage_seconds', 'help text', 'stage', stageBuckets, [ours]);
    const slow = new Histogram({
      name: 't_stage_seconds',
      help: 'help text',
      labelNames: ['stage'],
      buckets: stageBuckets,
      registers: [theirs],
    });
    const a = fast.child('a');
    const b = fast.child('b');
    // Values on bucket bounds, between them, below the first and past the last.
    const values = [0, 0.00005, 0.00007, 0.001, 0.0011, 0.25, 2.5, 3, 120, ...stageBuckets];
    for (const v of values) {
      a(v);
      slow.observe({ stage: 'a' }, v);
    }
    b(0.0004);
    slow.observe({ stage: 'b' }, 0.0004);
    const mine = samples(await ours.metrics());
    expect(mine.size).toBe(2 * (stageBuckets.length + 3));
    expect(mine).toEqual(samples(await theirs.metrics()));
    expect(mine.get('t_stage_seconds_count{stage="a"}')).toBe(values.length);
    expect(mine.get('t_stage_seconds_bucket{le="+Inf",stage="b"}')).toBe(1);
  });
});
