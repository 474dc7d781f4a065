/**
 * Elections: starting a campaign (pre-vote first unless it is a leadership transfer), asking the voters,
 * counting the answers, and answering another node's (pre-)vote request.
 *
 * A pre-candidate asks at the term it would campaign for without changing its own; once a quorum grants
 * the pre-vote it becomes candidate (term + 1, votes for itself) and asks again. Real vote requests and
 * granted votes promise the persisted term and vote, so they go out after the Ready that makes them durable.
 * A candidate that wins before its own term is durable (alone) leads on the advance that makes it durable.
 * Which term rules apply before a vote request gets here (the removed-server and lease guard) is in
 * raft.ts's step; the role changes themselves (becomeX) are RaftCore's.
 *
 * Like the role modules, these functions work on the RaftCore's fields; they are pure.
 */
import { VoteRequest } from './messages';
import { quorumVote } from './quorum';
import type { RaftCore } from './raft';

/** Starts a (pre-)election; `transfer` skips pre-vote and bypasses the voters' lease guard. */
export function startCampaign(r: RaftCore, transfer: boolean): void {
  if (r.state === 'leader') return;
  if (!r.promotable()) {
    r.logLine(`cannot campaign at term ${r.term}: not a voter`);
    return;
  }
  if (r.opts.preVote && !transfer) r.becomePreCandidate();
  else r.becomeCandidate();
  pollAndRequestVotes(r, transfer);
}

/** Counts our own vote, then asks the other voters (or wins at once when alone). */
export function pollAndRequestVotes(r: RaftCore, transfer: boolean): void {
  const preVote = r.state === 'pre-candidate';
  r.votes = new Map([[r.id, true]]);
  if (tallyVotes(r)) return;
  const voteTerm = preVote ? r.term + 1 : r.term;
  const config = r.config();
  const lastLogIndex = r.log.lastIndex();
  const lastLogTerm = r.log.lastTerm();
  for (const to of new Set([...config.voters, ...config.outgoing])) {
    if (to === r.id) continue;
    const m: VoteRequest = {
      type: 'VoteRequest',
      from: r.id,
      to,
      term: voteTerm,
      preVote,
      lastLogIndex,
      lastLogTerm,
      transfer,
    };
    // A real vote request promises our persisted term and self-vote; a pre-vote promises nothing.
    r.send(m, !preVote);
  }
}

/** Acts on the votes counted so far; returns true if the election ended. */
export function tallyVotes(r: RaftCore): boolean {
  const result = quorumVote(r.config(), r.votes);
  if (result === 'pending') return false;
  if (result === 'lost') {
    r.logLine(`lost the ${r.state === 'pre-candidate' ? 'pre-vote' : 'election'} at term ${r.term}`);
    r.becomeFollower(r.term, null);
    return true;
  }
  if (r.state === 'pre-candidate') {
    r.becomeCandidate();
    pollAndRequestVotes(r, false);
  } else {
    r.becomeLeaderOnceDurable();
  }
  return true;
}

/** A (pre-)vote request of our term (step applied the term rules): grant or reject it. */
export function handleVoteRequest(r: RaftCore, m: VoteRequest): void {
  const canVote =
    r.vote === m.from || (r.vote === null && r.leaderId === null) || (m.preVote && m.term > r.term);
  const logOk =
    r.opts.unsafe?.voteWithoutLogCheck === true || r.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
  const granted = canVote && logOk;
  if (granted && !m.preVote) {
    r.vote = m.from;
    r.electionElapsed = 0;
  }
  r.logLine(
    `${granted ? 'granted' : 'rejected'} ${m.preVote ? 'pre-vote' : 'vote'} for ${m.from} at term ${m.term}`,
  );
  // A granted vote promises the persisted vote: it goes out after this Ready's hard state is durable.
  r.send(
    {
      type: 'VoteResponse',
      from: r.id,
      to: m.from,
      term: granted ? m.term : r.term,
      preVote: m.preVote,
      granted,
    },
    true,
  );
}
