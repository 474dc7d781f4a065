import { RaftError } from '../core/ready';
import { NodeId } from '../core/types';
import { NodeError } from './api';

export function notLeaderError(self: NodeId, leaderId: NodeId | null, what: string): NodeError {
  if (leaderId && leaderId !== self) {
    return new NodeError(
      'not_leader',
      `node ${self} is not the leader (${what}); send it to leader ${leaderId}`,
      leaderId,
    );
  }
  return new NodeError(
    'unavailable',
    `node ${self} knows no leader (${what}): an election may be in progress; retry shortly`,
  );
}

/** Maps the core's expected failures to the node's closed list; anything else is a programmer error and is rethrown. */
export function toNodeError(e: unknown, self: NodeId, what: string): NodeError {
  if (e instanceof NodeError) return e;
  if (!(e instanceof RaftError)) throw e;
  switch (e.code) {
    case 'not_leader':
      return notLeaderError(self, e.leaderId, what);
    case 'leadership_lost':
      return new NodeError(
        'unavailable',
        `node ${self} lost leadership (${what}): ${e.message}; retry`,
        e.leaderId,
      );
    case 'transfer_in_progress':
      return new NodeError('unavailable', `node ${self} is handing leadership over (${what}); retry shortly`);
    case 'config_change_in_progress':
      return new NodeError(
        'conflict',
        `node ${self}: another membership change is in progress (${what}); retry after it completes`,
      );
    case 'overloaded':
      return new NodeError(
        'overloaded',
        `node ${self} is overloaded (${what}): ${e.message}; back off and retry`,
      );
    case 'invalid_request':
      return new NodeError('invalid_request', `node ${self} refused ${what}: ${e.message}`);
    case 'stopped':
      return new NodeError('stopped', `node ${self} is stopped (${what})`);
  }
}
