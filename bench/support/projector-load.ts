/**
 * Load for bench/projector.ts: the fill (Debian's wrk with bench/projector-fill.lua: 100-event batches over a
 * few thousand streams, some of them `order-<n>`), and a fixed-rate Node appender for the end-to-end lag
 * phase (a light, steady rate plus single-event probes whose acknowledgement times are recorded).
 */
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as path from 'node:path';
import { repoRoot, sleep } from './bench-run';
import { percentile } from './report';
import { spawnWrk, WrkResult } from './wrk';

export const fillLua = path.join(repoRoot, 'bench', 'projector-fill.lua');

export interface FillRun {
  url: string;
  connections: number;
  eventsPerRequest: number;
  eventBytes: number;
  /** `bench-<n>` streams. */
  streams: number;
  /** Every orderEvery-th request goes to one of `orderStreams` `order-<n>` streams. */
  orderEvery: number;
  orderStreams: number;
  /** wrk stops after this many 201 answers. */
  requests: number;
  timeoutS?: number;
}

/** One wrk thread running bench/projector-fill.lua until `requests` 201s (then SIGINT: wrk reports at once). */
export async function runFillWrk(run: FillRun): Promise<WrkResult> {
  const args = [
    '-t',
    '1',
    '-c',
    String(run.connections),
    '-d',
    '36000s',
    '--timeout',
    `${run.timeoutS ?? 60}s`,
    '-s',
    fillLua,
    run.url,
    '--',
    randomBytes(4).toString('hex'),
    String(run.eventsPerRequest),
    String(run.eventBytes),
    String(run.streams),
    String(run.requests),
    String(run.orderEvery),
    String(run.orderStreams),
  ];
  return spawnWrk('wrk-fill', args, 1, true);
}

/** Unique event ids: RUN-0000-4000-8000-<12 hex digits of a counter>, as bench/append.lua makes them. */
class Ids {
  private readonly prefix = `${randomBytes(4).toString('hex')}-0000-4000-8000-`;
  private n = 0;
  next(): string {
    return this.prefix + (this.n++).toString(16).padStart(12, '0');
  }
}

/** A JSON append body of `n` ~`bytes`-byte events (the same shapes as bench/projector-fill.lua). */
function batchBody(ids: Ids, n: number, bytes: number, order: boolean, counter: number): string {
  const parts: string[] = [];
  for (let i = 1; i <= n; i++) {
    const id = ids.next();
    const sku = `sku-${(counter + i) % 5}`;
    let type = 'ItemAdded';
    let data: Record<string, unknown> = { sku, quantity: ((counter + i) % 3) + 1, unitPrice: 9.25 };
    if (!order) data = {};
    else if (i === 1) {
      type = 'OrderPlaced';
      data = { customerId: `c-${counter % 997}`, items: [{ sku, quantity: 1, unitPrice: 12.5 }] };
    } else if (i === n) {
      type = 'OrderShipped';
      data = {};
    }
    const without = JSON.stringify({ id, type, data: { ...data, pad: '' } });
    parts.push(
      JSON.stringify({ id, type, data: { ...data, pad: 'x'.repeat(Math.max(0, bytes - without.length)) } }),
    );
  }
  return `{"expectedRevision":"any","events":[${parts.join(',')}]}`;
}

export interface Probe {
  stream: string;
  position: number;
  sentAt: number;
  /** performance.now() when the 201 arrived. */
  ackAt: number;
}

export interface RateLoadOptions {
  /** The leader's base URL. */
  url: string;
  requestsPerS: number;
  eventsPerRequest: number;
  eventBytes: number;
  streams: number;
  orderEvery: number;
  probesPerS: number;
  durationS: number;
}

export interface RateLoadResult {
  seconds: number;
  requestsOk: number;
  requestsFailed: number;
  eventsOk: number;
  /** Sends that left more than 50 ms after their slot (the generator fell behind). */
  late: number;
  ackP50Ms: number;
  ackP99Ms: number;
  probes: Probe[];
  probeFailures: number;
  errors: string[];
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function post(url: string, body: string, timeoutMs = 30_000): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(body);
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`POST ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * Appends at a fixed rate: `requestsPerS` requests of `eventsPerRequest` events (every `orderEvery`-th to an
 * `order-<n>` stream) plus `probesPerS` single-event appends to fresh `probe-<run>-<n>` streams, each on its
 * own schedule (slots at t0 + i/rate; a late slot is sent at once, not skipped). Requests do not wait for each
 * other (open loop), so a slow answer does not lower the offered rate.
 */
export class RateLoad {
  private readonly ids = new Ids();
  private readonly run = randomBytes(3).toString('hex');
  private stopped = false;
  readonly probes: Probe[] = [];
  probeFailures = 0;
  private probeSeq = 0;
  private readonly errors: string[] = [];

  constructor(private readonly opts: RateLoadOptions) {}

  /** A probe now (also used before the window, to warm the consumers up). */
  async probe(): Promise<Probe | null> {
    const stream = `probe-${this.run}-${this.probeSeq++}`;
    const body = `{"events":[{"id":"${this.ids.next()}","type":"Probe","data":{"probe":true}}]}`;
    const sentAt = performance.now();
    try {
      const r = await post(`${this.opts.url}/streams/${stream}/events`, body);
      const ackAt = performance.now();
      if (r.status !== 201) throw new Error(`probe answered ${r.status}: ${r.text.slice(0, 200)}`);
      const position = (JSON.parse(r.text) as { lastPosition: number }).lastPosition;
      return { stream, position, sentAt, ackAt };
    } catch (err) {
      this.probeFailures++;
      this.note((err as Error).message);
      return null;
    }
  }

  private note(m: string): void {
    if (this.errors.length < 5) this.errors.push(m);
  }

  async runFor(): Promise<RateLoadResult> {
    const o = this.opts;
    const acks: number[] = [];
    let ok = 0;
    let failed = 0;
    let late = 0;
    const inFlight = new Set<Promise<void>>();
    const track = (p: Promise<void>) => {
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    };
    const t0 = performance.now();
    const end = t0 + o.durationS * 1000;
    let nextLoad = 0;
    let nextProbe = 0;
    const loadGap = 1000 / o.requestsPerS;
    const probeGap = o.probesPerS > 0 ? 1000 / o.probesPerS : Infinity;
    while (!this.stopped) {
      const now = performance.now();
      if (now >= end) break;
      while (t0 + nextLoad * loadGap <= now && t0 + nextLoad * loadGap < end) {
        if (now - (t0 + nextLoad * loadGap) > 50) late++;
        const i = nextLoad++;
        const order = o.orderEvery > 0 && i % o.orderEvery === 0;
        const stream = order ? `order-lag-${i % 500}` : `load-${i % o.streams}`;
        const body = batchBody(this.ids, o.eventsPerRequest, o.eventBytes, order, i);
        const sent = performance.now();
        track(
          post(`${o.url}/streams/${stream}/events`, body).then(
            (r) => {
              if (r.status === 201) {
                ok++;
                acks.push(performance.now() - sent);
              } else {
                failed++;
                this.note(`load answered ${r.status}: ${r.text.slice(0, 200)}`);
              }
            },
            (err: Error) => {
              failed++;
              this.note(err.message);
            },
          ),
        );
      }
      while (t0 + nextProbe * probeGap <= now && t0 + nextProbe * probeGap < end) {
        nextProbe++;
        track(
          this.probe().then((p) => {
            if (p) this.probes.push(p);
          }),
        );
      }
      const due = Math.min(t0 + nextLoad * loadGap, t0 + nextProbe * probeGap, end);
      await sleep(Math.max(0, Math.min(due - performance.now(), 50)));
    }
    const seconds = (performance.now() - t0) / 1000;
    await Promise.all([...inFlight]);
    return {
      seconds,
      requestsOk: ok,
      requestsFailed: failed,
      eventsOk: ok * o.eventsPerRequest,
      late,
      ackP50Ms: percentile(acks, 50),
      ackP99Ms: percentile(acks, 99),
      probes: this.probes,
      probeFailures: this.probeFailures,
      errors: this.errors,
    };
  }

  stop(): void {
    this.stopped = true;
  }
}
