import { AppendResult, encodeBatch } from '@app/event-store';
import { AppendStages } from './append-stages';

/** Proposes one command through Raft; resolves with the state machine's result once applied. */
export type ProposeFn = (command: Uint8Array) => Promise<{ index: number; result: unknown }>;

export interface AppendBatcherLimits {
  /** A batch is proposed once its commands reach this many bytes (a larger command goes alone). */
  batchBytesMax: number;
  /** ... or this many commands. */
  batchCommandsMax: number;
}

export const APPEND_BATCH_DEFAULTS: AppendBatcherLimits = {
  batchBytesMax: 256 * 1024,
  batchCommandsMax: 1024,
};

interface Waiting {
  bytes: Uint8Array;
  /** performance.now() when submitted. */
  queuedMs: number;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit for appends: the append commands submitted in one event-loop turn (typically many
 * concurrent HTTP requests read in one poll) become ONE Raft entry (a batch command, see encodeBatch),
 * proposed when the turn ends (setImmediate). The state machine applies the commands of a batch one after
 * the other, exactly as separate entries, and returns one result per command; each caller gets its own.
 * A batch shares one fate: refused, timed out (unknown) or applied together, which is what separate
 * entries proposed in the same turn would see anyway. A lone command is proposed as it is.
 */
export class AppendBatcher {
  /** Raft entries proposed and the append commands they carried (commands / entries = the batching). */
  readonly stats = { entries: 0, commands: 0 };
  private queue: Waiting[] = [];
  private queuedBytes = 0;
  private scheduled = false;

  constructor(
    private readonly propose: ProposeFn,
    private readonly limits: AppendBatcherLimits = APPEND_BATCH_DEFAULTS,
    /** Per batch: how long its oldest command waited to be proposed, and proposed until the result was back. */
    private readonly stages: AppendStages | null = null,
  ) {}

  /** Resolves with this command's result once its entry is applied; rejects with the proposal's error. */
  submit(command: Uint8Array): Promise<AppendResult> {
    return new Promise<AppendResult>((resolve, reject) => {
      if (
        this.queue.length > 0 &&
        (this.queuedBytes + command.length > this.limits.batchBytesMax ||
          this.queue.length >= this.limits.batchCommandsMax)
      ) {
        this.flush();
      }
      this.queue.push({ bytes: command, queuedMs: performance.now(), resolve, reject });
      this.queuedBytes += command.length;
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    });
  }

  /** flush() runs from setImmediate: a synchronous throw must become the callers' rejection, not a crash. */
  private proposeSafely(bytes: Uint8Array): Promise<{ index: number; result: unknown }> {
    try {
      return this.propose(bytes);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Proposes what is queued now. */
  flush(): void {
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    this.queuedBytes = 0;
    this.stats.entries++;
    this.stats.commands += batch.length;
    const stages = this.stages;
    const proposedMs = performance.now();
    stages?.observe('batch', proposedMs - batch[0].queuedMs);
    if (batch.length === 1) {
      const w = batch[0];
      this.proposeSafely(w.bytes).then((r) => {
        stages?.observe('commit', performance.now() - proposedMs);
        w.resolve(r.result as AppendResult);
      }, w.reject);
      return;
    }
    let bytes: Uint8Array;
    try {
      bytes = encodeBatch(batch.map((w) => w.bytes));
    } catch (e) {
      for (const w of batch) w.reject(e);
      return;
    }
    this.proposeSafely(bytes).then(
      (r) => {
        stages?.observe('commit', performance.now() - proposedMs);
        const results = r.result;
        for (let i = 0; i < batch.length; i++) {
          // A batch the state machine could not decode answers once for all (invalid_command).
          const one = Array.isArray(results)
            ? (results[i] as AppendResult | undefined)
            : (results as AppendResult);
          if (one === undefined)
            batch[i].reject(new Error(`append batch of ${batch.length} applied with ${String(results)}`));
          else batch[i].resolve(one);
        }
      },
      (e: unknown) => {
        for (const w of batch) w.reject(e);
      },
    );
  }
}
