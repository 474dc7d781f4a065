/**
 * The leader's read path: linearizable reads without a log entry (ReadIndex), and lease reads.
 *
 * A read asks the leader for a read index. Until the leader has committed an entry of its own term (its
 * no-op) it does not know the latest commit, so the read waits for that first commit. Then the read takes the
 * current commit index and is released once a quorum has acknowledged a heartbeat round sent after it
 * (rounds are identified by the sequence numbers the followers echo). A lease read is released at once
 * while the leader's lease holds: a quorum acknowledged messages sent less than an election timeout (minus
 * the allowed clock drift) ago, so no other leader can exist yet. Released reads leave in the next Ready's
 * `readStates`; reads pending when leadership is lost fail in its `failedReads`.
 *
 * The queue of pending reads is ReadOnlyQueue (read-only.ts). Like the role modules, these functions work
 * on the RaftCore's fields; they are pure (no IO, timers or clock: time is the core's tick count).
 */
import { hasQuorum, quorumValue } from './quorum';
import type { RaftCore } from './raft';
import { RaftError } from './ready';
import { sendHeartbeats } from './roles/leader';

/** Leader: a ReadIndex request (the caller checked that this node leads). */
export function requestRead(r: RaftCore, ctx: string, lease: boolean): void {
  if (r.reads.full())
    throw new RaftError('overloaded', `node ${r.id}: too many reads pending; retry later`, r.id);
  if (r.log.committed < r.termStartIndex) {
    r.reads.waitForCommit(ctx);
    return;
  }
  serveRead(r, ctx, lease);
}

/** Leader: serve a read whose term-commit precondition holds. */
export function serveRead(r: RaftCore, ctx: string, lease: boolean): void {
  const alone = hasQuorum(r.config(), (id) => id === r.id);
  if (r.opts.unsafe?.readWithoutQuorum || alone || (lease && leaseValid(r))) {
    r.readStates.push({ ctx, index: r.log.committed });
    return;
  }
  r.reads.add(ctx, r.log.committed);
}

/** Leader: release reads whose heartbeat round a quorum acknowledged. */
export function confirmReads(r: RaftCore): void {
  const confirmed = quorumValue(r.config(), (id) =>
    id === r.id ? Number.POSITIVE_INFINITY : (r.progress.get(id)?.ackedSeq ?? 0),
  );
  if (confirmed > 0) r.readStates.push(...r.reads.confirm(confirmed));
}

/** Leader: a quorum acknowledged messages sent recently enough that no other leader can exist yet. */
export function leaseValid(r: RaftCore): boolean {
  if (!r.opts.leaseReads || r.leaseDisabled || r.log.committed < r.termStartIndex) return false;
  const ackTick = quorumValue(r.config(), (id) =>
    id === r.id ? r.now : r.sentTick(r.progress.get(id)?.ackedSeq ?? 0),
  );
  return r.now - ackTick < r.opts.electionTicks - r.opts.clockDriftTicksMax;
}

/** Taking a Ready: a leader sends one heartbeat round for the reads not yet in a round. */
export function startReadRound(r: RaftCore): void {
  if (r.state === 'leader' && r.reads.needsRound()) {
    const seq = r.nextSeq();
    r.reads.startRound(seq);
    sendHeartbeats(r, seq);
  }
}

/** Leadership lost: every read still waiting fails (the client retries on the new leader). */
export function failPendingReads(r: RaftCore): void {
  for (const ctx of r.reads.drain()) {
    r.failedReads.push({
      ctx,
      error: new RaftError(
        'leadership_lost',
        `node ${r.id} lost leadership at term ${r.term} before the read was confirmed; retry on the new leader`,
        r.leaderId,
      ),
    });
  }
}
