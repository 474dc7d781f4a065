import { MembershipChange } from './api';
import { RaftError } from './ready';
import { ConfigState, NodeId } from './types';

export function isVoter(config: ConfigState, id: NodeId): boolean {
  return config.voters.includes(id) || config.outgoing.includes(id);
}

export function isJoint(config: ConfigState): boolean {
  return config.outgoing.length > 0;
}

/** Every node that receives the log: voters (incoming and outgoing) and learners. */
export function members(config: ConfigState): NodeId[] {
  return [...new Set([...config.voters, ...config.outgoing, ...config.learners])];
}

function copy(config: ConfigState): ConfigState {
  return {
    voters: [...config.voters],
    outgoing: [...config.outgoing],
    learners: [...config.learners],
    addresses: { ...config.addresses },
  };
}

/**
 * The configuration a change leads to: adding or removing a learner is direct; promoting or removing a voter
 * enters joint consensus (voters = C_new, outgoing = C_old). Throws invalid_request for impossible changes.
 */
export function applyChange(config: ConfigState, change: MembershipChange): ConfigState {
  if (isJoint(config))
    throw new RaftError(
      'config_change_in_progress',
      'membership: the configuration is joint; wait until C_new is committed',
    );
  const next = copy(config);
  const id = change.id;
  switch (change.type) {
    case 'addLearner':
      if (members(config).includes(id))
        throw new RaftError('invalid_request', `membership: ${id} is already a member; remove it first`);
      next.learners.push(id);
      next.addresses[id] = change.address;
      return next;
    case 'promote':
      if (!config.learners.includes(id))
        throw new RaftError(
          'invalid_request',
          `membership: only a learner can be promoted, ${id} is not one; add it as a learner first`,
        );
      next.learners = next.learners.filter((x) => x !== id);
      next.outgoing = [...config.voters];
      next.voters.push(id);
      return next;
    case 'remove':
      if (config.learners.includes(id)) {
        next.learners = next.learners.filter((x) => x !== id);
        delete next.addresses[id];
        return next;
      }
      if (!config.voters.includes(id))
        throw new RaftError('invalid_request', `membership: ${id} is not a member`);
      if (config.voters.length === 1)
        throw new RaftError('invalid_request', `membership: cannot remove ${id}, the last voter`);
      next.outgoing = [...config.voters];
      next.voters = next.voters.filter((x) => x !== id);
      return next;
  }
}

/** C_new from C_old,new: drops the outgoing voters and the addresses of nodes no longer in the cluster. */
export function leaveJoint(config: ConfigState): ConfigState {
  const next = copy(config);
  next.outgoing = [];
  const keep = new Set(members(next));
  for (const id of Object.keys(next.addresses)) if (!keep.has(id)) delete next.addresses[id];
  return next;
}

/**
 * The configurations in the log, newest last. A server uses the latest one, committed or not; when a
 * conflicting append truncates a config entry, the previous one applies again. The first element is the
 * base (the snapshot's or the bootstrap configuration) and is never truncated.
 */
export class ConfigHistory {
  private readonly history: { index: number; config: ConfigState }[];

  constructor(baseIndex: number, base: ConfigState) {
    this.history = [{ index: baseIndex, config: base }];
  }

  current(): ConfigState {
    return this.history[this.history.length - 1].config;
  }

  /** The configuration in force at `index` (what a snapshot taken at `index` must record). */
  at(index: number): ConfigState {
    for (let i = this.history.length - 1; i > 0; i--)
      if (this.history[i].index <= index) return this.history[i].config;
    return this.history[0].config;
  }

  /** The configuration before the current one (null for the base). */
  previous(): ConfigState | null {
    return this.history.length > 1 ? this.history[this.history.length - 2].config : null;
  }

  /** Index of the entry holding the current configuration (the base's index for the base). */
  currentIndex(): number {
    return this.history[this.history.length - 1].index;
  }

  push(index: number, config: ConfigState): void {
    if (index <= this.currentIndex())
      throw new Error(`config history: config at ${index} is not after ${this.currentIndex()}`);
    this.history.push({ index, config });
  }

  /** The log was replaced from `index` on: forget configurations at or after it. */
  truncateFrom(index: number): boolean {
    let changed = false;
    while (this.history.length > 1 && this.history[this.history.length - 1].index >= index) {
      this.history.pop();
      changed = true;
    }
    return changed;
  }

  /** A snapshot replaced the log. */
  reset(index: number, config: ConfigState): void {
    this.history.length = 0;
    this.history.push({ index, config });
  }

  /** The log before `index` is gone: the latest configuration at or before it becomes the base. */
  compactTo(index: number): void {
    while (this.history.length > 1 && this.history[1].index <= index) this.history.shift();
  }
}
