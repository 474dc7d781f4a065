import { EntryType, Entry, SnapshotMeta } from '../core/types';
import { StateMachine } from '../node/ports';

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** A command for the sum: the decimal amount to add, as UTF-8 text. */
export function sumCommand(amount: number): Uint8Array {
  return textEncoder.encode(String(amount));
}

interface SumState {
  value: number;
  appliedIndex: number;
  /** Indexes of the Normal entries applied, in order: lets tests compare nodes and spot double applies. */
  commandIndexes: number[];
}

/**
 * A tiny deterministic StateMachine for node tests: sums the amounts of Normal entries; `apply` returns the
 * new sum. Snapshots are JSON of the whole state, streamed in small chunks to exercise chunked transfer.
 * (The simulator's CounterStateMachine is a different, synchronous model.)
 */
export class SumStateMachine implements StateMachine {
  private state: SumState = { value: 0, appliedIndex: 0, commandIndexes: [] };
  readonly snapshotChunkBytes: number;
  restores = 0;

  constructor(opts: { snapshotChunkBytes?: number } = {}) {
    this.snapshotChunkBytes = opts.snapshotChunkBytes ?? 64;
  }

  get value(): number {
    return this.state.value;
  }

  get commandIndexes(): readonly number[] {
    return this.state.commandIndexes;
  }

  apply(entry: Entry): unknown {
    if (entry.index !== this.state.appliedIndex + 1) {
      throw new Error(
        `sum state machine: entry ${entry.index} applied after ${this.state.appliedIndex}; entries must be applied in order without gaps`,
      );
    }
    this.state.appliedIndex = entry.index;
    if (entry.type !== EntryType.Normal) return null;
    const amount = Number(textDecoder.decode(entry.data));
    if (!Number.isFinite(amount)) throw new Error(`sum state machine: entry ${entry.index} is not a number`);
    this.state.value += amount;
    this.state.commandIndexes.push(entry.index);
    return this.state.value;
  }

  appliedIndex(): number {
    return this.state.appliedIndex;
  }

  async snapshot(): Promise<{ index: number; data: AsyncIterable<Uint8Array> }> {
    const bytes = textEncoder.encode(JSON.stringify(this.state));
    const chunkBytes = this.snapshotChunkBytes;
    async function* chunks(): AsyncIterable<Uint8Array> {
      for (let offset = 0; offset < bytes.byteLength; offset += chunkBytes) {
        yield bytes.subarray(offset, Math.min(bytes.byteLength, offset + chunkBytes));
      }
    }
    return { index: this.state.appliedIndex, data: chunks() };
  }

  async restore(meta: SnapshotMeta, data: AsyncIterable<Uint8Array>): Promise<void> {
    const parts: Uint8Array[] = [];
    for await (const chunk of data) parts.push(chunk);
    const state = JSON.parse(textDecoder.decode(Buffer.concat(parts))) as SumState;
    if (state.appliedIndex !== meta.index) {
      throw new Error(
        `sum state machine: snapshot bytes are at index ${state.appliedIndex} but its meta says ${meta.index}`,
      );
    }
    this.state = state;
    this.restores++;
  }
}
