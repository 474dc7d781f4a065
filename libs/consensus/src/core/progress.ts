import { PeerStatus } from './api';
import { SnapshotMeta } from './types';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/**
 * A bounded window of AppendRequests in flight to one follower, by the last index and payload bytes each
 * carried. Full at inflightMsgsMax messages or once inflightBytesMax bytes are out (the message that crosses
 * the byte bound is still sent: an empty window always admits one, whatever its size).
 */
export class Inflights {
  private readonly lastIndexes: number[] = [];
  private readonly sizes: number[] = [];
  private totalBytes = 0;

  constructor(
    readonly inflightMsgsMax: number,
    readonly inflightBytesMax: number = Number.POSITIVE_INFINITY,
  ) {
    if (!(inflightMsgsMax >= 1)) throw new Error(`inflightMsgsMax must be ≥ 1, got ${inflightMsgsMax}`);
    if (!(inflightBytesMax >= 1)) throw new Error(`inflightBytesMax must be ≥ 1, got ${inflightBytesMax}`);
  }

  get count(): number {
    return this.lastIndexes.length;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  full(): boolean {
    return this.lastIndexes.length >= this.inflightMsgsMax || this.totalBytes >= this.inflightBytesMax;
  }

  add(lastIndex: number, bytes: number): void {
    if (this.full())
      throw new Error(
        `inflights: adding index ${lastIndex} to a full window (${this.count} messages, ${this.totalBytes} bytes)`,
      );
    this.lastIndexes.push(lastIndex);
    this.sizes.push(bytes);
    this.totalBytes += bytes;
  }

  /** Frees every message whose entries are all acknowledged (last index ≤ index). */
  freeLE(index: number): void {
    let n = 0;
    while (n < this.lastIndexes.length && this.lastIndexes[n] <= index) this.totalBytes -= this.sizes[n++];
    this.lastIndexes.splice(0, n);
    this.sizes.splice(0, n);
    if (this.lastIndexes.length === 0) this.totalBytes = 0;
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizes.length = 0;
    this.totalBytes = 0;
  }
}

export interface SnapshotTransfer {
  meta: SnapshotMeta;
  /** Byte offset of the next chunk to send. */
  offset: number;
  inFlight: boolean;
  /** Ticks since the chunk in flight was sent (a lost chunk is resent after an election timeout). */
  waitTicks: number;
}

/**
 * The leader's view of one member. Invariant: 0 ≤ match < next.
 * probe: one AppendRequest at a time until the follower's log position is known;
 * replicate: pipelined AppendRequests, bounded by `inflights`;
 * snapshot: sending snapshot chunks, one in flight; no AppendRequests.
 */
export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** probe: an AppendRequest is out; wait for a response or the next heartbeat response. */
  probeSent = false;
  readonly inflights: Inflights;
  /** Heard from within the current check-quorum window. */
  recentActive = false;
  lastHeardTicks = 0;
  /** Highest message sequence number this member echoed in this term (ReadIndex, leases). */
  ackedSeq = 0;
  /** Sequence number of the last AppendRequest carrying entries (detects lost appends). */
  lastAppendSeq = 0;
  /**
   * Rejections of messages sent before this sequence number are stale: the last rejection acted on restarted
   * replication from the follower's position after all of them had been sent.
   */
  rejectionsFromSeq = 0;
  snapshot: SnapshotTransfer | null = null;

  constructor(next: number, inflightMsgsMax: number, inflightBytesMax?: number) {
    this.next = next;
    this.inflights = new Inflights(inflightMsgsMax, inflightBytesMax);
  }

  becomeProbe(next: number): void {
    this.state = 'probe';
    this.next = Math.max(next, this.match + 1);
    this.probeSent = false;
    this.inflights.reset();
    this.snapshot = null;
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.inflights.reset();
    this.snapshot = null;
  }

  becomeSnapshot(meta: SnapshotMeta): void {
    this.state = 'snapshot';
    this.inflights.reset();
    this.snapshot = { meta, offset: 0, inFlight: false, waitTicks: 0 };
  }

  /** Raises match on an acknowledgement; returns whether it moved. */
  maybeUpdate(index: number): boolean {
    const updated = index > this.match;
    if (updated) this.match = index;
    if (this.next < index + 1) this.next = index + 1;
    return updated;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  /** Records an AppendRequest sent with entries up to `lastIndex` and `bytes` of payload (none: lastIndex = next - 1). */
  sentAppend(lastIndex: number, withEntries: boolean, bytes: number): void {
    if (this.state === 'replicate' && withEntries) {
      this.next = lastIndex + 1;
      this.inflights.add(lastIndex, bytes);
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  status(): PeerStatus {
    return { match: this.match, next: this.next, state: this.state, lastHeardTicks: this.lastHeardTicks };
  }
}
