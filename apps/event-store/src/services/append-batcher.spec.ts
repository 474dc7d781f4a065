import { EntryType } from '@app/consensus';
import {
  encodeCommand,
  EventStoreStateMachine,
  prepareAppend,
  DEFAULT_LIMITS,
  AppendResult,
  newEventId,
} from '@app/event-store';
import { ev, FIXED_NOW, removeDir, tempDir } from '@app/event-store/testing';
import { AppendBatcher } from './append-batcher';

function command(streamId: string, n = 1): Uint8Array {
  const events = Array.from({ length: n }, (_, i) => ev(`E${i}`, { i }));
  return encodeCommand(prepareAppend({ streamId, events }, DEFAULT_LIMITS, FIXED_NOW, newEventId));
}

describe('AppendBatcher', () => {
  let dir: string;
  let sm: EventStoreStateMachine;
  let index: number;
  let proposed: Uint8Array[];

  /** A stand-in for RaftNode.propose: applies at once to a real state machine. */
  const propose = async (bytes: Uint8Array) => {
    proposed.push(bytes);
    index++;
    return { index, result: sm.apply({ index, term: 1, type: EntryType.Normal, data: bytes }) };
  };

  beforeEach(async () => {
    dir = tempDir();
    sm = await EventStoreStateMachine.open(dir);
    index = 0;
    proposed = [];
  });

  afterEach(async () => {
    await sm.close();
    removeDir(dir);
  });

  it('proposes the commands submitted in one turn as one entry and gives each caller its own result', async () => {
    const b = new AppendBatcher(propose);
    const results = await Promise.all([
      b.submit(command('a')),
      b.submit(command('b', 3)),
      b.submit(command('a')),
    ]);
    expect(proposed).toHaveLength(1);
    expect(b.stats).toEqual({ entries: 1, commands: 3 });
    expect(
      results.map((r) => (r.ok ? [r.streamId, r.firstPosition, r.lastPosition, r.lastRevision] : r)),
    ).toEqual([
      ['a', 0, 0, 0],
      ['b', 1, 3, 2],
      ['a', 4, 4, 1],
    ]);
  });

  it('proposes a lone command as it is, and commands of later turns in later entries', async () => {
    const b = new AppendBatcher(propose);
    const lone = command('a');
    await b.submit(lone);
    expect(proposed).toEqual([lone]);
    await b.submit(command('a'));
    expect(proposed).toHaveLength(2);
  });

  it('starts a new batch when the byte or command cap would be passed', async () => {
    const one = command('a');
    const b = new AppendBatcher(propose, { batchBytesMax: one.length * 2, batchCommandsMax: 100 });
    await Promise.all([1, 2, 3, 4, 5].map(() => b.submit(command('a'))));
    expect(proposed).toHaveLength(3); // 2 + 2 + 1
    proposed = [];
    const c = new AppendBatcher(propose, { batchBytesMax: 1 << 20, batchCommandsMax: 3 });
    await Promise.all([1, 2, 3, 4, 5, 6, 7].map(() => c.submit(command('a'))));
    expect(proposed).toHaveLength(3); // 3 + 3 + 1
    expect(sm.lastPosition()).toBe(11);
  });

  it('rejects every caller of a batch whose proposal fails', async () => {
    const err = new Error('not the leader');
    const b = new AppendBatcher(() => Promise.reject(err));
    const all = [b.submit(command('a')), b.submit(command('b'))];
    for (const p of all) await expect(p).rejects.toBe(err);
  });

  it('turns a propose that throws synchronously into the rejection of every caller', async () => {
    const err = new Error('boom');
    const b = new AppendBatcher(() => {
      throw err;
    });
    for (const p of [b.submit(command('a')), b.submit(command('b'))]) await expect(p).rejects.toBe(err);
    await expect(b.submit(command('c'))).rejects.toBe(err);
  });

  it('gives each caller the single answer of a batch the state machine could not decode', async () => {
    const invalid: AppendResult = { ok: false, error: 'invalid_command', message: 'bad batch' };
    const b = new AppendBatcher(async () => ({ index: 1, result: invalid }));
    expect(await Promise.all([b.submit(command('a')), b.submit(command('b'))])).toEqual([invalid, invalid]);
  });
});
