import { Observable, Subject } from 'rxjs';
import { Entry, SnapshotMeta } from '../../consensus/src/core/types';
import { StateMachine } from '../../consensus/src/node/ports';
import { EventStoreLimits } from './limits';
import { Logger } from './logger';
import { ProjectionEngine } from './projections/engine';
import {
  AllPage,
  AppendedBatch,
  AppendResult,
  EventEnvelope,
  ReadAllOptions,
  ReadStreamOptions,
  StreamPage,
  SubscribeOptions,
  SubscriptionTarget,
} from './types';

export interface EventStoreOptions {
  /** Projections fed on apply (default: the built-ins only). */
  projections?: ProjectionEngine;
  limits?: Partial<EventStoreLimits>;
  logger?: Logger;
  /** Storage sizing (see STORAGE_DEFAULTS); idempotencyWindowEvents must be the same on every node. */
  fileBytesMax?: number;
  idempotencyWindowEvents?: number;
  recentCacheEvents?: number;
}

/** A live subscription: history then live, no gap, no duplicate. `close()` ends it (the iterator returns). */
export interface EventSubscription extends AsyncIterableIterator<EventEnvelope> {
  close(): void;
}

export class EventStoreStateMachine implements StateMachine {
  /** Every applied append (positions), for live notification. */
  readonly appended$: Observable<AppendedBatch>;
  readonly projections: ProjectionEngine;
  private readonly appendedSubject = new Subject<AppendedBatch>();

  private constructor(projections: ProjectionEngine) {
    this.appended$ = this.appendedSubject.asObservable();
    this.projections = projections;
  }

  /** Opens (or creates) the store in `dir`: loads the latest local cut, drops event data past it. */
  static async open(dir: string, opts: EventStoreOptions = {}): Promise<EventStoreStateMachine> {
    void dir;
    return new EventStoreStateMachine(opts.projections ?? new ProjectionEngine([]));
  }

  apply(entry: Entry): AppendResult | undefined {
    void entry;
    throw new Error('not implemented');
  }

  appliedIndex(): number {
    throw new Error('not implemented');
  }

  /** Position of the last stored event, -1 when empty. */
  lastPosition(): number {
    throw new Error('not implemented');
  }

  /** Last revision of a stream, -1 when it does not exist. */
  streamRevision(streamId: string): number {
    void streamId;
    throw new Error('not implemented');
  }

  async snapshot(): Promise<{ index: number; data: AsyncIterable<Uint8Array> }> {
    throw new Error('not implemented');
  }

  async restore(meta: SnapshotMeta, data: AsyncIterable<Uint8Array>): Promise<void> {
    void meta;
    void data;
    throw new Error('not implemented');
  }

  /** null when the stream does not exist. */
  readStream(streamId: string, opts: ReadStreamOptions = {}): StreamPage | null {
    void streamId;
    void opts;
    throw new Error('not implemented');
  }

  readAll(opts: ReadAllOptions = {}): AllPage {
    void opts;
    throw new Error('not implemented');
  }

  subscribe(target: SubscriptionTarget, opts: SubscribeOptions = {}): EventSubscription {
    void target;
    void opts;
    throw new Error('not implemented');
  }

  async close(): Promise<void> {
    this.appendedSubject.complete();
  }
}
