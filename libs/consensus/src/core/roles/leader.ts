import { isJoint, isVoter, leaveJoint } from '../membership';
import { AppendResponse, Message, SnapshotResponse } from '../messages';
import { Progress } from '../progress';
import { hasQuorum, quorumValue } from '../quorum';
import type { RaftCore } from '../raft';
import { Entry, EntryType, encodeConfig } from '../types';

export function stepLeader(r: RaftCore, m: Message): void {
  switch (m.type) {
    case 'AppendResponse':
      handleAppendResponse(r, m);
      return;
    case 'SnapshotResponse':
      handleSnapshotResponse(r, m);
      return;
    default:
      return;
  }
}

export function tickLeader(r: RaftCore): void {
  r.heartbeatElapsed++;
  r.electionElapsed++;
  for (const pr of r.progress.values()) {
    pr.lastHeardTicks++;
    if (pr.snapshot?.inFlight) pr.snapshot.waitTicks++;
  }
  if (r.leadTransferee !== null && ++r.transferElapsed >= r.opts.electionTicks) {
    r.logLine(
      `aborted the leadership transfer to ${r.leadTransferee} at term ${r.term}: not done within the election timeout`,
    );
    r.leadTransferee = null;
  }
  if (r.electionElapsed >= r.opts.electionTicks) {
    r.electionElapsed = 0;
    if (r.opts.checkQuorum) {
      const active = hasQuorum(r.config(), (id) => id === r.id || r.progress.get(id)?.recentActive === true);
      for (const [id, pr] of r.progress) pr.recentActive = id === r.id;
      if (!active) {
        r.logLine(`stepped down at term ${r.term}: did not hear from a quorum within the election timeout`);
        r.becomeFollower(r.term, null);
        return;
      }
    }
  }
  if (r.heartbeatElapsed >= r.opts.heartbeatTicks) {
    r.heartbeatElapsed = 0;
    sendHeartbeats(r, r.nextSeq());
  }
}

/**
 * Appends one entry to the leader's log. It is replicated when the next Ready is taken, so that every entry
 * proposed in between travels in the same AppendRequests (the leader persists them in parallel).
 */
export function appendAsLeader(r: RaftCore, type: EntryType, data: Uint8Array): Entry {
  const e: Entry = { index: r.log.lastIndex() + 1, term: r.term, type, data };
  r.appendToLog([e]);
  r.uncommitted.add(e.index, data.byteLength);
  r.replicationPending = true;
  return e;
}

export function bcastAppend(r: RaftCore): void {
  for (const id of r.progress.keys()) if (id !== r.id) sendAppends(r, id);
}

/** After the commit index moved: tell every follower, even when there is nothing new to send. */
export function bcastCommit(r: RaftCore): void {
  for (const id of r.progress.keys()) {
    if (id === r.id) continue;
    maybeSendAppend(r, id, true);
    sendAppends(r, id);
  }
}

/** Sends as many AppendRequests as flow control allows (one while probing). */
export function sendAppends(r: RaftCore, to: string): void {
  const pr = r.progress.get(to);
  if (!pr) return;
  for (let i = 0; i < r.opts.inflightMsgsMax; i++) {
    if (!maybeSendAppend(r, to, false) || pr.state !== 'replicate') return;
  }
}

/** Sends one AppendRequest (or a snapshot chunk) if flow control allows; returns whether entries went out. */
export function maybeSendAppend(r: RaftCore, to: string, sendIfEmpty: boolean): boolean {
  const pr = r.progress.get(to);
  if (!pr || to === r.id || pr.isPaused()) return false;
  const last = r.log.lastIndex();
  if (pr.next > last + 1) pr.becomeProbe(last + 1);
  const prevIndex = pr.next - 1;
  const prevTerm = r.log.term(prevIndex);
  if (prevTerm === undefined || pr.next < r.log.firstIndex()) {
    sendSnapshotChunk(r, to, pr);
    return false;
  }
  const entries = r.log.entries(pr.next, last + 1, r.opts.msgBytesMax);
  if (entries.length === 0 && !sendIfEmpty) return false;
  const seq = r.nextSeq();
  r.send(
    {
      type: 'AppendRequest',
      from: r.id,
      to,
      term: r.term,
      prevLogIndex: prevIndex,
      prevLogTerm: prevTerm,
      entries,
      leaderCommit: r.log.committed,
      seq,
    },
    false,
  );
  if (entries.length > 0) pr.lastAppendSeq = seq;
  pr.sentAppend(
    entries.length > 0 ? entries[entries.length - 1].index : prevIndex,
    entries.length > 0,
    payloadBytes(entries),
  );
  return entries.length > 0;
}

function payloadBytes(entries: Entry[]): number {
  let n = 0;
  for (const e of entries) n += e.data.byteLength;
  return n;
}

/**
 * One heartbeat round with sequence number `seq` (ReadIndex rounds use it too). A heartbeat is an empty
 * AppendRequest at the follower's match index, carrying commit = min(match, commit).
 */
export function sendHeartbeats(r: RaftCore, seq: number): void {
  for (const [to, pr] of r.progress) {
    if (to === r.id) continue;
    let prevIndex = pr.match;
    let prevTerm = r.log.term(prevIndex);
    if (prevTerm === undefined) {
      prevIndex = 0;
      prevTerm = 0;
    }
    const leaderCommit = Math.min(prevIndex, r.log.committed);
    r.send(
      {
        type: 'AppendRequest',
        from: r.id,
        to,
        term: r.term,
        prevLogIndex: prevIndex,
        prevLogTerm: prevTerm,
        entries: [],
        leaderCommit,
        seq,
      },
      false,
    );
    if (pr.state === 'snapshot' && pr.snapshot) {
      // A chunk that was 'pending', or is lost (no answer within an election timeout), is (re)sent now.
      if (pr.snapshot.inFlight && pr.snapshot.waitTicks >= r.opts.electionTicks) pr.snapshot.inFlight = false;
      sendSnapshotChunk(r, to, pr);
    }
  }
}

export function sendTimeoutNow(r: RaftCore, to: string): void {
  r.leaseDisabled = true;
  r.logLine(`sent TimeoutNow to ${to} at term ${r.term}`);
  r.send({ type: 'TimeoutNow', from: r.id, to, term: r.term }, false);
}

function sendSnapshotChunk(r: RaftCore, to: string, pr: Progress): void {
  const meta = r.log.reader.snapshotMeta();
  if (meta.index === 0)
    throw new Error(`node ${r.id}: ${to} needs entry ${pr.next}, compacted, but there is no snapshot`);
  if (
    pr.state !== 'snapshot' ||
    !pr.snapshot ||
    pr.snapshot.meta.index !== meta.index ||
    pr.snapshot.meta.term !== meta.term
  ) {
    r.logLine(
      `sending snapshot at index ${meta.index} term ${meta.term} to ${to} (next ${pr.next}, first index ${r.log.firstIndex()})`,
    );
    pr.becomeSnapshot(meta);
  }
  const transfer = pr.snapshot;
  if (!transfer || transfer.inFlight) return;
  const chunk = r.log.reader.snapshotChunk(transfer.offset, r.opts.snapshotChunkBytes);
  if (chunk === 'pending') return;
  r.send(
    {
      type: 'SnapshotRequest',
      from: r.id,
      to,
      term: r.term,
      meta,
      offset: transfer.offset,
      data: chunk.data,
      done: chunk.done,
      seq: r.nextSeq(),
    },
    false,
  );
  transfer.inFlight = true;
  transfer.waitTicks = 0;
}

/** Every response at our term: the member is alive and acknowledged us as leader up to its seq. */
function noteResponse(r: RaftCore, pr: Progress, seq: number): void {
  pr.recentActive = true;
  pr.lastHeardTicks = 0;
  if (seq > pr.ackedSeq) {
    pr.ackedSeq = seq;
    r.confirmReads();
  }
}

function handleAppendResponse(r: RaftCore, m: AppendResponse): void {
  const pr = r.progress.get(m.from);
  if (!pr) return;
  noteResponse(r, pr, m.seq);
  if (!m.success) {
    // Only the first rejection of what was in flight counts: the probe it sends finds the follower's position.
    // Acting on every rejection restarted the pipeline once per stale answer; with many small messages in
    // flight on a reordering network, each restart's window drew several rejections in turn, and the
    // messages multiplied without bound (a simulator seed reached 5 million events in 4 virtual seconds).
    if (pr.state !== 'snapshot' && m.seq >= pr.rejectionsFromSeq) {
      pr.becomeProbe(fastBackupNext(r, m));
      pr.rejectionsFromSeq = r.seq + 1;
      sendAppends(r, m.from);
    }
    return;
  }
  if (pr.maybeUpdate(m.matchIndex)) {
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'replicate') pr.inflights.freeLE(pr.match);
    else if (pr.snapshot && pr.match >= pr.snapshot.meta.index) pr.becomeProbe(pr.match + 1);
    if (maybeCommit(r)) bcastCommit(r);
  } else if (pr.state === 'probe') {
    pr.probeSent = false;
  } else if (
    pr.state === 'replicate' &&
    m.seq > pr.lastAppendSeq &&
    pr.match < pr.next - 1 &&
    appendOverdue(r, pr, m.seq)
  ) {
    // Answered a message sent well after our last append, yet does not have it: that append was lost.
    r.logLine(`resending to ${m.from} from ${pr.match + 1}: entries up to ${pr.next - 1} were not received`);
    pr.becomeProbe(pr.match + 1);
  }
  if (r.state !== 'leader') return;
  sendAppends(r, m.from);
  if (r.leadTransferee === m.from && pr.match === r.log.lastIndex()) sendTimeoutNow(r, m.from);
}

/**
 * A heartbeat answer proves an append lost only if the heartbeat left an election timeout after it: heartbeats
 * and appends travel on different connections (and a big append waits behind others), so a heartbeat answer
 * overtaking an append still on its way is normal. Concluding loss sooner resends everything in flight while
 * the first copies are still queued, which doubled the leader's outbound queue under load.
 */
function appendOverdue(r: RaftCore, pr: Progress, answeredSeq: number): boolean {
  return r.sentTick(answeredSeq) - r.sentTick(pr.lastAppendSeq) >= r.opts.electionTicks;
}

/** Fast backup: the next index to try after a rejection, from the follower's conflict hint. */
export function fastBackupNext(r: RaftCore, m: AppendResponse): number {
  let next: number;
  if (m.conflictTerm === 0) {
    next = m.lastLogIndex + 1;
  } else {
    const found = r.log.lastIndexWithTermAtMost(m.conflictTerm, r.log.lastIndex());
    next = found && found.term === m.conflictTerm ? found.index + 1 : m.conflictIndex;
  }
  return Math.max(1, Math.min(next, m.lastLogIndex + 1));
}

function handleSnapshotResponse(r: RaftCore, m: SnapshotResponse): void {
  const pr = r.progress.get(m.from);
  if (!pr) return;
  noteResponse(r, pr, m.seq);
  if (m.installed) {
    const moved = pr.maybeUpdate(m.index);
    if (pr.state === 'snapshot') {
      r.logLine(`${m.from} installed the snapshot at index ${m.index}`);
      pr.becomeProbe(pr.match + 1);
    }
    if (moved && maybeCommit(r)) bcastCommit(r);
    if (r.state === 'leader') sendAppends(r, m.from);
    return;
  }
  const transfer = pr.snapshot;
  if (pr.state !== 'snapshot' || !transfer || transfer.meta.index !== m.index) return;
  transfer.inFlight = false;
  transfer.offset = Math.max(0, m.nextOffset);
  sendSnapshotChunk(r, m.from, pr);
}

/**
 * Commit rule: the highest index stored by a quorum, provided it is of the current term (entries of earlier
 * terms commit indirectly). The leader counts itself only up to its durable index.
 */
export function maybeCommit(r: RaftCore): boolean {
  const index = quorumValue(r.config(), (id) =>
    id === r.id ? r.log.stableIndex() : (r.progress.get(id)?.match ?? 0),
  );
  if (index <= r.log.committed || !Number.isFinite(index)) return false;
  if (r.log.term(index) !== r.term && !r.opts.unsafe?.commitPreviousTermByCount) return false;
  r.log.commitTo(index);
  afterCommit(r);
  return true;
}

function afterCommit(r: RaftCore): void {
  const committed = r.log.committed;
  r.uncommitted.releaseTo(committed);
  if (committed >= r.termStartIndex)
    for (const ctx of r.reads.takeWaitingForCommit()) r.serveRead(ctx, false);
  const config = r.config();
  if (r.configs.currentIndex() > committed) return;
  if (isJoint(config)) {
    const next = leaveJoint(config);
    const e = appendAsLeader(r, EntryType.Config, encodeConfig(next));
    r.logLine(
      `joint configuration committed; proposed C_new (voters [${next.voters.join(',')}]) at index ${e.index}`,
    );
  } else if (!isVoter(config, r.id)) {
    r.logLine(
      `stepped down at term ${r.term}: removed from the configuration committed at ${r.configs.currentIndex()}`,
    );
    r.becomeFollower(r.term, null);
  }
}
