/**
 * A light Server-Sent Events reader for the benchmarks: counts `id:` lines (one per event) and keeps the
 * first and last id, without parsing the JSON envelopes. For `$all` (ids are consecutive positions) it also
 * counts gaps (an id more than one past the previous) and repeats (an id not past the previous).
 */
import * as http from 'node:http';

export class SseCounter {
  count = 0;
  lastId = -1;
  firstId = -1;
  /** Ids skipped between two delivered ids (positions never delivered), summed over the stream. */
  skipped = 0;
  /** Deliveries whose id was not past the previous one (duplicates or reordering). */
  repeats = 0;
  errorEvent: string | null = null;
  closed = false;
  connectedAt = 0;
  private partial = '';
  private req: http.ClientRequest | null = null;
  private waiters: { id: number; resolve: () => void }[] = [];

  private constructor(readonly url: string) {}

  /** Opens the subscription; resolves once the response headers arrived (status 200). */
  static open(url: string): Promise<SseCounter> {
    const s = new SseCounter(url);
    return new Promise((resolve, reject) => {
      s.req = http.get(url, { headers: { accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`bench: GET ${url} answered ${res.statusCode}`));
          return;
        }
        s.connectedAt = performance.now();
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => s.onData(chunk));
        res.on('close', () => (s.closed = true));
        resolve(s);
      });
      s.req.on('error', (err) => {
        s.closed = true;
        reject(err);
      });
    });
  }

  private onData(chunk: string): void {
    const text = this.partial + chunk;
    let i = 0;
    for (;;) {
      const j = text.indexOf('\n', i);
      if (j < 0) break;
      if (text.startsWith('id:', i)) {
        const id = Number(text.slice(i + 3, j));
        if (this.count === 0) this.firstId = id;
        else if (id <= this.lastId) this.repeats++;
        else this.skipped += id - this.lastId - 1;
        this.count++;
        this.lastId = id;
      } else if (text.startsWith('event: error', i)) {
        this.errorEvent = text.slice(i, Math.min(text.length, j + 300));
      }
      i = j + 1;
    }
    this.partial = text.slice(i);
    if (this.waiters.length > 0) {
      const ready = this.waiters.filter((w) => this.lastId >= w.id);
      this.waiters = this.waiters.filter((w) => this.lastId < w.id);
      for (const w of ready) w.resolve();
    }
  }

  /** Resolves when an event with id >= `id` has arrived; rejects after `timeoutMs` or if the stream closes. */
  waitFor(id: number, timeoutMs: number): Promise<number> {
    if (this.lastId >= id) return Promise.resolve(performance.now());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `bench: ${this.url}: id ${id} not seen within ${timeoutMs} ms (last ${this.lastId}, ${this.count} events${this.errorEvent ? `, ${this.errorEvent}` : ''})`,
            ),
          ),
        timeoutMs,
      );
      const closedPoll = setInterval(() => {
        if (this.closed) {
          clearTimeout(timer);
          clearInterval(closedPoll);
          reject(
            new Error(
              `bench: ${this.url} closed at id ${this.lastId}${this.errorEvent ? `: ${this.errorEvent}` : ''}`,
            ),
          );
        }
      }, 200);
      this.waiters.push({
        id,
        resolve: () => {
          clearTimeout(timer);
          clearInterval(closedPoll);
          resolve(performance.now());
        },
      });
    });
  }

  close(): void {
    this.req?.destroy();
    this.closed = true;
  }
}
