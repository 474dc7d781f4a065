import { EntryType } from '@app/consensus';
import { encodeBatch, encodeCommand, isBatch, prepareAppend, splitBatch } from './command';
import { DEFAULT_LIMITS } from './limits';
import { EventStoreStateMachine } from './state-machine';
import { ev, FIXED_NOW, removeDir, tempDir, uuidOf } from './testing/fixtures';
import { AppendEventInput, AppendResult, ExpectedRevision } from './types';
import { newEventId } from './uuid';

jest.setTimeout(60_000);

function command(streamId: string, events: AppendEventInput[], expected: ExpectedRevision = 'any'): Buffer {
  return Buffer.from(
    encodeCommand(
      prepareAppend({ streamId, expectedRevision: expected, events }, DEFAULT_LIMITS, FIXED_NOW, newEventId),
    ),
  );
}

describe('batch commands', () => {
  const dirs: string[] = [];
  const stores: EventStoreStateMachine[] = [];

  async function open(): Promise<EventStoreStateMachine> {
    const dir = tempDir();
    dirs.push(dir);
    const sm = await EventStoreStateMachine.open(dir);
    stores.push(sm);
    return sm;
  }

  afterEach(async () => {
    for (const sm of stores.splice(0)) await sm.close();
    for (const d of dirs.splice(0)) removeDir(d);
  });

  it('encodes and splits back into the same commands', () => {
    const cmds = [command('a', [ev('A')]), command('b', [ev('B'), ev('C')]), command('a', [ev('D')])];
    const batch = encodeBatch(cmds);
    expect(isBatch(batch)).toBe(true);
    expect(isBatch(cmds[0])).toBe(false);
    const parts = splitBatch(batch);
    expect(parts.map((p) => Buffer.from(p).toString('hex'))).toEqual(cmds.map((c) => c.toString('hex')));
  });

  it('refuses malformed batches: fewer than two commands, truncated, a count that cannot fit, trailing bytes', () => {
    expect(() => encodeBatch([command('a', [ev('A')])])).toThrow(/at least 2/);
    const good = Buffer.from(encodeBatch([command('a', [ev('A')]), command('b', [ev('B')])]));
    expect(() => splitBatch(good.subarray(0, good.length - 1))).toThrow(/runs past the end/);
    const huge = Buffer.from(good);
    huge.writeUInt32LE(0xffffffff, 2);
    expect(() => splitBatch(huge)).toThrow(/does not fit/);
    expect(() => splitBatch(Buffer.concat([good, Buffer.from([0])]))).toThrow(/trailing/);
    const one = Buffer.from(good);
    one.writeUInt32LE(1, 2);
    expect(() => splitBatch(one)).toThrow(/does not fit/);
  });

  it('applies a batch exactly like the same commands as separate entries (results, positions, stored events)', async () => {
    const retried = [ev('Placed', { n: 1 }, uuidOf(1))];
    const cmds = [
      command('order-1', retried, 'no_stream'),
      command('order-1', [ev('Again', {}, uuidOf(2))], 'no_stream'), // loses: the stream exists by now
      command('order-2', [ev('Placed', { n: 2 }, uuidOf(3)), ev('Paid', {}, uuidOf(4))], 'any'),
      command('order-1', retried, 'no_stream'), // a retry of the first: the original result, nothing written
      command('order-1', [ev('Shipped', {}, uuidOf(5))], 0),
    ];
    const batched = await open();
    const separate = await open();
    const all = batched.apply({ index: 1, term: 1, type: EntryType.Normal, data: encodeBatch(cmds) });
    const one = cmds.map((c, i) =>
      separate.apply({ index: i + 1, term: 1, type: EntryType.Normal, data: c }),
    );
    expect(Array.isArray(all)).toBe(true);
    expect(all).toEqual(one);
    const results = all as AppendResult[];
    expect(
      results.map((r) => (r.ok ? `ok ${r.firstPosition}${r.duplicate ? ' dup' : ''}` : r.error)),
    ).toEqual(['ok 0', 'wrong_expected_revision', 'ok 1', 'ok 0 dup', 'ok 3']);
    expect(batched.appliedIndex()).toBe(1);
    const strip = (sm: EventStoreStateMachine) =>
      sm
        .readAll({ from: 0, limit: 100 })
        .events.map((e) => [e.position, e.streamId, e.revision, e.id, e.type]);
    expect(strip(batched)).toEqual(strip(separate));
    expect(strip(batched)).toHaveLength(4);
  });

  it('a malformed batch is a no-op with invalid_command; a malformed command inside a batch fails alone', async () => {
    const sm = await open();
    const good = Buffer.from(encodeBatch([command('a', [ev('A')]), command('b', [ev('B')])]));
    const broken = Buffer.from(good.subarray(0, good.length - 3));
    const r1 = sm.apply({ index: 1, term: 1, type: EntryType.Normal, data: broken }) as AppendResult;
    expect(r1).toMatchObject({ ok: false, error: 'invalid_command' });
    expect(sm.appliedIndex()).toBe(1);
    expect(sm.lastPosition()).toBe(-1);

    const bad = command('c', [ev('C')]);
    bad[0] = 99; // unknown command version
    const r2 = sm.apply({
      index: 2,
      term: 1,
      type: EntryType.Normal,
      data: encodeBatch([command('a', [ev('A')]), bad, command('b', [ev('B')])]),
    }) as AppendResult[];
    expect(r2.map((r) => (r.ok ? 'ok' : r.error))).toEqual(['ok', 'invalid_command', 'ok']);
    expect(sm.lastPosition()).toBe(1);
  });
});
