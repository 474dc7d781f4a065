import { NodeError } from './api';

export interface ProposalOutcome {
  index: number;
  result: unknown;
}

interface Pending {
  term: number;
  deadlineMs: number;
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

  constructor(private readonly self: string) {}

  get size(): number {
    return this.byIndex.size;
  }

  add(index: number, term: number, deadlineMs: number): Promise<ProposalOutcome> {
    const old = this.byIndex.get(index);
    if (old) {
      // This node leads again and reuses the index: its own log replaced the old entry, which can never commit.
      this.byIndex.delete(index);
      old.reject(this.notCommitted(index, old.term, term));
    }
    return new Promise((resolve, reject) => this.byIndex.set(index, { term, deadlineMs, resolve, reject }));
  }

  /** The entry at `index` with `term` was applied with `result`. */
  settle(index: number, term: number, result: unknown): void {
    const p = this.byIndex.get(index);
    if (!p) return;
    this.byIndex.delete(index);
    if (p.term === term) p.resolve({ index, result });
    else p.reject(this.notCommitted(index, p.term, term));
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

  private notCommitted(index: number, term: number, committedTerm: number): NodeError {
    return new NodeError(
      'unavailable',
      `node ${this.self}: the proposal at index ${index} (term ${term}) was not committed — the entry at that index is from term ${committedTerm} (leadership changed); retry`,
    );
  }
}
