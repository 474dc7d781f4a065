import { decodeCheckpoints, encodeCheckpoints } from './checkpoint-codec';
import { ProjectionCheckpoint } from './engine';

describe('projection checkpoint codec', () => {
  const checkpoints: ProjectionCheckpoint[] = [
    { name: 'counts', version: 2, position: 41, status: 'running', state: { total: 7, by: { a: 1 } } },
    {
      name: 'streams',
      version: 0,
      position: 41,
      status: 'running',
      partitions: [
        ['order-1', { lastRevision: 3, note: 'line\nbreak "quoted" ü' }],
        ['order-2', null],
      ],
    },
    { name: 'empty', version: 0, position: -1, status: 'faulted', error: 'boom', partitions: [] },
  ];

  it('round-trips projections, their partitions and odd strings', () => {
    expect(decodeCheckpoints(Buffer.concat(encodeCheckpoints(checkpoints)))).toEqual(checkpoints);
  });

  it('reads the older single-JSON-array format', () => {
    expect(decodeCheckpoints(Buffer.from(JSON.stringify(checkpoints)))).toEqual(checkpoints);
    expect(decodeCheckpoints(Buffer.alloc(0))).toEqual([]);
  });

  it('keeps every chunk small however many partitions there are (one JSON string failed at ~1.5M streams)', () => {
    const partitions: [string, unknown][] = Array.from({ length: 200_000 }, (_, i) => [
      `order-${i}`,
      {
        lastRevision: i % 5,
        eventCount: 1 + (i % 5),
        lastEventType: 'OrderPlaced',
        updatedAt: '2026-12-07T00:00:00.000Z',
      },
    ]);
    const chunks = encodeCheckpoints([
      { name: 'streams', version: 0, position: 9, status: 'running', partitions },
    ]);
    expect(chunks.length).toBeGreaterThan(10);
    for (const c of chunks) expect(c.length).toBeLessThan(4 << 20);
    const back = decodeCheckpoints(Buffer.concat(chunks));
    expect(back[0].partitions).toHaveLength(200_000);
    expect(back[0].partitions![123_456]).toEqual(partitions[123_456]);
  });

  it('names the projection when its partitions are cut short', () => {
    const bytes = Buffer.concat(encodeCheckpoints([checkpoints[1]]));
    const cut = bytes.subarray(0, bytes.lastIndexOf('\n', bytes.length - 2) + 1);
    expect(() => decodeCheckpoints(cut)).toThrow(
      /projection checkpoint streams: 1 of 2 partitions, then the end/,
    );
  });
});
