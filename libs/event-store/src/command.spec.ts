import { decodeCommand, encodeCommand, prepareAppend } from './command';
import { EventStoreError } from './errors';
import { DEFAULT_LIMITS } from './limits';
import { AppendInput } from './types';
import { newEventId } from './uuid';

const NOW = new Date('2026-11-23T10:15:30.123Z');

function prepare(input: Partial<AppendInput> & { events?: unknown[] }) {
  return prepareAppend(
    { streamId: 'order-1', events: [{ type: 'A' }], ...input } as AppendInput,
    DEFAULT_LIMITS,
    NOW,
    newEventId,
  );
}

function errorOf(fn: () => unknown): EventStoreError {
  try {
    fn();
  } catch (e) {
    if (e instanceof EventStoreError) return e;
    throw e;
  }
  throw new Error('expected an EventStoreError');
}

describe('prepareAppend', () => {
  it('assigns ids, the leader timestamp, and serializes data/metadata once', () => {
    const cmd = prepare({
      events: [
        { type: 'A', data: { x: 1 } },
        { id: 'ABCDEF01-2345-4678-89AB-CDEF01234567', type: 'B', data: null, metadata: { m: true } },
      ],
    });
    expect(cmd.timestamp).toBe('2026-11-23T10:15:30.123Z');
    expect(cmd.expectedRevision).toBe('any');
    expect(cmd.events[0].id).toMatch(/^[0-9a-f-]{36}$/);
    expect(cmd.events[1].id).toBe('abcdef01-2345-4678-89ab-cdef01234567');
    expect(Buffer.from(cmd.events[0].data).toString()).toBe('{"x":1}');
    expect(Buffer.from(cmd.events[0].metadata).toString()).toBe('{}');
    expect(Buffer.from(cmd.events[1].data).toString()).toBe('null');
  });

  it.each([
    [{ streamId: '' }, 'streamId: must not be empty'],
    [{ streamId: '$all' }, "streamId: names starting with '$' are reserved"],
    [{ streamId: 'a/b' }, 'streamId: only A-Z'],
    [{ streamId: 'é' }, 'streamId: only A-Z'],
    [{ streamId: 'x'.repeat(257) }, 'streamId: longer than 256'],
    [{ streamId: 42 as never }, 'streamId: must be a string'],
    [{ expectedRevision: -1 }, 'expectedRevision: must be'],
    [{ expectedRevision: 1.5 }, 'expectedRevision: must be'],
    [{ expectedRevision: 'latest' as never }, 'expectedRevision: must be'],
    [{ events: [] }, 'events: at least one event'],
    [{ events: 'x' as never }, 'events: must be an array'],
    [
      { events: [{ type: 'A' }, { type: 'B' }, { type: 'C' }, { id: 'nope', type: 'D' }] },
      'events[3].id: not a UUID',
    ],
    [{ events: [{ data: {} }] }, 'events[0].type: required'],
    [{ events: [{ type: '' }] }, 'events[0].type: required'],
    [{ events: [{ type: 'x'.repeat(257) }] }, 'events[0].type: longer than 256'],
    [{ events: [null] }, 'events[0]: must be an object'],
    [{ events: [{ type: 'A', data: () => 1 }] }, 'events[0].data: not a JSON value'],
    [{ events: [{ type: 'A', data: 10n }] }, 'events[0].data: not a JSON value'],
    [
      {
        events: [
          { id: '00000000-0000-4000-8000-000000000001', type: 'A' },
          { id: '00000000-0000-4000-8000-000000000001', type: 'B' },
        ],
      },
      'events[1].id: duplicates events[0].id',
    ],
  ])('rejects input #%# with invalid_request', (input, message) => {
    const e = errorOf(() => prepare(input as never));
    expect(e.code).toBe('invalid_request');
    expect(e.message).toContain(message);
  });

  it('rejects a cyclic data value as invalid_request', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(errorOf(() => prepare({ events: [{ type: 'A', data: cyclic }] })).message).toMatch(
      /events\[0\]\.data: not a JSON value/,
    );
  });

  it('answers payload_too_large over the size limits', () => {
    const tooMany = Array.from({ length: 1001 }, () => ({ type: 'A' }));
    expect(errorOf(() => prepare({ events: tooMany })).code).toBe('payload_too_large');
    const big = 'x'.repeat(DEFAULT_LIMITS.eventBytesMax);
    const e = errorOf(() => prepare({ events: [{ type: 'A', data: big }] }));
    expect(e.code).toBe('payload_too_large');
    expect(e.message).toMatch(/events\[0\]/);
    const half = 'x'.repeat(DEFAULT_LIMITS.eventBytesMax / 2);
    expect(
      errorOf(() => prepare({ events: Array.from({ length: 9 }, () => ({ type: 'A', data: half })) })).code,
    ).toBe('payload_too_large');
    expect(() =>
      prepare({ events: [{ type: 'A', data: 'x'.repeat(DEFAULT_LIMITS.eventBytesMax - 10) }] }),
    ).not.toThrow();
  });
});

describe('command encoding', () => {
  it('round-trips every field, unicode included', () => {
    for (const expectedRevision of ['any', 'no_stream', 'stream_exists', 0, 12345] as const) {
      const cmd = prepare({
        streamId: 'order-1:x@y.z_w',
        expectedRevision,
        events: [{ type: 'Ünïcødé ✓', data: { s: '日本', n: [1, 2] }, metadata: { a: 1 } }, { type: 'B' }],
      });
      const back = decodeCommand(encodeCommand(cmd));
      expect(back).toEqual({
        ...cmd,
        events: cmd.events.map((e) => ({
          ...e,
          data: Buffer.from(e.data),
          metadata: Buffer.from(e.metadata),
        })),
      });
    }
  });

  it('decodes every event type exactly, also types that share length and first and last bytes (the name cache)', () => {
    const types = [
      'AxxxZ',
      'AyyyZ',
      'AxxxZ',
      'Ab',
      'Ab\u00e9',
      'A\u00e9b',
      'ÄxxxZ',
      'AyyyZ',
      'x'.repeat(100),
      'x'.repeat(99) + 'y',
    ];
    for (let round = 0; round < 3; round++) {
      const cmd = prepareAppend(
        { streamId: 's', events: types.map((type) => ({ type, data: { round } })) },
        DEFAULT_LIMITS,
        new Date(),
        newEventId,
      );
      expect(decodeCommand(encodeCommand(cmd)).events.map((e) => e.type)).toEqual(types);
    }
  });

  it('rejects truncated or foreign bytes', () => {
    const bytes = encodeCommand(prepare({}));
    expect(() => decodeCommand(bytes.subarray(0, bytes.length - 1))).toThrow(/truncated/);
    expect(() => decodeCommand(new Uint8Array([7, 1]))).toThrow();
    expect(() => decodeCommand(Buffer.concat([bytes, Buffer.from([0])]))).toThrow(/trailing/);
  });
});
