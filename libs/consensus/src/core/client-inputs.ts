/**
 * The leader's client inputs: proposing an entry, proposing a membership change, and transferring
 * leadership. Each needs the leader and refuses (RaftError, for the shell to answer the client) while a
 * transfer is under way, when too many bytes are uncommitted, or while a configuration change is not
 * finished. ReadIndex requests are in read-index.ts.
 *
 * Like the role modules, these functions work on the RaftCore's fields; they are pure.
 */
import { MembershipChange } from './api';
import { applyChange, isJoint, isVoter } from './membership';
import { Progress } from './progress';
import type { RaftCore } from './raft';
import { RaftError } from './ready';
import { appendAsLeader, sendAppends, sendTimeoutNow } from './roles/leader';
import { EntryType, NodeId, encodeConfig } from './types';

/** Throws not_leader (naming the leader we know) unless this node leads. */
export function assertLeader(r: RaftCore, what: string): void {
  if (r.state !== 'leader') {
    throw new RaftError(
      'not_leader',
      `node ${r.id}: ${what} needs the leader; the leader is ${r.leaderId ?? 'unknown'}`,
      r.leaderId,
    );
  }
}

/** Appends a Normal entry carrying `data`. */
export function propose(r: RaftCore, data: Uint8Array): { index: number; term: number } {
  assertLeader(r, 'propose');
  if (r.leadTransferee !== null) {
    throw new RaftError(
      'transfer_in_progress',
      `node ${r.id}: leadership is being transferred to ${r.leadTransferee}; retry on the new leader`,
      r.id,
    );
  }
  if (r.uncommitted.bytes > 0 && r.uncommitted.bytes + data.byteLength > r.opts.uncommittedBytesMax) {
    throw new RaftError(
      'overloaded',
      `node ${r.id}: ${r.uncommitted.bytes} bytes are appended but not committed (max ${r.opts.uncommittedBytesMax}); retry later`,
      r.id,
    );
  }
  const e = appendAsLeader(r, EntryType.Normal, data);
  return { index: e.index, term: e.term };
}

/** Appends the Config entry of `change` (one change at a time: the previous one must be committed and final). */
export function changeMembership(r: RaftCore, change: MembershipChange): { index: number; term: number } {
  assertLeader(r, 'changeMembership');
  if (r.leadTransferee !== null) {
    throw new RaftError(
      'transfer_in_progress',
      `node ${r.id}: leadership is being transferred; retry on the new leader`,
      r.id,
    );
  }
  if (r.configs.currentIndex() > r.log.committed || isJoint(r.config())) {
    throw new RaftError(
      'config_change_in_progress',
      `node ${r.id}: the configuration change at ${r.configs.currentIndex()} is not finished; retry when it is committed`,
      r.id,
    );
  }
  const next = applyChange(r.config(), change);
  const e = appendAsLeader(r, EntryType.Config, encodeConfig(next));
  r.logLine(`proposed ${change.type} ${change.id} at index ${e.index}`);
  return { index: e.index, term: e.term };
}

/** Catches `to` (or the most caught-up voter) up, then sends it TimeoutNow (see roles/leader.ts). */
export function transferLeadership(r: RaftCore, to: NodeId | null): void {
  assertLeader(r, 'transferLeadership');
  const target = to ?? mostCaughtUpVoter(r);
  if (target === null)
    throw new RaftError('invalid_request', `node ${r.id}: no other voter to transfer leadership to`, r.id);
  if (target === r.id) return;
  if (!isVoter(r.config(), target) || !r.progress.has(target)) {
    throw new RaftError(
      'invalid_request',
      `node ${r.id}: cannot transfer leadership to ${target}, not a voter`,
      r.id,
    );
  }
  if (r.leadTransferee === target) return;
  r.leadTransferee = target;
  r.transferElapsed = 0;
  r.logLine(`transferring leadership to ${target} at term ${r.term}`);
  const pr = r.progress.get(target) as Progress;
  if (pr.match === r.log.lastIndex()) {
    sendTimeoutNow(r, target);
  } else {
    // The transfer is on a clock: (re)send from the target's match now rather than after the next heartbeat.
    if (pr.state !== 'snapshot') pr.becomeProbe(pr.match + 1);
    sendAppends(r, target);
  }
}

function mostCaughtUpVoter(r: RaftCore): NodeId | null {
  let best: NodeId | null = null;
  let bestMatch = -1;
  for (const [id, pr] of r.progress) {
    if (id === r.id || !isVoter(r.config(), id)) continue;
    if (pr.match > bestMatch) {
      best = id;
      bestMatch = pr.match;
    }
  }
  return best;
}
