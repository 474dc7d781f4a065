import { EventStoreError } from './errors';
import { EventStoreLimits } from './limits';
import { EventFiles } from './storage/event-files';
import { StoredEvent } from './storage/record';
import { StreamLookup } from './storage/stream-index';
import {
  AllPage,
  EventEnvelope,
  ReadAllOptions,
  ReadDirection,
  ReadStreamOptions,
  StreamPage,
} from './types';

export interface ReaderLimits {
  limits: EventStoreLimits;
  readBytesMax: number;
  filteredScanEventsMax: number;
}

/** Chunk of positions a filtered backward read scans at once. */
const BACKWARD_SCAN_CHUNK_EVENTS = 4096;

function invalid(field: string, problem: string): EventStoreError {
  return new EventStoreError('invalid_request', `${field}: ${problem}`, [{ field, problem }]);
}

function checkLimit(limit: number | undefined, l: EventStoreLimits): number {
  if (limit === undefined) return l.readLimitDefault;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > l.readLimitMax)
    throw invalid('limit', `must be an integer in 1..${l.readLimitMax}`);
  return limit;
}

function checkFrom(from: number | undefined): number | undefined {
  if (from === undefined) return undefined;
  if (!Number.isSafeInteger(from) || from < 0) throw invalid('from', 'must be an integer >= 0');
  return from;
}

function checkDirection(d: ReadDirection | undefined): ReadDirection {
  if (d === undefined) return 'forward';
  if (d !== 'forward' && d !== 'backward') throw invalid('direction', "must be 'forward' or 'backward'");
  return d;
}

/** Serves reads from the event files with bounded memory: `limit` events and `readBytesMax` bytes per call. */
export class Reader {
  constructor(
    private readonly files: () => EventFiles,
    private readonly streams: () => StreamLookup,
    private readonly cfg: ReaderLimits,
  ) {}

  readStream(streamId: string, opts: ReadStreamOptions): StreamPage | null {
    const limit = checkLimit(opts.limit, this.cfg.limits);
    const direction = checkDirection(opts.direction);
    const fromOpt = checkFrom(opts.from);
    const index = this.streams();
    const last = index.lastRevision(streamId);
    if (last < 0) return null;
    const page = (events: EventEnvelope[], next: number | null): StreamPage => ({
      streamId,
      events,
      lastRevision: last,
      next,
    });
    if (direction === 'forward') {
      const from = fromOpt ?? 0;
      if (from > last) return page([], null);
      const to = Math.min(last, from + limit - 1);
      const positions = index.positions(streamId, from, to);
      const events = this.readPositions(positions);
      const lastRead = from + events.length - 1;
      return page(events, lastRead < last ? lastRead + 1 : null);
    }
    const start = Math.min(fromOpt ?? last, last);
    const lo = Math.max(0, start - limit + 1);
    const positions = index.positions(streamId, lo, start).reverse();
    const events = this.readPositions(positions);
    const lastRead = start - events.length + 1;
    return page(events, lastRead > 0 ? lastRead - 1 : null);
  }

  readAll(opts: ReadAllOptions): AllPage {
    const limit = checkLimit(opts.limit, this.cfg.limits);
    const direction = checkDirection(opts.direction);
    const fromOpt = checkFrom(opts.from);
    if (
      opts.types !== undefined &&
      (!Array.isArray(opts.types) || opts.types.some((t) => typeof t !== 'string'))
    ) {
      throw invalid('types', 'must be a list of event types');
    }
    if (opts.streamPrefix !== undefined && typeof opts.streamPrefix !== 'string')
      throw invalid('streamPrefix', 'must be a string');
    const files = this.files();
    const last = files.lastPosition();
    const types = opts.types && opts.types.length > 0 ? new Set(opts.types) : null;
    const prefix = opts.streamPrefix || null;
    const filtered = types !== null || prefix !== null;
    const matches = (e: StoredEvent) =>
      (types === null || types.has(e.type)) && (prefix === null || e.streamId.startsWith(prefix));
    if (direction === 'forward') {
      const from = fromOpt ?? 0;
      if (from > last) return { events: [], lastPosition: last, next: null };
      const scanTo = Math.min(last, from + (filtered ? this.cfg.filteredScanEventsMax : limit) - 1);
      const out: EventEnvelope[] = [];
      let bytes = 0;
      let stoppedAt = scanTo;
      files.scan(from, scanTo, (e) => {
        if (!filtered || matches(e)) {
          const size = e.byteLength;
          if (out.length > 0 && (out.length >= limit || bytes + size > this.cfg.readBytesMax)) {
            stoppedAt = e.position - 1;
            return false;
          }
          bytes += size;
          out.push(e.toEnvelope());
        }
        return true;
      });
      return { events: out, lastPosition: last, next: stoppedAt < last ? stoppedAt + 1 : null };
    }
    if (last < 0) return { events: [], lastPosition: last, next: null };
    const start = Math.min(fromOpt ?? last, last);
    const scanLo = Math.max(0, start - (filtered ? this.cfg.filteredScanEventsMax : limit) + 1);
    const out: EventEnvelope[] = [];
    let bytes = 0;
    let stoppedAt = scanLo;
    for (let hi = start; hi >= scanLo && stoppedAt === scanLo;) {
      const lo = Math.max(scanLo, hi - BACKWARD_SCAN_CHUNK_EVENTS + 1);
      const chunk: StoredEvent[] = [];
      files.scan(lo, hi, (e) => {
        if (!filtered || matches(e)) chunk.push(e);
        return true;
      });
      for (let i = chunk.length - 1; i >= 0; i--) {
        const size = chunk[i].byteLength;
        if (out.length > 0 && (out.length >= limit || bytes + size > this.cfg.readBytesMax)) {
          stoppedAt = chunk[i].position + 1;
          break;
        }
        bytes += size;
        out.push(chunk[i].toEnvelope());
      }
      hi = lo - 1;
    }
    return { events: out, lastPosition: last, next: stoppedAt > 0 ? stoppedAt - 1 : null };
  }

  /** Reads the events at these positions in the given order, stopping early at readBytesMax (at least one). */
  private readPositions(positions: number[]): EventEnvelope[] {
    const files = this.files();
    const out: EventEnvelope[] = [];
    let bytes = 0;
    // false once the byte budget is reached: the event that would pass it is left out (unless it is the first).
    const take = (e: StoredEvent): boolean => {
      const size = e.byteLength;
      if (out.length > 0 && bytes + size > this.cfg.readBytesMax) return false;
      bytes += size;
      out.push(e.toEnvelope());
      return true;
    };
    for (let i = 0; i < positions.length;) {
      // Coalesce runs of consecutive positions (either direction) into one sequential read.
      let j = i;
      const step = i + 1 < positions.length ? positions[i + 1] - positions[i] : 0;
      if (step === 1 || step === -1)
        while (j + 1 < positions.length && positions[j + 1] - positions[j] === step) j++;
      if (j === i) {
        if (!take(files.read(positions[i]))) return out;
      } else if (step === -1) {
        // Read forward in one pass, then taken newest first so the budget stops at the right event.
        const run: StoredEvent[] = [];
        files.scan(positions[j], positions[i], (e) => {
          run.push(e);
          return true;
        });
        for (let k = run.length - 1; k >= 0; k--) if (!take(run[k])) return out;
      } else {
        let stopped = false;
        files.scan(positions[i], positions[j], (e) => {
          if (take(e)) return true;
          stopped = true;
          return false;
        });
        if (stopped) return out;
      }
      i = j + 1;
    }
    return out;
  }
}
