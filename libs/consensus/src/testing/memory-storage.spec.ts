import { Ready } from '../core/ready';
import { EntryType, encodeConfig } from '../core/types';
import { configOf, entriesWithTerms } from './interaction';
import { MemoryStorage } from './memory-storage';

const ready = (over: Partial<Ready>): Ready => ({
  entries: [],
  messages: [],
  persistedMessages: [],
  committedEntries: [],
  readStates: [],
  failedReads: [],
  ...over,
});
const config = configOf(['n1', 'n2', 'n3']);

describe('MemoryStorage', () => {
  it('applies hard state and entries, truncating the log from the first entry at or below its end', () => {
    const st = new MemoryStorage();
    st.applyReady(
      ready({ hardState: { term: 2, vote: 'n1', commit: 0 }, entries: entriesWithTerms([1, 1, 1]) }),
    );
    st.applyReady(ready({ entries: entriesWithTerms([2], 2) }));
    expect([st.firstIndex(), st.lastIndex(), st.term(2), st.term(3)]).toEqual([1, 2, 2, undefined]);
    expect(st.hardState()).toEqual({ term: 2, vote: 'n1', commit: 0 });
  });

  it('compacts to a snapshot and serves its bytes in chunks', () => {
    const st = new MemoryStorage({ entries: entriesWithTerms([1, 1, 2, 2]) });
    const meta = st.compact(3, new TextEncoder().encode('abcdefg'), config);
    expect(meta).toEqual({ index: 3, term: 2, config });
    expect([st.firstIndex(), st.lastIndex(), st.term(3), st.term(2)]).toEqual([4, 4, 2, undefined]);
    expect(st.snapshotChunk(0, 4)).toEqual({ data: new TextEncoder().encode('abcd'), done: false });
    expect(st.snapshotChunk(4, 4)).toEqual({ data: new TextEncoder().encode('efg'), done: true });
  });

  it('stores snapshot chunks durably and installs the snapshot in place of the whole log', () => {
    const st = new MemoryStorage({ entries: entriesWithTerms([1, 1]) });
    const meta = { index: 9, term: 3, config };
    st.applyReady(ready({ snapshotChunk: { meta, offset: 0, data: new Uint8Array([1, 2]), done: false } }));
    expect(st.clone().initialState(config).partialSnapshot).toEqual({ index: 9, term: 3, bytes: 2 });
    st.applyReady(
      ready({ snapshotChunk: { meta, offset: 2, data: new Uint8Array([3]), done: true }, snapshot: meta }),
    );
    expect([st.firstIndex(), st.lastIndex(), st.term(9)]).toEqual([10, 9, 3]);
    expect(st.snapshotData()).toEqual(new Uint8Array([1, 2, 3]));
    expect(st.initialState(config).partialSnapshot).toBeUndefined();
  });

  it('initialState gives the latest configuration in the log, else the snapshot, else the bootstrap one', () => {
    const bootstrap = configOf(['n1']);
    expect(new MemoryStorage().initialState(bootstrap)).toMatchObject({
      config: bootstrap,
      bootstrapConfig: bootstrap,
    });
    const later = configOf(['n1', 'n2']);
    const withConfig = new MemoryStorage({
      entries: [
        ...entriesWithTerms([1]),
        { index: 2, term: 1, type: EntryType.Config, data: encodeConfig(later) },
      ],
    });
    expect(withConfig.initialState(bootstrap).config).toEqual(later);
    const snapshotted = new MemoryStorage({ snapshot: { index: 5, term: 1, config: later } });
    expect(snapshotted.initialState(bootstrap)).toMatchObject({ config: later });
    expect(snapshotted.initialState(bootstrap).bootstrapConfig).toBeUndefined();
  });

  it('a clone is an independent durable copy', () => {
    const st = new MemoryStorage({ entries: entriesWithTerms([1]) });
    const copy = st.clone();
    st.applyReady(ready({ entries: entriesWithTerms([1], 2) }));
    expect([st.lastIndex(), copy.lastIndex()]).toEqual([2, 1]);
  });

  it('refuses a gap in the log', () => {
    const st = new MemoryStorage();
    expect(() => st.applyReady(ready({ entries: entriesWithTerms([1], 3) }))).toThrow(/gap/);
  });
});
