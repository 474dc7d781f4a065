import { Message } from '../messages';
import type { RaftCore } from '../raft';
import { handleAppend, handleSnapshot } from './follower';

/** Pre-candidate and candidate: count votes; a leader of our term makes us follow it. */
export function stepCandidate(r: RaftCore, m: Message): void {
  switch (m.type) {
    case 'AppendRequest':
      r.becomeFollower(r.term, m.from);
      r.heardFromLeader(m.from);
      handleAppend(r, m);
      return;
    case 'SnapshotRequest':
      r.becomeFollower(r.term, m.from);
      r.heardFromLeader(m.from);
      handleSnapshot(r, m);
      return;
    case 'VoteResponse': {
      const preCandidate = r.state === 'pre-candidate';
      if (m.preVote !== preCandidate) return;
      // Granted pre-votes carry the term we would campaign at; anything else is from an earlier round.
      if (preCandidate && m.granted && m.term !== r.term + 1) return;
      r.votes.set(m.from, m.granted);
      r.tallyVotes();
      return;
    }
    default:
      return;
  }
}
