import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Prng } from '@app/consensus/testing';
import { STORAGE_DEFAULTS } from '../limits';
import { EventFiles, OFFSETS_EVERY, sparseCount, sparseFromDense } from './event-files';

/** Reads from the files themselves (a recent cache of 2 records), with one offset kept per 16 positions. */
describe('EventFiles: sparse offsets', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  const opts = {
    ...STORAGE_DEFAULTS,
    fileBytesMax: 50_000,
    writeBufferBytesMax: 8192,
    recentCacheEvents: 2,
    recentCacheBytesMax: 1 << 20,
  };

  function fill(n: number): { files: EventFiles; dir: string; sizes: number[] } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'es-offsets-'));
    dirs.push(dir);
    const files = new EventFiles(dir, opts);
    const prng = new Prng(n);
    const sizes: number[] = [];
    for (let p = 0; p < n; p++) {
      // Mostly small records, now and then one larger than the walk's read window.
      const len = prng.chance(0.01) ? 70_000 + prng.int(0, 5000) : prng.int(0, 400);
      files.append({
        position: p,
        revision: p,
        id: Buffer.alloc(16, p & 255),
        timestamp: '2026-12-07T00:00:00.000Z',
        streamId: `s-${p % 17}`,
        type: `T${p % 5}`,
        data: Buffer.alloc(len, 97 + (p % 26)),
        metadata: Buffer.alloc(0),
      });
      sizes.push(files.recordBytes(p));
    }
    return { files, dir, sizes };
  }

  function expectReadable(files: EventFiles, n: number, sizes: number[]): void {
    for (let p = 0; p < n; p++) {
      const e = files.read(p);
      expect(e.position).toBe(p);
      expect(e.streamId).toBe(`s-${p % 17}`);
      expect(files.recordBytes(p)).toBe(sizes[p]);
      expect(e.byteLength).toBe(sizes[p]);
    }
    // Ranges that start between kept offsets and cross files and read blocks.
    for (const [from, to] of [
      [0, n - 1],
      [5, 300],
      [15, 17],
      [63, 65],
      [129, n - 3],
    ]) {
      const seen: number[] = [];
      expect(files.scan(from, to, (e) => (seen.push(e.position), true))).toBe(to);
      expect(seen).toEqual(Array.from({ length: to - from + 1 }, (_, i) => from + i));
    }
  }

  it('reads every record and range from the files, with one offset kept per 16 positions', () => {
    const n = 1500;
    const { files, sizes } = fill(n);
    expect(files.describe().length).toBeGreaterThan(3);
    expect(files.sparseOffsets().length).toBe(sparseCount(n));
    files.flush();
    expectReadable(files, n, sizes);
    // Records still in the write buffer (not flushed) read the same.
    files.close();
  });

  it('reopens from the files and the sparse offsets alone, and from dense ones (older cuts)', () => {
    const n = 700;
    const { files, dir, sizes } = fill(n);
    files.flush();
    const described = files.describe();
    const sparse = Uint32Array.from(files.sparseOffsets());
    // Dense offsets as an older cut held them: rebuilt here by reading each record's offset.
    const dense = new Uint32Array(n);
    for (const f of described) {
      let at = 0;
      for (let p = f.start; p < f.start + f.count; p++) {
        dense[p] = at;
        at += sizes[p];
      }
    }
    files.close();
    for (const offsets of [sparse, sparseFromDense(dense)]) {
      const again = new EventFiles(dir, opts, described, Uint32Array.from(offsets));
      expectReadable(again, n, sizes);
      again.close();
    }
    expect(Array.from(sparseFromDense(dense).subarray(0, sparse.length))).toEqual(Array.from(sparse));
    expect(OFFSETS_EVERY).toBe(16);
  });

  it('refuses too few sparse offsets for the files', () => {
    const { files, dir } = fill(200);
    files.flush();
    const described = files.describe();
    files.close();
    expect(() => new EventFiles(dir, opts, described, new Uint32Array(0))).toThrow(
      /0 sparse offsets, the files' 200 positions need 13/,
    );
    expect(() => new EventFiles(dir, opts, described, new Uint32Array(12))).toThrow(
      /12 sparse offsets, the files' 200 positions need 13/,
    );
  });
});
