import * as net from 'node:net';
import { randomUUID } from 'node:crypto';
import { waitFor } from '@app/consensus/testing';
import { ClusterHarness } from './cluster-harness';
import { E2EClient, Envelope, event, sleep } from './e2e-client';

/** An acknowledged event: the append answered 201 with these coordinates. */
export interface Acked {
  id: string;
  streamId: string;
  position: number;
  revision: number;
}

/**
 * Appends single events from `concurrency` workers until stopped, each with a fresh id, retrying every
 * transient answer (307/503/504, network errors) with the same id. Records what was acknowledged and
 * what ended without a definitive answer (it may or may not be committed — never twice).
 */
export class WriteLoad {
  readonly acked: Acked[] = [];
  readonly unknown: string[] = [];
  readonly rejected: { status: number; text: string }[] = [];
  private running = false;
  private workers: Promise<void>[] = [];
  private seq = 0;

  constructor(
    private readonly client: E2EClient,
    private readonly opts: { streams: string[]; concurrency: number; pauseMs?: number; maxEvents?: number },
  ) {}

  start(): this {
    this.running = true;
    for (let w = 0; w < this.opts.concurrency; w++) this.workers.push(this.work(w));
    return this;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
  }

  /** Waits until at least `n` more events were acknowledged than when called (bounded). */
  async waitAcked(n: number, timeoutMs = 120_000): Promise<void> {
    const target = this.acked.length + n;
    await waitFor(
      `${target} acknowledged appends (have ${this.acked.length})`,
      () => this.acked.length >= target,
      { timeoutMs, intervalMs: 50 },
    );
  }

  private async work(w: number): Promise<void> {
    const max = this.opts.maxEvents ?? 1_000_000;
    while (this.running && this.seq < max) {
      const i = this.seq++;
      const streamId = this.opts.streams[(w + i) % this.opts.streams.length];
      const id = randomUUID();
      try {
        const r = await this.client.append(
          streamId,
          { events: [{ id, type: 'LoadEvent', data: { w, i } }] },
          { timeoutMs: 120_000, attempts: 1000 },
        );
        if (r.status === 201)
          this.acked.push({ id, streamId, position: r.body.firstPosition, revision: r.body.firstRevision });
        else this.rejected.push({ status: r.status, text: r.text });
      } catch {
        this.unknown.push(id);
      }
      if (this.opts.pauseMs) await sleep(this.opts.pauseMs);
    }
  }
}

/**
 * The whole $all of every running node once they all applied the same commit index: identical lists,
 * gapless positions, every id once. Returns the common list.
 */
export async function convergedAll(
  h: ClusterHarness,
  client: E2EClient,
  timeoutMs = 120_000,
): Promise<Envelope[]> {
  let lists: Envelope[][] = [];
  await waitFor(
    'every running node to hold the same $all',
    async () => {
      const views = await Promise.all(h.running().map((n) => h.clusterView(n.id)));
      if (views.some((v) => v === null)) return false;
      const commit = Math.max(...views.map((v) => v!.commitIndex));
      if (views.some((v) => v!.appliedIndex < commit)) return false;
      lists = await Promise.all(h.running().map((n) => client.readAllFrom(n.url, 'local')));
      const first = JSON.stringify(lists[0]);
      return lists.every((l) => JSON.stringify(l) === first);
    },
    { timeoutMs, intervalMs: 250 },
  ).catch((err: Error) => {
    const summary = lists
      .map((l, i) => `${h.running()[i]?.id}: ${l.length} events, last position ${l.at(-1)?.position}`)
      .join('; ');
    throw new Error(`${err.message} (${summary})\n${h.tail(10)}`);
  });
  const all = lists[0];
  all.forEach((e, i) => {
    if (e.position !== i) throw new Error(`$all is not gapless: index ${i} holds position ${e.position}`);
  });
  const ids = new Set(all.map((e) => e.id));
  if (ids.size !== all.length) throw new Error(`$all holds ${all.length - ids.size} duplicate event ids`);
  return all;
}

/** Every acknowledged event is in `all` exactly once, at the position and revision it was acknowledged with. */
export function assertAckedPresent(acked: Acked[], all: Envelope[]): void {
  const byId = new Map(all.map((e) => [e.id, e]));
  for (const a of acked) {
    const e = byId.get(a.id);
    if (!e)
      throw new Error(
        `acknowledged event ${a.id} (${a.streamId}@${a.revision}, position ${a.position}) is missing`,
      );
    if (e.position !== a.position || e.revision !== a.revision || e.streamId !== a.streamId) {
      throw new Error(
        `event ${a.id} acknowledged at ${a.streamId}@${a.revision}/${a.position} but stored at ${e.streamId}@${e.revision}/${e.position}`,
      );
    }
  }
}

export interface RawResponse {
  status: number | null;
  head: string;
  body: string;
  closed: boolean;
}

/**
 * Sends raw bytes on a TCP connection and collects the answer until the server closes or `waitMs` passes.
 * For requests fetch cannot make (oversized declared bodies, broken HTTP).
 */
export function rawRequest(port: number, payload: Buffer | string, waitMs = 5000): Promise<RawResponse> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let closed = false;
    const socket = net.connect(port, '127.0.0.1');
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      const split = text.indexOf('\r\n\r\n');
      resolve({
        status: m ? Number(m[1]) : null,
        head: split >= 0 ? text.slice(0, split) : text,
        body: split >= 0 ? text.slice(split + 4) : '',
        closed,
      });
    };
    const timer = setTimeout(finish, waitMs);
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.write(payload);
  });
}

/** Elections a little slower than the default so CPU starvation does not make leaders flap. */
export const stableEnv = { TICK_MS: '50', ELECTION_TICKS: '20' };

/** `count` events appended to one stream in requests of `batch` (each acknowledged, retried by E2EClient). */
export async function appendMany(
  client: E2EClient,
  streamId: string,
  count: number,
  batch = 10,
): Promise<void> {
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    await client.appendOk(streamId, {
      events: Array.from({ length: n }, (_, k) => event('Counted', { i: i + k })),
    });
  }
}
