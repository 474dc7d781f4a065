import { ConfigState, NodeId } from './types';

/**
 * Majority arithmetic over a configuration. A decision (election, commit, ReadIndex, check-quorum) needs a
 * majority of `voters` and, in joint consensus, also a majority of `outgoing`. Learners never count.
 */

export type VoteResult = 'won' | 'lost' | 'pending';

/** The largest value v such that a majority of `ids` report a value ≥ v. An empty set agrees to anything. */
export function majorityValue(ids: readonly NodeId[], valueOf: (id: NodeId) => number): number {
  if (ids.length === 0) return Number.POSITIVE_INFINITY;
  const values = ids.map(valueOf).sort((a, b) => b - a);
  return values[Math.floor(ids.length / 2)];
}

/** The largest value acknowledged by the configuration's quorum (0 when it has no voters). */
export function quorumValue(config: ConfigState, valueOf: (id: NodeId) => number): number {
  if (config.voters.length === 0) return 0;
  return Math.min(majorityValue(config.voters, valueOf), majorityValue(config.outgoing, valueOf));
}

export function majorityVote(ids: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (ids.length === 0) return 'won';
  let granted = 0;
  let rejected = 0;
  for (const id of ids) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  const quorum = Math.floor(ids.length / 2) + 1;
  if (granted >= quorum) return 'won';
  if (rejected > ids.length - quorum) return 'lost';
  return 'pending';
}

export function quorumVote(config: ConfigState, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (config.voters.length === 0) return 'lost';
  const a = majorityVote(config.voters, votes);
  const b = majorityVote(config.outgoing, votes);
  if (a === 'lost' || b === 'lost') return 'lost';
  if (a === 'won' && b === 'won') return 'won';
  return 'pending';
}

/** True when the nodes for which `isActive` holds form a quorum of the configuration. */
export function hasQuorum(config: ConfigState, isActive: (id: NodeId) => boolean): boolean {
  const votes = new Map<NodeId, boolean>();
  for (const id of [...config.voters, ...config.outgoing]) votes.set(id, isActive(id));
  return quorumVote(config, votes) === 'won';
}
