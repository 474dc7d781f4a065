import { ReadState } from './ready';

/** ReadIndex requests queued at the leader before they are answered or failed. */
export const READS_PENDING_MAX = 100_000;

interface PendingRead {
  ctx: string;
  /** The leader's commit index when the read arrived. */
  index: number;
  /** The heartbeat round that confirms it (0 = round not sent yet). */
  seq: number;
}

/**
 * The leader's ReadIndex queue. A read waits until the leader has committed an entry of its term, then
 * records the commit index and waits for a heartbeat round sent after it (identified by its sequence
 * number) to be acknowledged by a quorum.
 */
export class ReadOnlyQueue {
  /** Reads that arrived before the leader committed an entry of its term. */
  private waitingForCommit: string[] = [];
  /** In arrival order; `seq` is non-decreasing along the queue. */
  private pending: PendingRead[] = [];

  get size(): number {
    return this.waitingForCommit.length + this.pending.length;
  }

  full(): boolean {
    return this.size >= READS_PENDING_MAX;
  }

  waitForCommit(ctx: string): void {
    this.waitingForCommit.push(ctx);
  }

  /** The term's first commit happened: the waiting reads take `index` as their read index. */
  takeWaitingForCommit(): string[] {
    const ctxs = this.waitingForCommit;
    this.waitingForCommit = [];
    return ctxs;
  }

  add(ctx: string, index: number): void {
    this.pending.push({ ctx, index, seq: 0 });
  }

  /** True if some read awaits a heartbeat round. */
  needsRound(): boolean {
    return this.pending.length > 0 && this.pending[this.pending.length - 1].seq === 0;
  }

  /** Assigns the round `seq` to every read not yet in a round. */
  startRound(seq: number): void {
    for (let i = this.pending.length - 1; i >= 0 && this.pending[i].seq === 0; i--) this.pending[i].seq = seq;
  }

  /** Releases every read whose round was acknowledged by a quorum (round seq ≤ confirmedSeq). */
  confirm(confirmedSeq: number): ReadState[] {
    let n = 0;
    while (n < this.pending.length && this.pending[n].seq !== 0 && this.pending[n].seq <= confirmedSeq) n++;
    if (n === 0) return [];
    return this.pending.splice(0, n).map((r) => ({ ctx: r.ctx, index: r.index }));
  }

  /** Empties the queue (leadership lost); returns every ctx that was waiting. */
  drain(): string[] {
    const ctxs = [...this.waitingForCommit, ...this.pending.map((r) => r.ctx)];
    this.waitingForCommit = [];
    this.pending = [];
    return ctxs;
  }
}
