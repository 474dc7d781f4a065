import { NodeId } from '../core/types';
import { Prng } from './prng';

/** How the simulated network misbehaves. Rates are probabilities per message; delays in virtual ms. */
export interface NetworkFaults {
  dropRate: number;
  duplicateRate: number;
  delayMsMin: number;
  delayMsMax: number;
  /** Some messages are held much longer (they arrive far out of order). */
  longDelayRate: number;
  longDelayMsMax: number;
}

export const RELIABLE_NETWORK: NetworkFaults = {
  dropRate: 0,
  duplicateRate: 0,
  delayMsMin: 1,
  delayMsMax: 5,
  longDelayRate: 0,
  longDelayMsMax: 0,
};

export interface NetworkStats {
  sent: number;
  dropped: number;
  duplicated: number;
  blocked: number;
}

/**
 * Decides the fate of each message: dropped, delayed (which reorders), duplicated, or blocked by a
 * partition. Partitions are a set of blocked directed links, so they can be symmetric or one-way.
 */
export class SimNetwork {
  private blockedLinks = new Set<string>();
  readonly stats: NetworkStats = { sent: 0, dropped: 0, duplicated: 0, blocked: 0 };

  constructor(
    private readonly prng: Prng,
    private faults: NetworkFaults,
  ) {
    assertFaults(faults);
  }

  setFaults(faults: NetworkFaults): void {
    assertFaults(faults);
    this.faults = faults;
  }

  /** Nodes in different groups cannot reach each other (both ways); nodes in no group are unaffected. */
  partition(groups: NodeId[][]): void {
    for (let a = 0; a < groups.length; a++) {
      for (let b = 0; b < groups.length; b++) {
        if (a === b) continue;
        for (const from of groups[a]) for (const to of groups[b]) this.blockedLinks.add(linkKey(from, to));
      }
    }
  }

  /** Messages from `from` to `to` are lost; the other direction still works. */
  blockOneWay(from: NodeId, to: NodeId): void {
    this.blockedLinks.add(linkKey(from, to));
  }

  /** Cuts a node off from everyone in `others`, both ways. */
  isolate(node: NodeId, others: NodeId[]): void {
    for (const o of others) {
      if (o === node) continue;
      this.blockedLinks.add(linkKey(node, o));
      this.blockedLinks.add(linkKey(o, node));
    }
  }

  heal(): void {
    this.blockedLinks.clear();
  }

  isPartitioned(): boolean {
    return this.blockedLinks.size > 0;
  }

  canReach(from: NodeId, to: NodeId): boolean {
    return !this.blockedLinks.has(linkKey(from, to));
  }

  describePartitions(): string {
    return [...this.blockedLinks].sort().join(' ');
  }

  /** Delivery delays in ms, one per copy that will arrive ([] = lost). */
  route(from: NodeId, to: NodeId): number[] {
    this.stats.sent++;
    if (!this.canReach(from, to)) {
      this.stats.blocked++;
      return [];
    }
    const f = this.faults;
    if (this.prng.chance(f.dropRate)) {
      this.stats.dropped++;
      return [];
    }
    const first = this.delay();
    if (!this.prng.chance(f.duplicateRate)) return [first];
    this.stats.duplicated++;
    return [first, this.delay()];
  }

  private delay(): number {
    const f = this.faults;
    if (f.longDelayRate > 0 && this.prng.chance(f.longDelayRate))
      return this.prng.range(f.delayMsMax, f.longDelayMsMax);
    return this.prng.range(f.delayMsMin, f.delayMsMax);
  }
}

function linkKey(from: NodeId, to: NodeId): string {
  return `${from}>${to}`;
}

function assertFaults(f: NetworkFaults): void {
  const rates = [f.dropRate, f.duplicateRate, f.longDelayRate];
  if (rates.some((r) => !(r >= 0 && r <= 1)))
    throw new Error(`network faults: rates must be in [0, 1], got ${JSON.stringify(f)}`);
  if (!(f.delayMsMin >= 0 && f.delayMsMin <= f.delayMsMax))
    throw new Error(`network faults: need 0 <= delayMsMin <= delayMsMax, got ${JSON.stringify(f)}`);
  if (f.longDelayRate > 0 && !(f.longDelayMsMax >= f.delayMsMax))
    throw new Error(`network faults: longDelayMsMax must be >= delayMsMax, got ${JSON.stringify(f)}`);
}
