import { ConfigState } from '../core/types';

/**
 * The configuration as of each applied index, for snapshot metadata ("the config as of `index`").
 * Holds the configuration in force at `base` plus every configuration entry applied after it.
 * Invariant: indexes strictly increase.
 */
export class AppliedConfigs {
  private list: { index: number; config: ConfigState }[];

  constructor(baseIndex: number, baseConfig: ConfigState) {
    this.list = [{ index: baseIndex, config: baseConfig }];
  }

  record(index: number, config: ConfigState): void {
    const last = this.list[this.list.length - 1];
    if (index <= last.index)
      throw new Error(`applied configs: config at ${index} recorded after one at ${last.index}`);
    this.list.push({ index, config });
  }

  /** The configuration in force once `index` is applied. */
  at(index: number): ConfigState {
    if (index < this.list[0].index) {
      throw new Error(
        `applied configs: index ${index} is before the oldest tracked configuration (${this.list[0].index})`,
      );
    }
    for (let i = this.list.length - 1; i >= 0; i--)
      if (this.list[i].index <= index) return this.list[i].config;
    return this.list[0].config;
  }

  latest(): ConfigState {
    return this.list[this.list.length - 1].config;
  }

  /** After a snapshot install: everything before is replaced. */
  reset(index: number, config: ConfigState): void {
    this.list = [{ index, config }];
  }

  /** Forgets configurations no snapshot at or after `index` can need. */
  pruneBefore(index: number): void {
    let keepFrom = 0;
    for (let i = 0; i < this.list.length; i++) if (this.list[i].index <= index) keepFrom = i;
    if (keepFrom > 0) this.list = this.list.slice(keepFrom);
  }
}

export function isEmptyConfig(c: ConfigState): boolean {
  return c.voters.length === 0 && c.learners.length === 0 && c.outgoing.length === 0;
}
