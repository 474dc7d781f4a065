import { randomBytes } from 'node:crypto';
import { IdWindow } from './id-window';

describe('IdWindow', () => {
  it('finds exactly the ids of the most recent `capacity` positions (checked against a reference map)', () => {
    const capacity = 97;
    const w = new IdWindow(capacity);
    const ids: Buffer[] = [];
    // Seeded-ish: ids sharing long prefixes (like time-ordered UUIDs) stress the hash and the probe chains.
    for (let p = 0; p < 2000; p++) {
      const id =
        p % 3 === 0
          ? Buffer.concat([Buffer.alloc(12), Buffer.from([p & 255, p >> 8, 0, 1])])
          : randomBytes(16);
      ids.push(id);
      w.add(p, id, 0);
      if (p % 50 === 0 || p > 1990) {
        for (let q = 0; q <= p; q++) {
          const expected = q > p - capacity ? q : -1;
          expect(w.find(ids[q], 0)).toBe(expected);
        }
      }
    }
    expect(w.find(randomBytes(16), 0)).toBe(-1);
  });

  it('encodes and loads the window, keeping the most recent ids when the capacity shrinks', () => {
    const w = new IdWindow(10);
    const ids = Array.from({ length: 25 }, () => randomBytes(16));
    ids.forEach((id, p) => w.add(p, id, 0));
    const copy = new IdWindow(10);
    copy.load(w.encode());
    const small = new IdWindow(4);
    small.load(w.encode());
    ids.forEach((id, p) => {
      expect(copy.find(id, 0)).toBe(p >= 15 ? p : -1);
      expect(small.find(id, 0)).toBe(p >= 21 ? p : -1);
    });
    copy.add(25, randomBytes(16), 0);
    expect(copy.find(ids[15], 0)).toBe(-1);
    expect(() => copy.add(30, randomBytes(16), 0)).toThrow(/expected 26/);
  });

  it('a loaded window (wrapping the ring) goes on evicting and finding exactly like the one it was saved from', () => {
    for (const [capacity, total, loadCapacity] of [
      [13, 40, 13],
      [13, 40, 9],
      [13, 40, 30],
      [64, 500, 50],
    ]) {
      const w = new IdWindow(capacity);
      const ids = Array.from({ length: total + 30 }, () => randomBytes(16));
      for (let p = 0; p < total; p++) w.add(p, ids[p], 0);
      const copy = new IdWindow(loadCapacity);
      copy.load(w.encode());
      const kept = Math.min(capacity, loadCapacity);
      for (let p = total; p < total + 30; p++) {
        copy.add(p, ids[p], 0);
        for (let q = 0; q <= p; q++) {
          // Positions from the saved window count only if they are among its `kept` most recent.
          const inWindow = q > p - loadCapacity && (q >= total || q >= total - kept);
          expect(copy.find(ids[q], 0)).toBe(inWindow ? q : -1);
        }
      }
    }
  });
});
