import { AppendRequest, Message, SnapshotRequest } from '../messages';
import type { RaftCore } from '../raft';

export function stepFollower(r: RaftCore, m: Message): void {
  switch (m.type) {
    case 'AppendRequest':
      r.heardFromLeader(m.from);
      handleAppend(r, m);
      return;
    case 'SnapshotRequest':
      r.heardFromLeader(m.from);
      handleSnapshot(r, m);
      return;
    case 'TimeoutNow':
      if (!r.promotable()) {
        r.logLine(`ignored TimeoutNow from ${m.from}: not a voter`);
        return;
      }
      r.logLine(`received TimeoutNow from ${m.from} at term ${r.term}, campaigning`);
      r.startCampaign(true);
      return;
    default:
      return;
  }
}

/**
 * AppendEntries at the follower: check the previous entry, drop a conflicting suffix, append, learn the commit
 * index. The response goes out only after this Ready is durable. A rejection carries the fast-backup hint.
 */
export function handleAppend(r: RaftCore, m: AppendRequest): void {
  const committed = r.log.committed;
  let prev = m.prevLogIndex;
  let prevTerm: number | undefined = m.prevLogTerm;
  let entries = m.entries;
  if (entries.length > 0 && entries[0].index !== prev + 1) {
    r.logLine(
      `ignored a malformed AppendRequest from ${m.from}: first entry ${entries[0].index} after previous ${prev}`,
    );
    return;
  }
  if (prev < committed) {
    // Committed entries match every later leader's log (Leader Completeness): skip them.
    entries = entries.slice(Math.min(entries.length, committed - prev));
    prev = committed;
    prevTerm = r.log.term(committed);
  }
  const reply = (success: boolean, matchIndex: number, conflictTerm: number, conflictIndex: number) =>
    r.send(
      {
        type: 'AppendResponse',
        from: r.id,
        to: m.from,
        term: r.term,
        success,
        matchIndex,
        conflictTerm,
        conflictIndex,
        lastLogIndex: r.log.lastIndex(),
        seq: m.seq,
      },
      true,
    );
  if (r.log.term(prev) !== prevTerm) {
    const last = r.log.lastIndex();
    if (prev > last) {
      reply(false, 0, 0, last + 1);
    } else {
      const conflictTerm = r.log.term(prev) as number;
      reply(false, 0, conflictTerm, r.log.firstIndexOfTermAt(prev, committed + 1));
    }
    return;
  }
  const lastNew = prev + entries.length;
  let i = 0;
  while (i < entries.length && r.log.term(entries[i].index) === entries[i].term) i++;
  if (i < entries.length) r.appendToLog(entries.slice(i));
  r.log.commitTo(Math.min(m.leaderCommit, lastNew));
  reply(true, lastNew, 0, 0);
}

/**
 * A snapshot chunk at the follower. Chunks are accepted in order only; each one is persisted (Ready.snapshotChunk)
 * before the response with the next offset goes out. The last chunk installs the snapshot.
 */
export function handleSnapshot(r: RaftCore, m: SnapshotRequest): void {
  const meta = m.meta;
  const reply = (nextOffset: number, installed: boolean) =>
    r.send(
      {
        type: 'SnapshotResponse',
        from: r.id,
        to: m.from,
        term: r.term,
        index: meta.index,
        nextOffset,
        installed,
        seq: m.seq,
      },
      true,
    );
  if (meta.index <= r.log.committed) {
    reply(0, true);
    return;
  }
  if (r.log.term(meta.index) === meta.term) {
    // Our log already holds the snapshot's last entry: everything up to it matches the leader.
    r.log.commitTo(meta.index);
    r.incomingSnapshot = null;
    reply(0, true);
    return;
  }
  let inc = r.incomingSnapshot;
  if (!inc || inc.index !== meta.index || inc.term !== meta.term) {
    if (m.offset !== 0) {
      reply(0, false);
      return;
    }
    inc = { index: meta.index, term: meta.term, bytes: 0 };
    r.incomingSnapshot = inc;
  }
  if (m.offset !== inc.bytes || r.pendingChunk !== null) {
    reply(inc.bytes, false);
    return;
  }
  r.pendingChunk = { meta, offset: m.offset, data: m.data, done: m.done };
  inc.bytes += m.data.byteLength;
  if (!m.done) {
    reply(inc.bytes, false);
    return;
  }
  r.log.restore(meta);
  r.configs.reset(meta.index, meta.config);
  r.incomingSnapshot = null;
  r.logLine(`installing snapshot at index ${meta.index} term ${meta.term} from ${m.from}`);
  reply(inc.bytes, true);
}
