import { NodeError } from './api';
import type { ProposalStages } from './metrics';

export interface ProposalOutcome {
  index: number;
  result: unknown;
}

interface Pending {
  term: number;
  deadlineMs: number;
  /** Clock readings (ms) of the proposal's stages; NaN until reached. */
  proposedMs: number;
  persistedMs: number;
  committedMs: number;
  resolve: (outcome: ProposalOutcome) => void;
  reject: (e: Error) => void;
}

/**
 * Proposals appended to the local log and waiting to be applied, by log index. A proposal is identified by
 * (index, term): it resolves only when the entry applied at its index has its term. Map insertion order is
 * deadline order (one timeout for all), so expiry stops at the first live proposal.
 */
export class PendingProposals {
  private readonly byIndex = new Map<number, Pending>();

  constructor(
    private readonly self: string,
    /** Called for each proposal applied with its term: where its time went. */
    private readonly onStages: ((stages: ProposalStages) => void) | null = null,
  ) {}

  get size(): number {
    return this.byIndex.size;
  }

  add(index: number, term: number, deadlineMs: number, nowMs = NaN): Promise<ProposalOutcome> {
    const old = this.byIndex.get(index);
    if (old) {
      // This node leads again and reuses the index: its own log replaced the old entry, which can never commit.
      this.byIndex.delete(index);
      old.reject(this.notCommitted(index, old.term, term));
    }
    return new Promise((resolve, reject) =>
      this.byIndex.set(index, {
        term,
        deadlineMs,
        proposedMs: nowMs,
        persistedMs: NaN,
        committedMs: NaN,
        resolve,
        reject,
      }),
    );
  }

  /**
   * The local log is durable up to `index`. Only the stage clocks move: a proposal still resolves only when
   * applied. Pending proposals are few (one per group-committed batch), and map order is index order but
   * for a re-proposed index, so the walk is short and never stops early on a mis-ordered entry.
   */
  markPersisted(index: number, nowMs: number): void {
    if (this.onStages === null) return;
    for (const [i, p] of this.byIndex) if (i <= index && Number.isNaN(p.persistedMs)) p.persistedMs = nowMs;
  }

  /** The node learned that the log is committed up to `index`. */
  markCommitted(index: number, nowMs: number): void {
    if (this.onStages === null) return;
    for (const [i, p] of this.byIndex) if (i <= index && Number.isNaN(p.committedMs)) p.committedMs = nowMs;
  }

  /** The entry at `index` with `term` was applied with `result`. */
  settle(index: number, term: number, result: unknown, nowMs = NaN): void {
    const p = this.byIndex.get(index);
    if (!p) return;
    this.byIndex.delete(index);
    if (p.term === term) {
      if (this.onStages !== null) this.reportStages(p, nowMs);
      p.resolve({ index, result });
    } else p.reject(this.notCommitted(index, p.term, term));
  }

  /** A snapshot replaced the log up to `index`: whether those proposals committed is unknown here. */
  abandonUpTo(index: number): void {
    for (const [i, p] of this.byIndex) {
      if (i > index) continue;
      this.byIndex.delete(i);
      p.reject(
        new NodeError(
          'timeout',
          `node ${this.self}: a snapshot up to ${index} replaced proposal ${i} before it was applied here; its outcome is unknown, retry`,
        ),
      );
    }
  }

  expire(nowMs: number): void {
    for (const [i, p] of this.byIndex) {
      if (p.deadlineMs > nowMs) break;
      this.byIndex.delete(i);
      p.reject(
        new NodeError(
          'timeout',
          `node ${this.self}: proposal at index ${i} was not applied in time; its outcome is unknown, retry`,
        ),
      );
    }
  }

  rejectAll(error: Error): void {
    const all = [...this.byIndex.values()];
    this.byIndex.clear();
    for (const p of all) p.reject(error);
  }

  /** Stages not seen (e.g. a follower's commit learned with the entries) count as zero-length. */
  private reportStages(p: Pending, appliedMs: number): void {
    if (Number.isNaN(appliedMs) || Number.isNaN(p.proposedMs)) return;
    const committed = Number.isNaN(p.committedMs) ? appliedMs : p.committedMs;
    const persisted = Number.isNaN(p.persistedMs) ? committed : Math.min(p.persistedMs, committed);
    this.onStages?.({
      persistMs: Math.max(0, persisted - p.proposedMs),
      quorumMs: Math.max(0, committed - persisted),
      applyMs: Math.max(0, appliedMs - committed),
    });
  }

  private notCommitted(index: number, term: number, committedTerm: number): NodeError {
    return new NodeError(
      'unavailable',
      `node ${this.self}: the proposal at index ${index} (term ${term}) was not committed — the entry at that index is from term ${committedTerm} (leadership changed); retry`,
    );
  }
}
