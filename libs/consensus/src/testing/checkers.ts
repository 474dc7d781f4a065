import { Entry, NodeId } from '../core/types';
import { entryKey } from './counter-state-machine';

export type InvariantName =
  | 'ElectionSafety'
  | 'LogMatching'
  | 'LeaderCompleteness'
  | 'StateMachineSafety'
  | 'CommitMonotonic'
  | 'AckedWriteLost'
  | 'ReadLinearizability'
  | 'PersistBeforeAck'
  | 'StaleAck'
  | 'Liveness'
  /** A node fail-stopped (RaftNode.fail) although the simulated disk never fails: the shell broke a contract. */
  | 'NodeFailed'
  | 'CoreContract';

/** A broken invariant: which one, and what exactly was seen. */
export class Violation extends Error {
  constructor(
    readonly invariant: InvariantName,
    readonly detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = 'Violation';
  }
}

/** What an entry at (index, term) is: its content and the term of the entry before it. */
interface EntryFact {
  key: string;
  prevTerm: number | undefined;
  node: NodeId;
}

/**
 * Whole-cluster safety checkers (Raft paper, Figure 3). They keep a global registry of what every
 * node has said or done, so a single contradiction anywhere, at any time, is a violation:
 * - Election Safety: at most one leader per term;
 * - Log Matching: an (index, term) pair always names the same entry with the same predecessor term
 *   (by induction: two logs that agree on (index, term) agree on everything before it);
 * - Leader Completeness: a new leader's log holds every entry committed so far;
 * - State Machine Safety: every node applies the same entry at an index, and reaches the same
 *   state digest there (snapshots included).
 */
export class ClusterChecker {
  private leaderOfTerm = new Map<number, NodeId>();
  private facts = new Map<string, EntryFact>();
  /** index -> key of the committed entry (sparse). */
  private committedKey: string[] = [];
  private committedTerm: number[] = [];
  /** The term in which each index was first seen committed (the committing leader's term, or later). */
  private committedInTerm: number[] = [];
  private committedBy: NodeId[] = [];
  /** The highest index known committed anywhere. */
  maxCommitted = 0;
  /** index -> state digest after applying it. */
  private digestAt: number[] = [];
  private digestBy: NodeId[] = [];
  counts = { leaders: 0, committedEntries: 0 };

  observeLeader(term: number, id: NodeId): void {
    const known = this.leaderOfTerm.get(term);
    if (known === undefined) {
      this.leaderOfTerm.set(term, id);
      this.counts.leaders++;
      return;
    }
    if (known !== id)
      throw new Violation('ElectionSafety', `two leaders in term ${term}: ${known} and ${id}`);
  }

  leaderOf(term: number): NodeId | undefined {
    return this.leaderOfTerm.get(term);
  }

  /** Entries a node now has at their indexes; `prevTerm(e.index - 1)` reads that node's log. */
  observeEntries(
    node: NodeId,
    entries: readonly Entry[],
    termAt: (index: number) => number | undefined,
  ): void {
    for (const e of entries) {
      const id = `${e.index}/${e.term}`;
      const key = entryKey(e);
      const prevTerm = termAt(e.index - 1);
      const known = this.facts.get(id);
      if (known === undefined) {
        this.facts.set(id, { key, prevTerm, node });
        continue;
      }
      if (known.key !== key) {
        throw new Violation(
          'LogMatching',
          `entry ${id} is ${JSON.stringify(known.key)} on ${known.node} but ${JSON.stringify(key)} on ${node}`,
        );
      }
      if (known.prevTerm !== undefined && prevTerm !== undefined && known.prevTerm !== prevTerm) {
        throw new Violation(
          'LogMatching',
          `entry ${id} follows term ${known.prevTerm} at ${e.index - 1} on ${known.node} but term ${prevTerm} on ${node}: logs agree at ${id} yet differ before it`,
        );
      }
      if (known.prevTerm === undefined && prevTerm !== undefined) known.prevTerm = prevTerm;
    }
  }

  /**
   * `node` holds `entry` as committed (its commit index covers it); `inTerm` is the node's current term, the
   * committing leader's term when the leader reports it (it always learns of a commit first).
   */
  observeCommitted(node: NodeId, entry: Entry, inTerm: number): void {
    const i = entry.index;
    const key = entryKey(entry);
    const known = this.committedKey[i];
    if (known === undefined) {
      this.committedKey[i] = key;
      this.committedTerm[i] = entry.term;
      this.committedInTerm[i] = inTerm;
      this.committedBy[i] = node;
      this.counts.committedEntries++;
      if (i > this.maxCommitted) this.maxCommitted = i;
      return;
    }
    if (known !== key) {
      throw new Violation(
        'StateMachineSafety',
        `index ${i} committed as ${JSON.stringify(known)} on ${this.committedBy[i]} but as ${JSON.stringify(key)} on ${node}`,
      );
    }
  }

  committedKeyAt(index: number): string | undefined {
    return this.committedKey[index];
  }

  /** The digest of a node's state machine after applying `index` (or restoring a snapshot at it). */
  observeDigest(node: NodeId, index: number, digest: number, how: string): void {
    const known = this.digestAt[index];
    if (known === undefined) {
      this.digestAt[index] = digest;
      this.digestBy[index] = node;
      return;
    }
    if (known !== digest) {
      throw new Violation(
        'StateMachineSafety',
        `state after index ${index} differs: digest ${known.toString(16)} on ${this.digestBy[index]}, ${digest.toString(16)} on ${node} (${how})`,
      );
    }
  }

  /**
   * Leader Completeness as the paper states it: an entry committed in a term is in the log of every leader of
   * a higher term. (A leader of a lower term can still be elected after it, by votes delivered late; it
   * need not hold entries committed in later terms, and can never commit anything over them.) `termAt`
   * reads its log; entries at or below `coveredIndex` are inside its snapshot (checked by the digests).
   */
  checkLeaderCompleteness(
    node: NodeId,
    term: number,
    coveredIndex: number,
    lastIndex: number,
    termAt: (index: number) => number | undefined,
  ): void {
    for (let i = coveredIndex + 1; i <= this.maxCommitted; i++) {
      const want = this.committedTerm[i];
      if (want === undefined || !(this.committedInTerm[i] < term)) continue;
      const have = i <= lastIndex ? termAt(i) : undefined;
      if (have !== want) {
        throw new Violation(
          'LeaderCompleteness',
          `${node} became leader of term ${term} with ${have === undefined ? `log ending at ${lastIndex}` : `term ${have}`} at index ${i}, but ${this.committedKey[i]} was committed there in term ${this.committedInTerm[i]} (seen on ${this.committedBy[i]})`,
        );
      }
    }
  }
}
