import * as fs from 'node:fs';
import * as path from 'node:path';
import { EntryType, DurableStorage } from '@app/consensus';
import { EventStoreStateMachine, EventStoreOptions } from './state-machine';
import { appendEntry, ev, noopEntry, removeDir, tempDir, uuidOf } from './testing/fixtures';
import { AppendResult } from './types';

jest.setTimeout(60_000);

// Every case runs with the stream index in the heap and on disk (tiny tables: most entries live in runs).
const STREAM_INDEXES: [string, EventStoreOptions['streamIndex']][] = [
  ['memory', { kind: 'memory' }],
  ['disk', { kind: 'disk', memtableEntriesMax: 3, runsPerMerge: 2 }],
];

describe.each(STREAM_INDEXES)('EventStoreStateMachine (stream index in %s)', (_kind, streamIndex) => {
  const dirs: string[] = [];
  const stores: EventStoreStateMachine[] = [];
  let index = 0;

  async function open(opts: EventStoreOptions = {}, dir = tempDir()): Promise<EventStoreStateMachine> {
    if (!dirs.includes(dir)) dirs.push(dir);
    const sm = await EventStoreStateMachine.open(dir, { streamIndex, ...opts });
    stores.push(sm);
    return sm;
  }

  function append(
    sm: EventStoreStateMachine,
    streamId: string,
    events: Parameters<typeof appendEntry>[2],
    expected: Parameters<typeof appendEntry>[3] = 'any',
  ): AppendResult {
    index = sm.appliedIndex() + 1;
    return sm.apply(appendEntry(index, streamId, events, expected)) as AppendResult;
  }

  afterEach(async () => {
    for (const sm of stores.splice(0)) await sm.close();
    for (const d of dirs.splice(0)) removeDir(d);
  });

  describe('expected revision', () => {
    it('any: creates a stream and appends to an existing one', async () => {
      const sm = await open();
      expect(append(sm, 'order-1', [ev('A')])).toEqual({
        ok: true,
        streamId: 'order-1',
        firstRevision: 0,
        lastRevision: 0,
        firstPosition: 0,
        lastPosition: 0,
      });
      expect(append(sm, 'order-1', [ev('B'), ev('C')])).toEqual({
        ok: true,
        streamId: 'order-1',
        firstRevision: 1,
        lastRevision: 2,
        firstPosition: 1,
        lastPosition: 2,
      });
    });

    it('no_stream: holds only when the stream does not exist', async () => {
      const sm = await open();
      expect(append(sm, 's', [ev('A')], 'no_stream')).toMatchObject({ ok: true, firstRevision: 0 });
      expect(append(sm, 's', [ev('B')], 'no_stream')).toEqual({
        ok: false,
        error: 'wrong_expected_revision',
        streamId: 's',
        expectedRevision: 'no_stream',
        actualRevision: 0,
      });
    });

    it('stream_exists: fails with actualRevision -1 on a missing stream, holds on an existing one', async () => {
      const sm = await open();
      expect(append(sm, 's', [ev('A')], 'stream_exists')).toEqual({
        ok: false,
        error: 'wrong_expected_revision',
        streamId: 's',
        expectedRevision: 'stream_exists',
        actualRevision: -1,
      });
      append(sm, 's', [ev('A')]);
      expect(append(sm, 's', [ev('B')], 'stream_exists')).toMatchObject({ ok: true, firstRevision: 1 });
    });

    it('an exact revision holds only when it is the last revision', async () => {
      const sm = await open();
      expect(append(sm, 's', [ev('A')], 0)).toEqual({
        ok: false,
        error: 'wrong_expected_revision',
        streamId: 's',
        expectedRevision: 0,
        actualRevision: -1,
      });
      append(sm, 's', [ev('A'), ev('B')]);
      expect(append(sm, 's', [ev('C')], 0)).toMatchObject({ ok: false, actualRevision: 1 });
      expect(append(sm, 's', [ev('C')], 2)).toMatchObject({ ok: false, actualRevision: 1 });
      expect(append(sm, 's', [ev('C')], 1)).toMatchObject({ ok: true, firstRevision: 2, firstPosition: 2 });
    });

    it('a rejected append changes nothing and positions stay gapless', async () => {
      const sm = await open();
      append(sm, 'a', [ev('A')]);
      const before = sm.readAll({ limit: 10 });
      expect(append(sm, 'a', [ev('X'), ev('Y')], 5)).toMatchObject({ ok: false });
      expect(sm.readAll({ limit: 10 })).toEqual(before);
      expect(sm.streamRevision('a')).toBe(0);
      expect(append(sm, 'b', [ev('B')])).toMatchObject({ ok: true, firstPosition: 1 });
      expect(sm.appliedIndex()).toBe(3);
    });
  });

  describe('idempotency', () => {
    it('a retry with the same ids returns the original result and writes nothing', async () => {
      const sm = await open();
      const events = [ev('A', { n: 1 }, uuidOf(1)), ev('B', { n: 2 }, uuidOf(2))];
      const first = append(sm, 's', events, 'no_stream');
      append(sm, 'other', [ev('X')]);
      const retry = append(sm, 's', events, 'no_stream');
      expect(retry).toEqual({ ...first, duplicate: true });
      expect(sm.lastPosition()).toBe(2);
      expect(sm.readStream('s')!.events.map((e) => e.id)).toEqual([uuidOf(1), uuidOf(2)]);
    });

    it('matches ids case-insensitively (they are stored in lower case)', async () => {
      const sm = await open();
      const id = 'ABCDEF01-2345-4678-89AB-CDEF01234567';
      const first = append(sm, 's', [ev('A', {}, id)]);
      expect(append(sm, 's', [ev('A', {}, id.toLowerCase())])).toEqual({ ...first, duplicate: true });
      expect(sm.readStream('s')!.events[0].id).toBe(id.toLowerCase());
    });

    it('a known id with different data, type or stream is a conflict and writes nothing', async () => {
      const sm = await open();
      append(sm, 's', [ev('A', { n: 1 }, uuidOf(1))]);
      for (const [stream, e] of [
        ['s', ev('A', { n: 2 }, uuidOf(1))],
        ['s', ev('Other', { n: 1 }, uuidOf(1))],
        ['t', ev('A', { n: 1 }, uuidOf(1))],
      ] as const) {
        expect(append(sm, stream, [e])).toMatchObject({
          ok: false,
          error: 'idempotency_conflict',
          eventId: uuidOf(1),
        });
      }
      expect(sm.lastPosition()).toBe(0);
    });

    it('mixing known and new ids, or reordering them, is a conflict', async () => {
      const sm = await open();
      append(sm, 's', [ev('A', {}, uuidOf(1)), ev('B', {}, uuidOf(2))]);
      expect(append(sm, 's', [ev('A', {}, uuidOf(1)), ev('C', {}, uuidOf(3))])).toMatchObject({
        ok: false,
        error: 'idempotency_conflict',
      });
      expect(append(sm, 's', [ev('C', {}, uuidOf(3)), ev('A', {}, uuidOf(1))])).toMatchObject({
        ok: false,
        error: 'idempotency_conflict',
      });
      expect(append(sm, 's', [ev('B', {}, uuidOf(2)), ev('A', {}, uuidOf(1))])).toMatchObject({
        ok: false,
        error: 'idempotency_conflict',
      });
      expect(sm.lastPosition()).toBe(1);
    });

    it('ids older than the window are forgotten (the bound is by position)', async () => {
      const sm = await open({ idempotencyWindowEvents: 4 });
      append(sm, 's', [ev('A', {}, uuidOf(1))]);
      for (let i = 0; i < 3; i++) append(sm, 'x', [ev('X')]);
      expect(append(sm, 's', [ev('A', {}, uuidOf(1))])).toMatchObject({
        ok: true,
        duplicate: true,
        firstPosition: 0,
      });
      append(sm, 'x', [ev('X')]);
      expect(append(sm, 's', [ev('A', {}, uuidOf(1))])).toMatchObject({
        ok: true,
        firstPosition: 5,
        firstRevision: 1,
      });
      expect(append(sm, 's', [ev('A', {}, uuidOf(1))])).toMatchObject({
        ok: true,
        duplicate: true,
        firstPosition: 5,
      });
    });

    it('survives a restart and a snapshot restore', async () => {
      const dir = tempDir();
      dirs.push(dir);
      const sm = await open({}, dir);
      const events = [ev('A', { n: 1 }, uuidOf(7))];
      const first = append(sm, 's', events);
      append(sm, 's', [ev('B')]);
      const snap = await sm.snapshot();
      const chunks: Uint8Array[] = [];
      for await (const c of snap.data) chunks.push(c);
      await sm.close();
      const reopened = await open({}, dir);
      expect(append(reopened, 's', events)).toEqual({ ...first, duplicate: true });
      const restored = await open();
      await restored.restore(
        { index: snap.index, term: 1, config: { voters: [], outgoing: [], learners: [], addresses: {} } },
        toAsync(chunks),
      );
      expect(append(restored, 's', events)).toEqual({ ...first, duplicate: true });
      expect(append(restored, 's', [ev('A', { n: 2 }, uuidOf(7))])).toMatchObject({
        error: 'idempotency_conflict',
      });
    });
  });

  it('Noop and Config entries only advance appliedIndex; re-delivered entries are ignored; gaps throw', async () => {
    const sm = await open();
    expect(sm.apply(noopEntry(1))).toBeUndefined();
    expect(
      sm.apply({ index: 2, term: 1, type: EntryType.Config, data: new TextEncoder().encode('{}') }),
    ).toBeUndefined();
    expect(sm.appliedIndex()).toBe(2);
    expect(sm.lastPosition()).toBe(-1);
    const e3 = appendEntry(3, 's', [ev('A')]);
    expect(sm.apply(e3)).toMatchObject({ ok: true });
    expect(sm.apply(e3)).toBeUndefined();
    expect(sm.lastPosition()).toBe(0);
    expect(() => sm.apply(noopEntry(5))).toThrow(/without gaps/);
  });

  it('an undecodable Normal entry is an invalid_command result on every node, not a crash', async () => {
    const sm = await open();
    expect(
      sm.apply({ index: 1, term: 1, type: EntryType.Normal, data: new Uint8Array([9, 9, 9]) }),
    ).toMatchObject({ ok: false, error: 'invalid_command' });
    expect(sm.appliedIndex()).toBe(1);
    expect(sm.lastPosition()).toBe(-1);
  });

  describe('reads', () => {
    async function seeded(opts: EventStoreOptions = {}) {
      const sm = await open(opts);
      for (let i = 0; i < 30; i++)
        append(sm, i % 3 === 0 ? `order-${i % 2}` : `cart-${i % 2}`, [ev(i % 2 ? 'Odd' : 'Even', { i })]);
      return sm;
    }

    it('reads a stream forward and backward, paged, with next', async () => {
      const sm = await seeded();
      const all = sm.readStream('order-0', { limit: 4096 })!;
      expect(all.events.map((e) => e.revision)).toEqual([0, 1, 2, 3, 4]);
      expect(all.events.map((e) => (e.data as { i: number }).i)).toEqual([0, 6, 12, 18, 24]);
      expect(all.lastRevision).toBe(4);
      expect(all.next).toBeNull();
      const p1 = sm.readStream('order-0', { limit: 2 })!;
      expect(p1.events.map((e) => e.revision)).toEqual([0, 1]);
      expect(p1.next).toBe(2);
      const back = sm.readStream('order-0', { direction: 'backward', limit: 2 })!;
      expect(back.events.map((e) => e.revision)).toEqual([4, 3]);
      expect(back.next).toBe(2);
      const back2 = sm.readStream('order-0', { direction: 'backward', from: back.next!, limit: 5 })!;
      expect(back2.events.map((e) => e.revision)).toEqual([2, 1, 0]);
      expect(back2.next).toBeNull();
      expect(sm.readStream('order-0', { from: 9 })).toEqual({
        streamId: 'order-0',
        events: [],
        lastRevision: 4,
        next: null,
      });
      expect(sm.readStream('nope')).toBeNull();
    });

    it('returns envelopes exactly as API.md describes', async () => {
      const sm = await open();
      append(sm, 'order-42', [
        { id: uuidOf(5), type: 'OrderPlaced', data: { total: 3 }, metadata: { by: 'me' } },
      ]);
      append(sm, 'order-42', [{ type: 'Noted', data: [1, 'x'] }]);
      const [a, b] = sm.readStream('order-42')!.events;
      expect(a).toEqual({
        id: uuidOf(5),
        streamId: 'order-42',
        type: 'OrderPlaced',
        revision: 0,
        position: 0,
        timestamp: '2026-11-23T10:15:30.123Z',
        data: { total: 3 },
        metadata: { by: 'me' },
      });
      expect(Object.keys(b).sort()).toEqual([
        'data',
        'id',
        'metadata',
        'position',
        'revision',
        'streamId',
        'timestamp',
        'type',
      ]);
      expect(b.data).toEqual([1, 'x']);
      expect(b.metadata).toEqual({});
      expect(JSON.parse(JSON.stringify(a))).toEqual(a);
    });

    it('reads $all forward/backward, paged, filtered by types and stream prefix', async () => {
      const sm = await seeded();
      const page = sm.readAll({ from: 5, limit: 3 });
      expect(page.events.map((e) => e.position)).toEqual([5, 6, 7]);
      expect(page).toMatchObject({ lastPosition: 29, next: 8 });
      expect(sm.readAll({ from: 28, limit: 5 })).toMatchObject({ next: null });
      expect(sm.readAll({ from: 30 })).toEqual({ events: [], lastPosition: 29, next: null });
      const back = sm.readAll({ direction: 'backward', limit: 3 });
      expect(back.events.map((e) => e.position)).toEqual([29, 28, 27]);
      expect(back.next).toBe(26);
      expect(sm.readAll({ direction: 'backward', from: 1, limit: 5 }).events.map((e) => e.position)).toEqual([
        1, 0,
      ]);
      const odd = sm.readAll({ types: ['Odd'], limit: 4 });
      expect(odd.events.map((e) => e.position)).toEqual([1, 3, 5, 7]);
      expect(odd.next).toBe(9);
      const orders = sm.readAll({ streamPrefix: 'order-', limit: 100 });
      expect(orders.events.map((e) => e.position)).toEqual([0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);
      expect(orders.next).toBeNull();
      const both = sm.readAll({ streamPrefix: 'order-', types: ['Even'], direction: 'backward', limit: 2 });
      expect(both.events.map((e) => e.position)).toEqual([24, 18]);
      expect(both.next).toBe(12);
      const rest = sm.readAll({ streamPrefix: 'order-', types: ['Even'], direction: 'backward', from: 12 });
      expect(rest.events.map((e) => e.position)).toEqual([12, 6, 0]);
      expect(rest.next).toBeNull();
    });

    it('rejects bad read options with invalid_request', async () => {
      const sm = await seeded();
      expect(() => sm.readAll({ limit: 0 })).toThrow(/limit/);
      expect(() => sm.readAll({ limit: 4097 })).toThrow(/limit/);
      expect(() => sm.readStream('order-0', { from: -1 })).toThrow(/from/);
      expect(() => sm.readAll({ direction: 'sideways' as never })).toThrow(/direction/);
    });

    it('reads across rolled event files, from disk when the recent cache is tiny', async () => {
      const sm = await open({ fileBytesMax: 2048, recentCacheEvents: 2 });
      for (let i = 0; i < 200; i++) append(sm, `s-${i % 7}`, [ev('E', { i, pad: 'x'.repeat(i % 50) })]);
      expect(sm.stats().eventFiles).toBeGreaterThan(5);
      const seen: number[] = [];
      for (let from: number | null = 0; from !== null;) {
        const page = sm.readAll({ from, limit: 37 });
        seen.push(...page.events.map((e) => (e.data as { i: number }).i));
        from = page.next;
      }
      expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => i));
      const s3 = sm.readStream('s-3', { direction: 'backward', limit: 4096 })!;
      expect(s3.events.map((e) => (e.data as { i: number }).i)).toEqual(
        Array.from({ length: 200 }, (_, i) => i)
          .filter((i) => i % 7 === 3)
          .reverse(),
      );
    });

    it('bounds a page by bytes (at least one event)', async () => {
      const sm = await open({ readBytesMax: 1000 });
      for (let i = 0; i < 10; i++) append(sm, 's', [ev('E', { pad: 'y'.repeat(300) })]);
      const page = sm.readAll({ limit: 10 });
      expect(page.events.length).toBeGreaterThanOrEqual(1);
      expect(page.events.length).toBeLessThan(4);
      expect(page.next).toBe(page.events.length);
      const big = await open({ readBytesMax: 10 });
      append(big, 's', [ev('E', { pad: 'z'.repeat(100) })]);
      expect(big.readStream('s')!.events).toHaveLength(1);
    });
  });

  describe('restart and snapshots', () => {
    it('restart loads the latest cut, discards event data past it, and re-applies the log identically', async () => {
      const dir = tempDir();
      dirs.push(dir);
      const sm = await open({ fileBytesMax: 4096 }, dir);
      const log = [] as ReturnType<typeof appendEntry>[];
      const logAppend = (stream: string, n: number) => {
        const entry = appendEntry(
          log.length + 1,
          stream,
          Array.from({ length: n }, (_, k) => ev('E', { k, stream })),
        );
        log.push(entry);
        return sm.apply(entry);
      };
      for (let i = 0; i < 40; i++) logAppend(`s-${i % 4}`, 1 + (i % 3));
      const snap = await sm.snapshot();
      expect(snap.index).toBe(40);
      for (let i = 40; i < 70; i++) logAppend(`s-${i % 5}`, 1 + (i % 2));
      const reference = sm.readAll({ limit: 4096 });
      const refStreams = [0, 1, 2, 3, 4].map((k) => sm.readStream(`s-${k}`, { limit: 4096 }));
      await sm.close();

      const reopened = await open({ fileBytesMax: 4096 }, dir);
      expect(reopened.appliedIndex()).toBe(40);
      const cutPosition = reopened.lastPosition();
      expect(cutPosition).toBe(
        reference.events.length - 1 - log.slice(40).reduce((a, e) => a + countEvents(e), 0),
      );
      expect(() => reopened.readAll({ from: cutPosition + 1 })).not.toThrow();
      expect(reopened.readAll({ from: cutPosition + 1 }).events).toEqual([]);
      const diskBytes = fs
        .readdirSync(path.join(dir, 'events'))
        .reduce((a, n) => a + fs.statSync(path.join(dir, 'events', n)).size, 0);
      expect(diskBytes).toBe(reopened.stats().eventBytes);
      for (const entry of log.slice(40)) reopened.apply(entry);
      expect(reopened.appliedIndex()).toBe(70);
      expect(reopened.readAll({ limit: 4096 })).toEqual(reference);
      expect([0, 1, 2, 3, 4].map((k) => reopened.readStream(`s-${k}`, { limit: 4096 }))).toEqual(refStreams);
    });

    it('restart without any cut starts empty and re-applies from index 1', async () => {
      const dir = tempDir();
      dirs.push(dir);
      const sm = await open({}, dir);
      const entry = appendEntry(1, 's', [ev('A')]);
      sm.apply(entry);
      await sm.close();
      const reopened = await open({}, dir);
      expect(reopened.appliedIndex()).toBe(0);
      expect(reopened.lastPosition()).toBe(-1);
      expect(reopened.apply(entry)).toMatchObject({ ok: true, firstPosition: 0 });
    });

    it('snapshot → restore on a fresh dir gives identical reads and identical future positions', async () => {
      const a = await open({ fileBytesMax: 3000 });
      for (let i = 0; i < 50; i++) append(a, `order-${i % 6}`, [ev('OrderPlaced', { i })]);
      const snap = await a.snapshot();
      // Appends after the cut must not leak into the archive.
      append(a, 'late', [ev('Late')]);
      const chunks: Uint8Array[] = [];
      for await (const c of snap.data) chunks.push(c);
      const b = await open({ fileBytesMax: 3000 });
      b.apply(appendEntry(1, 'junk', [ev('Junk')]));
      await b.restore(
        { index: snap.index, term: 3, config: { voters: [], outgoing: [], learners: [], addresses: {} } },
        toAsync(chunks),
      );
      expect(b.appliedIndex()).toBe(50);
      expect(b.lastPosition()).toBe(49);
      expect(b.readStream('junk')).toBeNull();
      expect(b.readAll({ limit: 4096, to: undefined } as never).events).toEqual(
        a.readAll({ limit: 50 }).events,
      );
      const late = appendEntry(51, 'late', [ev('Late')]);
      const fromB = b.apply(late);
      expect(fromB).toMatchObject({ ok: true, firstPosition: 50 });
      expect(b.readAll({ limit: 4096 }).events.map((e) => e.position)).toEqual(
        Array.from({ length: 51 }, (_, i) => i),
      );
      expect(b.projections.get('streams')!.state).toEqual(a.projections.get('streams')!.state);
    });

    it('a restored store restarts from the restored cut', async () => {
      const a = await open();
      for (let i = 0; i < 10; i++) append(a, 's', [ev('E', { i })]);
      const snap = await a.snapshot();
      const chunks: Uint8Array[] = [];
      for await (const c of snap.data) chunks.push(c);
      const dir = tempDir();
      dirs.push(dir);
      const b = await open({}, dir);
      await b.restore(
        { index: snap.index, term: 1, config: { voters: [], outgoing: [], learners: [], addresses: {} } },
        toAsync(chunks),
      );
      await b.close();
      const c = await open({}, dir);
      expect(c.appliedIndex()).toBe(10);
      expect(c.readStream('s', { limit: 100 })!.events).toEqual(a.readStream('s', { limit: 100 })!.events);
    });

    it('a corrupt archive is rejected and leaves the state untouched', async () => {
      const a = await open();
      for (let i = 0; i < 5; i++) append(a, 's', [ev('E', { i })]);
      const snap = await a.snapshot();
      const bytes = Buffer.concat(
        await (async () => {
          const c: Buffer[] = [];
          for await (const x of snap.data) c.push(Buffer.from(x));
          return c;
        })(),
      );
      const b = await open();
      append(b, 'keep', [ev('K')]);
      const corrupt = Buffer.from(bytes);
      corrupt[corrupt.length - 40] ^= 0xff;
      await expect(
        b.restore(
          { index: snap.index, term: 1, config: { voters: [], outgoing: [], learners: [], addresses: {} } },
          toAsync([corrupt]),
        ),
      ).rejects.toThrow(/snapshot archive/);
      await expect(
        b.restore(
          { index: snap.index, term: 1, config: { voters: [], outgoing: [], learners: [], addresses: {} } },
          toAsync([bytes.subarray(0, 100)]),
        ),
      ).rejects.toThrow(/truncated/);
      expect(b.readStream('keep')!.events).toHaveLength(1);
      expect(b.appliedIndex()).toBe(1);
    });

    describe("stored by the node's storage as parts (hard links)", () => {
      const quiet = { log: () => {}, warn: () => {}, error: () => {} };
      const config = { voters: ['a'], outgoing: [], learners: [], addresses: {} };

      function chunked(s: DurableStorage): Buffer {
        const out: Buffer[] = [];
        for (let offset = 0, k = 0; k < 1_000_000; k++) {
          const c = s.snapshotChunk(offset, 1000);
          out.push(Buffer.from(c.data));
          offset += c.data.length;
          if (c.done) return Buffer.concat(out);
        }
        throw new Error('snapshotChunk never said done');
      }

      /** A store, its Raft-side storage and the log applied to it (also persisted there). */
      async function setup(opts: EventStoreOptions) {
        const dir = tempDir();
        const raftDir = tempDir();
        dirs.push(dir, raftDir);
        const log: ReturnType<typeof appendEntry>[] = [];
        let sm = await open(opts, dir);
        const storage = await DurableStorage.open(raftDir, { logger: quiet });
        const more = async (n: number) => {
          const added: ReturnType<typeof appendEntry>[] = [];
          for (let i = 0; i < n; i++) {
            const entry = appendEntry(log.length + 1, `s-${i % 4}`, [
              ev('E', { i, pad: 'p'.repeat(i % 40) }),
            ]);
            log.push(entry);
            added.push(entry);
            sm.apply(entry);
          }
          await storage.persist({ entries: added });
        };
        const reopen = async () => {
          await sm.close();
          sm = await open(opts, dir);
          for (const entry of log.slice(sm.appliedIndex())) sm.apply(entry);
          return sm;
        };
        return { dir, raftDir, log, storage, more, reopen, sm: () => sm };
      }

      it('restores a fresh store after the source store appended, restarted and pruned the cut', async () => {
        const t = await setup({ fileBytesMax: 3000, cutsKept: 1 });
        await t.more(50);
        const snap = await t.sm().snapshot();
        const expectedBytes = Buffer.concat(
          snap.parts.map((p) =>
            'bytes' in p ? Buffer.from(p.bytes) : fs.readFileSync(p.file).subarray(0, p.length),
          ),
        );
        const meta = { index: snap.index, term: 1, config };
        await t.storage.saveSnapshot(meta, snap.parts);
        const reference = t.sm().readAll({ limit: 4096 });
        // The source moves on: the open file (shared with the stored snapshot) grows, a new cut prunes the
        // old one, a restart truncates the open file to the newest cut.
        await t.more(40);
        await t.sm().snapshot();
        expect(fs.existsSync(path.join(t.dir, 'cuts', String(snap.index).padStart(20, '0')))).toBe(false);
        await t.more(10);
        await t.reopen();
        await t.more(5);
        await t.storage.close();
        const storage = await DurableStorage.open(t.raftDir, { logger: quiet });
        expect(storage.snapshotMeta()).toEqual(meta);
        expect(chunked(storage).equals(expectedBytes)).toBe(true);
        const fresh = await open({ fileBytesMax: 3000 });
        await fresh.restore(meta, storage.readSnapshot()!);
        expect(fresh.appliedIndex()).toBe(snap.index);
        expect(fresh.readAll({ limit: 4096 })).toEqual(reference);
        // The restored store continues the log exactly like the source.
        for (const entry of t.log.slice(snap.index)) fresh.apply(entry);
        expect(fresh.readAll({ limit: 4096 })).toEqual(t.sm().readAll({ limit: 4096 }));
        await storage.close();
      });

      it('restart from the stored snapshot: a store behind it restores from the linked parts', async () => {
        const t = await setup({ cutsKept: 3 });
        await t.more(20);
        const cut1 = await t.sm().snapshot();
        await t.more(20);
        const cut2 = await t.sm().snapshot();
        const meta = { index: cut2.index, term: 1, config };
        await t.storage.saveSnapshot(meta, cut2.parts);
        const reference = t.sm().readAll({ limit: 4096 });
        await t.more(10);
        await t.sm().close();
        // The newest cut becomes unusable (replaced, not changed in place: the stored snapshot's links keep
        // the old files). The store falls back to the older cut, whose open-file length is shorter than the
        // stored snapshot's: it must not truncate the shared inode.
        const cut2Dir = path.join(t.dir, 'cuts', String(cut2.index).padStart(20, '0'));
        fs.rmSync(path.join(cut2Dir, 'state.bin'));
        fs.writeFileSync(path.join(cut2Dir, 'state.bin'), 'garbage');
        const behind = await open({ cutsKept: 3 }, t.dir);
        expect(behind.appliedIndex()).toBe(cut1.index);
        await t.storage.close();
        const storage = await DurableStorage.open(t.raftDir, { logger: quiet });
        // What the node does at start when its state machine is behind its latest snapshot.
        expect(behind.appliedIndex()).toBeLessThan(storage.snapshotMeta().index);
        await behind.restore(storage.snapshotMeta(), storage.readSnapshot()!);
        expect(behind.appliedIndex()).toBe(cut2.index);
        expect(behind.readAll({ limit: 4096 })).toEqual(reference);
        await storage.close();
      });
    });

    it('positions stay gapless across repeated snapshot / restart cycles, and old cuts are pruned', async () => {
      const dir = tempDir();
      dirs.push(dir);
      const log: ReturnType<typeof appendEntry>[] = [];
      let sm = await open({ fileBytesMax: 1500, cutsKept: 2 }, dir);
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 12; i++) {
          const entry = appendEntry(log.length + 1, `s-${i % 3}`, [ev('E', { round, i })]);
          log.push(entry);
          sm.apply(entry);
        }
        if (round % 2 === 0) await sm.snapshot();
        await sm.close();
        sm = await open({ fileBytesMax: 1500, cutsKept: 2 }, dir);
        for (const entry of log.slice(sm.appliedIndex())) sm.apply(entry);
        expect(sm.readAll({ limit: 4096 }).events.map((e) => e.position)).toEqual(
          Array.from({ length: log.length }, (_, i) => i),
        );
      }
      expect(fs.readdirSync(path.join(dir, 'cuts')).length).toBeLessThanOrEqual(2);
    });
  });
});

describe('EventStoreStateMachine: the stream index changes kind across cuts and snapshots', () => {
  const kinds: [string, EventStoreOptions['streamIndex'], EventStoreOptions['streamIndex']][] = [
    ['memory → disk', { kind: 'memory' }, { kind: 'disk', memtableEntriesMax: 4 }],
    ['disk → memory', { kind: 'disk', memtableEntriesMax: 4 }, { kind: 'memory' }],
  ];
  it.each(kinds)(
    '%s: restart from a cut and restore of a snapshot keep every stream',
    async (_n, from, to) => {
      const dirs = [tempDir(), tempDir()];
      const a = await EventStoreStateMachine.open(dirs[0], { streamIndex: from });
      let index = 0;
      for (let i = 0; i < 60; i++)
        a.apply(appendEntry(++index, `s-${i % 7}`, [ev('E', { i }), ev('F', { i })]));
      const snap = await a.snapshot();
      const chunks: Uint8Array[] = [];
      for await (const c of snap.data) chunks.push(c);
      const streams = (sm: EventStoreStateMachine) =>
        Array.from({ length: 7 }, (_, k) => sm.readStream(`s-${k}`, { limit: 1000 }));
      const expected = streams(a);
      await a.close();
      const reopened = await EventStoreStateMachine.open(dirs[0], { streamIndex: to });
      const restored = await EventStoreStateMachine.open(dirs[1], { streamIndex: to });
      await restored.restore(
        { index: snap.index, term: 1, config: { voters: [], outgoing: [], learners: [], addresses: {} } },
        toAsync(chunks),
      );
      try {
        for (const sm of [reopened, restored]) {
          expect(streams(sm)).toEqual(expected);
          expect(sm.stats().streams).toBe(7);
          // Appends continue from the right revisions.
          const r = sm.apply(
            appendEntry(++index, 's-3', [ev('G')], expected[3]!.lastRevision),
          ) as AppendResult;
          expect(r).toMatchObject({ ok: true, firstRevision: expected[3]!.lastRevision + 1 });
          index--;
        }
      } finally {
        await reopened.close();
        await restored.close();
        for (const d of dirs) removeDir(d);
      }
    },
  );
});

function countEvents(entry: { data: Uint8Array }): number {
  return Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength).readUInt32LE(
    2 + 8 + 1 + 24 + 2 + Buffer.from(entry.data).readUInt16LE(2 + 8 + 1 + 24),
  );
}

async function* toAsync(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const c of chunks) yield c;
}
