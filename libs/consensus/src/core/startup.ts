import { RaftLog } from './log';
import { ConfigHistory } from './membership';
import { RaftOptions } from './options';
import { ConfigState, Entry, EntryType, InitialState, decodeConfig } from './types';

/** Entries read per step when scanning the log backwards for configuration entries at start-up. */
const CONFIG_SCAN_ENTRIES = 512;

export function validateOptions(o: RaftOptions): void {
  const fail = (what: string) => {
    throw new Error(`RaftOptions for ${o.id}: ${what}`);
  };
  if (!o.id) fail('id is empty');
  if (!(Number.isInteger(o.heartbeatTicks) && o.heartbeatTicks >= 1))
    fail(`heartbeatTicks must be an integer ≥ 1, got ${o.heartbeatTicks}`);
  if (!(Number.isInteger(o.electionTicks) && o.electionTicks > o.heartbeatTicks))
    fail(`electionTicks (${o.electionTicks}) must be an integer > heartbeatTicks (${o.heartbeatTicks})`);
  if (!(o.inflightMsgsMax >= 1)) fail(`inflightMsgsMax must be ≥ 1, got ${o.inflightMsgsMax}`);
  if (!(o.msgBytesMax >= 1)) fail(`msgBytesMax must be ≥ 1, got ${o.msgBytesMax}`);
  if (o.inflightBytesMax !== undefined && !(o.inflightBytesMax >= o.msgBytesMax)) {
    fail(`inflightBytesMax (${o.inflightBytesMax}) must be ≥ msgBytesMax (${o.msgBytesMax})`);
  }
  if (o.committedBytesPerReadyMax !== undefined && !(o.committedBytesPerReadyMax >= 1))
    fail(`committedBytesPerReadyMax must be ≥ 1, got ${o.committedBytesPerReadyMax}`);
  if (
    o.committedEntriesPerReadyMax !== undefined &&
    !(Number.isInteger(o.committedEntriesPerReadyMax) && o.committedEntriesPerReadyMax >= 1)
  ) {
    fail(`committedEntriesPerReadyMax must be an integer ≥ 1, got ${o.committedEntriesPerReadyMax}`);
  }
  if (!(o.snapshotChunkBytes >= 1)) fail(`snapshotChunkBytes must be ≥ 1, got ${o.snapshotChunkBytes}`);
  if (!(o.clockDriftTicksMax >= 0 && o.clockDriftTicksMax < o.electionTicks))
    fail(`clockDriftTicksMax (${o.clockDriftTicksMax}) must be in [0, electionTicks)`);
}

/**
 * The configuration history at start-up: the base (snapshot, or bootstrap) plus the config entries of the log
 * back to the newest committed one (older ones can never become current again). Entries up to the snapshot are
 * not read: the snapshot's configuration covers them (a log kept long behind a snapshot is not rescanned).
 */
export function loadConfigs(log: RaftLog, initial: InitialState): ConfigHistory {
  const snap = log.snapshotMeta();
  const found: { index: number; config: ConfigState }[] = [];
  let hi = log.lastIndex() + 1;
  const first = Math.max(log.firstIndex(), snap.index + 1);
  while (hi > first) {
    const lo = Math.max(first, hi - CONFIG_SCAN_ENTRIES);
    let cursor = lo;
    const chunk: Entry[] = [];
    while (cursor < hi) {
      const part = log.entries(cursor, hi, Number.MAX_SAFE_INTEGER);
      chunk.push(...part);
      cursor = part[part.length - 1].index + 1;
    }
    for (let i = chunk.length - 1; i >= 0; i--) {
      if (chunk[i].type === EntryType.Config)
        found.push({ index: chunk[i].index, config: decodeConfig(chunk[i].data) });
    }
    if (found.length > 0 && found[found.length - 1].index <= log.committed) break;
    hi = lo;
  }
  found.reverse();
  let history: ConfigHistory;
  if (snap.index > 0) history = new ConfigHistory(snap.index, snap.config);
  else if (found.length === 0 || found[0].index > log.committed)
    history = new ConfigHistory(0, initial.bootstrapConfig ?? initial.config);
  else history = new ConfigHistory(found[0].index, found.shift()?.config as ConfigState);
  for (const f of found) if (f.index > history.currentIndex()) history.push(f.index, f.config);
  return history;
}
