import { Message } from '../core/messages';

/**
 * The last `capacity` events of a run, kept cheaply (references only) and formatted only when a run
 * fails or live tracing is on.
 */
export interface TraceRecord {
  timeMs: number;
  /** Free text, or a message being sent / delivered. */
  text?: string;
  message?: Message;
  verb?: 'send' | 'recv' | 'drop';
}

export class TraceRing {
  private readonly records: TraceRecord[] = [];
  private next = 0;
  private total = 0;

  constructor(
    readonly capacity: number,
    /** Live output (--trace): every record is printed as it happens. */
    private readonly live: ((line: string) => void) | null = null,
  ) {
    if (!(capacity > 0)) throw new Error(`TraceRing: capacity must be positive, got ${capacity}`);
  }

  note(timeMs: number, text: string): void {
    this.push({ timeMs, text });
  }

  message(timeMs: number, verb: 'send' | 'recv' | 'drop', message: Message): void {
    this.push({ timeMs, message, verb });
  }

  private push(r: TraceRecord): void {
    this.total++;
    if (this.records.length < this.capacity) this.records.push(r);
    else this.records[this.next] = r;
    this.next = (this.next + 1) % this.capacity;
    if (this.live) this.live(formatRecord(r));
  }

  /** The retained records, oldest first, formatted. */
  lines(): string[] {
    const n = this.records.length;
    const start = n < this.capacity ? 0 : this.next;
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(formatRecord(this.records[(start + i) % n]));
    if (this.total > n) out.unshift(`... ${this.total - n} earlier events not shown`);
    return out;
  }
}

export function formatRecord(r: TraceRecord): string {
  const t = r.timeMs.toFixed(1).padStart(8);
  if (r.message) return `${t}  ${r.verb} ${formatMessage(r.message)}`;
  return `${t}  ${r.text ?? ''}`;
}

export function formatMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case 'VoteRequest':
      return `${head}${m.preVote ? ' pre' : ''}${m.transfer ? ' transfer' : ''} last=${m.lastLogIndex}/${m.lastLogTerm}`;
    case 'VoteResponse':
      return `${head}${m.preVote ? ' pre' : ''} ${m.granted ? 'granted' : 'rejected'}`;
    case 'AppendRequest': {
      const ents = m.entries.length === 0 ? '' : ` ents=[${formatEntryRange(m.entries)}]`;
      return `${head} prev=${m.prevLogIndex}/${m.prevLogTerm}${ents} commit=${m.leaderCommit} seq=${m.seq}`;
    }
    case 'AppendResponse':
      return m.success
        ? `${head} ok match=${m.matchIndex} seq=${m.seq}`
        : `${head} reject conflict=${m.conflictIndex}/${m.conflictTerm} last=${m.lastLogIndex} seq=${m.seq}`;
    case 'SnapshotRequest':
      return `${head} snap=${m.meta.index}/${m.meta.term} off=${m.offset} len=${m.data.byteLength}${m.done ? ' done' : ''} seq=${m.seq}`;
    case 'SnapshotResponse':
      return `${head} snap=${m.index} next=${m.nextOffset}${m.installed ? ' installed' : ''} seq=${m.seq}`;
    case 'TimeoutNow':
      return head;
  }
}

function formatEntryRange(entries: { index: number; term: number }[]): string {
  if (entries.length <= 3) return entries.map((e) => `${e.index}/${e.term}`).join(',');
  const a = entries[0];
  const b = entries[entries.length - 1];
  return `${a.index}/${a.term}..${b.index}/${b.term} (${entries.length})`;
}
