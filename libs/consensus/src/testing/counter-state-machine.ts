import { ConfigState, Entry, EntryType, SnapshotMeta, decodeConfig } from '../core/types';
import { hashString, mix32 } from './prng';

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** Keys the simulated clients write to; a small set so snapshots stay small and writes overwrite. */
export const KV_KEYS_MAX = 16;

/** A client write as it travels through the log: `w:<writeId>`. Its key is derived from the id. */
export function encodeWrite(writeId: number): Uint8Array {
  return textEncoder.encode(`w:${writeId}`);
}

export function decodeWrite(data: Uint8Array): number {
  const text = textDecoder.decode(data);
  if (!text.startsWith('w:'))
    throw new Error(`counter state machine: not a write command: ${JSON.stringify(text)}`);
  const id = Number(text.slice(2));
  if (!Number.isSafeInteger(id))
    throw new Error(`counter state machine: bad write id in ${JSON.stringify(text)}`);
  return id;
}

export function writeKey(writeId: number): string {
  return `k${writeId % KV_KEYS_MAX}`;
}

/** A short, readable identity of an entry: term, type and payload. Two entries are the same iff keys are equal. */
export function entryKey(e: Entry): string {
  switch (e.type) {
    case EntryType.Normal:
      return `${e.term}:${textDecoder.decode(e.data)}`;
    case EntryType.Noop:
      return `${e.term}:noop`;
    case EntryType.Config:
      return `${e.term}:config${configText(decodeConfig(e.data))}`;
    default:
      return `${e.term}:type${String(e.type)}`;
  }
}

export function configText(c: ConfigState): string {
  const out = c.outgoing.length > 0 ? ` out=[${c.outgoing.join(',')}]` : '';
  const learners = c.learners.length > 0 ? ` learners=[${c.learners.join(',')}]` : '';
  return `{voters=[${c.voters.join(',')}]${out}${learners}}`;
}

interface SnapshotBody {
  index: number;
  term: number;
  count: number;
  digest: number;
  kv: Record<string, number>;
}

/**
 * The replicated application of the simulator: a counter of applied writes and a small KV map
 * (key -> last write id). `digest` folds every applied entry (index, term, type, payload), so two
 * nodes with the same digest at the same index applied the same history. Snapshot bytes are its
 * serialized state.
 */
export class CounterStateMachine {
  appliedIndex = 0;
  appliedTerm = 0;
  /** Normal entries applied. */
  count = 0;
  digest = 0x12345678;
  kv = new Map<string, number>();
  /** The configuration as of appliedIndex. */
  config: ConfigState;

  constructor(config: ConfigState) {
    this.config = config;
  }

  /** Applies the next entry; the caller checks that indexes are contiguous. Returns the write id for writes. */
  apply(e: Entry, key: string): number | null {
    if (e.index !== this.appliedIndex + 1) {
      throw new Error(
        `counter state machine: applied index ${e.index} after ${this.appliedIndex} (must be contiguous)`,
      );
    }
    this.appliedIndex = e.index;
    this.appliedTerm = e.term;
    this.digest = mix32(this.digest ^ hashString(key) ^ Math.imul(e.index, 0x9e3779b1));
    if (e.type === EntryType.Config) {
      this.config = decodeConfig(e.data);
      return null;
    }
    if (e.type !== EntryType.Normal) return null;
    const writeId = decodeWrite(e.data);
    this.count++;
    this.kv.set(writeKey(writeId), writeId);
    return writeId;
  }

  serialize(): Uint8Array {
    const body: SnapshotBody = {
      index: this.appliedIndex,
      term: this.appliedTerm,
      count: this.count,
      digest: this.digest,
      kv: Object.fromEntries([...this.kv.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    };
    return textEncoder.encode(JSON.stringify(body));
  }

  /** Rebuilds the state from snapshot bytes; throws if the bytes do not describe `meta`. */
  static restore(meta: SnapshotMeta, bytes: Uint8Array): CounterStateMachine {
    let body: SnapshotBody;
    try {
      body = JSON.parse(textDecoder.decode(bytes)) as SnapshotBody;
    } catch (err) {
      throw new Error(
        `counter state machine: snapshot at ${meta.index} has unreadable bytes (${bytes.byteLength} B): ${String(err)}`,
      );
    }
    if (body.index !== meta.index || body.term !== meta.term) {
      throw new Error(
        `counter state machine: snapshot bytes are for ${body.index}/${body.term} but meta says ${meta.index}/${meta.term}`,
      );
    }
    const sm = new CounterStateMachine(meta.config);
    sm.appliedIndex = body.index;
    sm.appliedTerm = body.term;
    sm.count = body.count;
    sm.digest = body.digest;
    sm.kv = new Map(Object.entries(body.kv));
    return sm;
  }
}
