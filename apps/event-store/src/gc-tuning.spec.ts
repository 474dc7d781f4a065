import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { IDLE_GROWTH_BYTES, shouldCollectIdle } from './gc-tuning';

const mib = 1024 * 1024;

describe('collection when idle', () => {
  it('collects only when the process is idle and the heap grew since the last idle collection', () => {
    expect(shouldCollectIdle(0.01, 100 * mib, 40 * mib)).toBe(true);
    expect(shouldCollectIdle(0.3, 100 * mib, 40 * mib)).toBe(false); // busy: V8 collects as it allocates
    expect(shouldCollectIdle(0.01, 40 * mib + IDLE_GROWTH_BYTES - 1, 40 * mib)).toBe(false);
    expect(shouldCollectIdle(0.01, 40 * mib + IDLE_GROWTH_BYTES, 40 * mib)).toBe(true);
  });

  it('a process that made garbage and went idle gets it collected (with --expose-gc)', () => {
    // A child with the real timer: allocate ~60 MiB that becomes garbage, go idle, report heap used.
    const script = `
      require(${JSON.stringify(path.join(__dirname, '../../../tools/swc-register.js'))});
      const { collectWhenIdle } = require(${JSON.stringify(path.join(__dirname, 'gc-tuning.ts'))});
      const v8 = require('node:v8');
      let collected = 0;
      const stop = collectWhenIdle(() => collected++);
      let keep = [];
      for (let i = 0; i < 600; i++) keep.push(new Array(12_000).fill(i));
      keep = null;
      const before = v8.getHeapStatistics().used_heap_size;
      setTimeout(() => {
        stop();
        const after = v8.getHeapStatistics().used_heap_size;
        process.stdout.write(JSON.stringify({ before, after, collected }));
      }, 2500);`;
    const out = JSON.parse(
      execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' }),
    ) as {
      before: number;
      after: number;
      collected: number;
    };
    expect(out.before).toBeGreaterThan(40 * mib);
    expect(out.collected).toBe(1);
    expect(out.after).toBeLessThan(out.before - 30 * mib);
  }, 30_000);
});
