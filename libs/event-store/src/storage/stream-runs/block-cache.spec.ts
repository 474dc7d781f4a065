import { BlockCache } from './block-cache';

describe('BlockCache admission', () => {
  it('admits a block on its second miss within the window, not on its first', () => {
    const cache = new BlockCache(64 * 1024);
    const key = BlockCache.key(cache.newRunId(), 7);
    expect(cache.admit(key)).toBe(false);
    expect(cache.admit(key)).toBe(true);
    // Admitted once: the window forgets it, so a later miss starts over.
    expect(cache.admit(key)).toBe(false);
  });

  it('forgets misses older than the window (a stream touched once in a while is never cached)', () => {
    const cache = new BlockCache(64 * 1024); // the smallest window: 1,024 keys
    const run = cache.newRunId();
    expect(cache.admit(BlockCache.key(run, 0))).toBe(false);
    for (let b = 1; b <= 1024; b++) cache.admit(BlockCache.key(run, b));
    expect(cache.admit(BlockCache.key(run, 0))).toBe(false);
    // A key still inside the window is admitted.
    expect(cache.admit(BlockCache.key(run, 1024))).toBe(true);
  });
});
