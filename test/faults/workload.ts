import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import type { AppendOp, Expected, FinalEvent, Op, Outcome, ReadOp, SubscriberLog } from './history';
import { RawResult, requestFollowing } from './http';
import { Prng } from './prng';

/**
 * The fault run's workload: concurrent clients appending with exact expected revisions (some `any` and
 * `no_stream`) to a few streams at a time, retrying unknown appends with the same event ids, reading
 * streams linearizably from every node, and one `$all` subscriber per node. Everything is recorded in
 * history.ts's format with times from one monotonic clock.
 *
 * Outcomes (history.ts): 201 ok; 409 wrong_expected_revision conflict; 503, 400 and other 4xx, and a
 * connection that never opened, fail; a timeout, a 504, any other 5xx, or an error after the connection
 * opened, unknown. 307s are followed; a 307 means that node did not act, so the last hop decides.
 */

export interface WorkloadOptions {
  /** Base URLs by node id. */
  nodes: Record<string, string>;
  token: string;
  clients: number;
  seed: number;
  /** ms since the run started (one monotonic clock for the whole run). */
  now: () => number;
  /** Per request (each redirect hop). */
  requestTimeoutMs?: number;
  /** Streams written at a time. */
  streams?: number;
}

/** Per-stream append counts after which a stream is retired for a fresh one (keeps per-stream search small). */
const rotateMin = 40;
const rotateMax = 60;
const retryAttempts = 3;

interface Slot {
  name: string;
  appends: number;
  limit: number;
}

export class Workload {
  readonly ops: Op[] = [];
  readonly sentEventIds: string[] = [];
  readonly streamsUsed: string[] = [];
  private nextOpId = 1;
  private nextStream = 1;
  private readonly slots: Slot[] = [];
  private stopped = false;
  private readonly prng: Prng;
  private readonly nodeIds: string[];
  private readonly timeoutMs: number;
  private running: Promise<void>[] = [];

  constructor(private readonly opts: WorkloadOptions) {
    this.prng = new Prng(opts.seed ^ 0x5bd1e995);
    this.nodeIds = Object.keys(opts.nodes);
    this.timeoutMs = opts.requestTimeoutMs ?? 3000;
    for (let i = 0; i < (opts.streams ?? 3); i++) this.slots.push(this.freshSlot());
  }

  private freshSlot(): Slot {
    const name = `fault-${this.nextStream++}`;
    this.streamsUsed.push(name);
    return { name, appends: 0, limit: this.prng.int(rotateMin, rotateMax) };
  }

  /** Starts the clients; they run until `stop()`. */
  start(): void {
    for (let c = 1; c <= this.opts.clients; c++) this.running.push(this.client(c));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
    this.running = [];
  }

  private pickStream(): string {
    const k = this.prng.int(0, this.slots.length - 1);
    if (this.slots[k].appends >= this.slots[k].limit) this.slots[k] = this.freshSlot();
    return this.slots[k].name;
  }

  private async client(c: number): Promise<void> {
    // What this client last saw of each stream's last revision (-1: no stream); absent: unknown.
    const known = new Map<string, number>();
    const rng = new Prng(this.opts.seed * 1000 + c);
    for (let i = 0; i < 1_000_000 && !this.stopped; i++) {
      const stream = this.pickStream();
      const node = this.nodeIds[rng.int(0, this.nodeIds.length - 1)];
      const rev = known.get(stream);
      const doRead = rng.next() < 0.3 || (rev === undefined && rng.next() < 0.5);
      if (doRead) {
        const op = await this.read(c, node, stream);
        if (op.outcome === 'ok' && op.eventIds) known.set(stream, op.eventIds.length - 1);
      } else {
        let expected: Expected;
        const r = rng.next();
        if (rev === undefined) expected = r < 0.5 ? 'no_stream' : 'any';
        else if (r < 0.8) expected = rev < 0 ? 'no_stream' : rev;
        else if (r < 0.95) expected = 'any';
        else expected = rev < 0 ? 'no_stream' : 'stream_exists';
        const ids = Array.from({ length: rng.int(1, 3) }, () => randomUUID());
        this.slotOf(stream);
        let op = await this.append(c, node, stream, ids, expected);
        const first = op.id;
        // Only an unknown outcome is retried (same ids, same expected revision): a fail was not applied.
        // Retries go on while they fail or stay unknown, since the original may still land.
        const retry = op.outcome === 'unknown';
        for (let a = 0; retry && a < retryAttempts && op.outcome !== 'ok' && op.outcome !== 'conflict'; a++) {
          if (this.stopped) break;
          await sleep(rng.int(100, 400));
          const to = this.nodeIds[rng.int(0, this.nodeIds.length - 1)];
          op = await this.append(c, to, stream, ids, expected, first);
        }
        if (op.outcome === 'ok' && op.lastRevision !== undefined) known.set(stream, op.lastRevision);
        else if (op.outcome === 'conflict' && op.actualRevision !== undefined)
          known.set(stream, op.actualRevision);
        else known.delete(stream);
      }
      await sleep(rng.int(5, 40));
    }
  }

  private slotOf(stream: string): void {
    const s = this.slots.find((x) => x.name === stream);
    if (s) s.appends++;
  }

  /** One append (following 307s), recorded. `retryOf`: the operation whose event ids it re-sends. */
  async append(
    client: number,
    node: string,
    stream: string,
    eventIds: string[],
    expected: Expected,
    retryOf?: number,
  ): Promise<AppendOp> {
    if (retryOf === undefined) this.sentEventIds.push(...eventIds);
    const op: AppendOp = {
      kind: 'append',
      id: this.nextOpId++,
      client,
      node,
      stream,
      eventIds,
      expected,
      invokeMs: this.opts.now(),
      completeMs: 0,
      outcome: 'unknown',
      ...(retryOf !== undefined ? { retryOf } : {}),
    };
    this.ops.push(op);
    const { result, hops } = await requestFollowing({
      method: 'POST',
      url: `${this.opts.nodes[node]}/streams/${encodeURIComponent(stream)}/events`,
      token: this.opts.token,
      timeoutMs: this.timeoutMs,
      body: {
        expectedRevision: expected,
        // A retry must be the identical request (data included) to be recognised as one by the server.
        events: eventIds.map((id, k) => ({
          id,
          type: 'FaultTest',
          data: { client, op: retryOf ?? op.id, k },
        })),
      },
    });
    op.completeMs = this.opts.now();
    const { outcome, note } = classify(result, 'append');
    op.outcome = outcome;
    op.note = hops.length > 1 ? `${note} via ${hops.length - 1} redirect(s)` : note;
    if (result.kind === 'response' && outcome === 'ok') {
      const b = result.json as {
        firstRevision: number;
        lastRevision: number;
        firstPosition: number;
        lastPosition: number;
      };
      op.firstRevision = b.firstRevision;
      op.lastRevision = b.lastRevision;
      op.firstPosition = b.firstPosition;
      op.lastPosition = b.lastPosition;
    }
    if (result.kind === 'response' && outcome === 'conflict') {
      const actual = (result.json as { actualRevision?: unknown }).actualRevision;
      if (typeof actual === 'number') op.actualRevision = actual;
    }
    return op;
  }

  /** A linearizable read of a whole stream from `node` (following 307s), recorded. */
  async read(client: number, node: string, stream: string): Promise<ReadOp> {
    const op: ReadOp = {
      kind: 'read',
      id: this.nextOpId++,
      client,
      node,
      stream,
      invokeMs: this.opts.now(),
      completeMs: 0,
      outcome: 'unknown',
    };
    this.ops.push(op);
    const { result, hops } = await requestFollowing({
      method: 'GET',
      url: `${this.opts.nodes[node]}/streams/${encodeURIComponent(stream)}?from=0&limit=4096&consistency=linearizable`,
      token: this.opts.token,
      timeoutMs: this.timeoutMs,
    });
    op.completeMs = this.opts.now();
    let { outcome, note } = classify(result, 'read');
    if (result.kind === 'response' && result.status === 200) {
      const body = result.json as { events: { id: string; revision: number }[]; next: number | null };
      if (body.next !== null && body.next !== undefined) {
        outcome = 'fail';
        note = 'stream longer than one page: not a whole-stream read';
      } else op.eventIds = body.events.map((e) => e.id);
    } else if (result.kind === 'response' && result.status === 404 && outcome === 'ok') op.eventIds = [];
    op.outcome = outcome;
    op.note = hops.length > 1 ? `${note} via ${hops.length - 1} redirect(s)` : note;
    return op;
  }
}

/** history.ts's outcome classes. */
export function classify(result: RawResult, kind: 'append' | 'read'): { outcome: Outcome; note: string } {
  if (result.kind === 'error')
    return {
      outcome: result.sent ? 'unknown' : 'fail',
      note: `${result.code}${result.sent ? ' after sending' : ' before sending'}`,
    };
  const s = result.status;
  const err = (result.json as { error?: string } | undefined)?.error;
  const message = (result.json as { message?: string } | undefined)?.message;
  const note = err
    ? `${s} ${err}${(s === 400 || s === 503) && message ? `: ${message.slice(0, 160)}` : ''}`
    : String(s);
  if (kind === 'append') {
    if (s === 201) return { outcome: 'ok', note };
    // Both 409s of an append are rejections that wrote nothing; only wrong_expected_revision has actualRevision.
    if (s === 409 && (err === 'wrong_expected_revision' || err === 'idempotency_conflict'))
      return { outcome: 'conflict', note };
  } else {
    if (s === 200) return { outcome: 'ok', note };
    if (s === 404 && err === 'stream_not_found') return { outcome: 'ok', note };
  }
  // 504 (proposal timed out) and any other 5xx but 503: the node may have acted.
  if (s >= 500 && s !== 503) return { outcome: 'unknown', note };
  // 503 (no leader / overloaded), 400, 409 conflict of another kind, 307 past the hop limit, other 4xx.
  return { outcome: 'fail', note };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * One `$all` subscriber on one node: `GET /streams/$all/subscribe?from=0`, reconnecting after errors with
 * Last-Event-ID (the last position received) so the stream resumes after it. Records every event received.
 */
export class Subscriber {
  readonly log: SubscriberLog;
  private lastId: string | null = null;
  private req: http.ClientRequest | null = null;
  private stopped = false;
  private loop: Promise<void> | null = null;
  connects = 0;
  errors: string[] = [];

  constructor(
    readonly subscriber: number,
    node: string,
    private readonly url: string,
    private readonly token: string,
  ) {
    this.log = { subscriber, node, from: 0, received: [] };
  }

  start(): void {
    this.loop = this.run();
  }

  lastPosition(): number {
    return this.log.received.length === 0 ? -1 : this.log.received[this.log.received.length - 1].position;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.req?.destroy();
    await this.loop;
  }

  private async run(): Promise<void> {
    for (let i = 0; i < 100_000 && !this.stopped; i++) {
      const why = await this.once();
      if (this.stopped) break;
      if (this.errors.length < 200) this.errors.push(why);
      await sleep(300);
    }
  }

  /** One connection until it ends; resolves with why it ended. */
  private once(): Promise<string> {
    return new Promise((resolve) => {
      const headers: Record<string, string> = {
        accept: 'text/event-stream',
        authorization: `Bearer ${this.token}`,
      };
      if (this.lastId !== null) headers['last-event-id'] = this.lastId;
      this.connects++;
      let done = false;
      const finish = (why: string) => {
        if (done) return;
        done = true;
        resolve(why);
      };
      const req = http.get(`${this.url}/streams/$all/subscribe?from=0`, { headers, agent: false }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          finish(`status ${res.statusCode}`);
          return;
        }
        res.setEncoding('utf8');
        let buf = '';
        let id: string | null = null;
        let event: string | null = null;
        let data = '';
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).replace(/\r$/, '');
            buf = buf.slice(nl + 1);
            if (line === '') {
              if (data !== '' && (event === null || event === 'message')) this.receive(id, data);
              else if (event === 'error') finish(`error event: ${data.slice(0, 200)}`);
              id = null;
              event = null;
              data = '';
            } else if (line.startsWith(':')) continue;
            else {
              const colon = line.indexOf(':');
              const field = colon < 0 ? line : line.slice(0, colon);
              const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
              if (field === 'id') id = value;
              else if (field === 'event') event = value;
              else if (field === 'data') data = data === '' ? value : `${data}\n${value}`;
            }
          }
        });
        res.on('end', () => finish('ended'));
        res.on('close', () => finish('closed'));
        res.on('error', (e) => finish(`response error ${e.message}`));
      });
      req.on('error', (e) => finish(`request error ${e.message}`));
      this.req = req;
    });
  }

  private receive(id: string | null, data: string): void {
    let env: { id: string; position: number };
    try {
      env = JSON.parse(data) as { id: string; position: number };
    } catch {
      if (this.errors.length < 200) this.errors.push(`unparsable message ${data.slice(0, 100)}`);
      return;
    }
    this.log.received.push({ position: env.position, id: env.id });
    this.lastId = id ?? String(env.position);
  }
}

/** A node's whole `$all` with consistency=local, paged. */
export async function readAllLocal(url: string, token: string, timeoutMs = 10_000): Promise<FinalEvent[]> {
  const out: FinalEvent[] = [];
  let from = 0;
  for (let page = 0; page < 100_000; page++) {
    const { result } = await requestFollowing(
      {
        method: 'GET',
        url: `${url}/streams/$all?from=${from}&limit=1000&consistency=local`,
        token,
        timeoutMs,
      },
      0,
    );
    if (result.kind !== 'response' || result.status !== 200)
      throw new Error(
        `GET ${url}/streams/$all answered ${result.kind === 'response' ? `${result.status} ${result.text.slice(0, 200)}` : result.message}`,
      );
    const body = result.json as {
      events: { id: string; streamId: string; revision: number; position: number }[];
      next: number | null;
    };
    for (const e of body.events)
      out.push({ id: e.id, stream: e.streamId, revision: e.revision, position: e.position });
    if (body.next === null || body.next === undefined) return out;
    if (body.next <= from)
      throw new Error(`$all paging of ${url} did not advance (from ${from}, next ${body.next})`);
    from = body.next;
  }
  throw new Error(`$all paging of ${url} did not end`);
}
