import * as path from 'node:path';
import { EventEnvelope, EventStoreClient, NewEvent } from '@app/client';
import { waitFor } from '@app/consensus/testing';
import { ClusterHarness } from '../support/cluster-harness';
import { E2EClient, getJson, HttpResult, sleep } from '../support/e2e-client';
import { query } from '../support/pg-database';
import { ProjectorProcess } from '../support/projector-harness';
import { stableEnv } from '../support/workload';

/**
 * Shared pieces of the projector's Postgres e2e suites: a cluster, a writer of mixed events (orders and
 * others), and the checker that computes the expected read models from the whole `$all` and compares them
 * with what the projector wrote — exactly, so that one lost or duplicated event shows.
 */

export const fixturesDir = path.join(__dirname, 'fixtures');
export const builtInModels = ['stream_summaries', 'orders'];

export async function startCluster(): Promise<ClusterHarness> {
  const h = await ClusterHarness.start({ nodes: 3, env: { ...stableEnv } });
  await h.waitForLeader();
  return h;
}

/** A client of every node of `h` (the URLs are fixed at creation: restarted nodes keep their ports). */
export function storeClient(h: ClusterHarness): EventStoreClient {
  return new EventStoreClient({
    urls: [...h.nodes.values()].map((n) => n.url),
    retry: { attempts: 20, initialDelayMs: 50, maxDelayMs: 1000, totalTimeoutMs: 30_000 },
  });
}

/** The environment of a Postgres-only projector following `h`. */
export function projectorEnv(
  h: ClusterHarness,
  databaseUrl: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    EVENT_STORE_URLS: [...h.nodes.values()].map((n) => n.url).join(','),
    DATABASE_URL: databaseUrl,
    PROJECTOR_SINKS: 'postgres',
    ...extra,
  };
}

// ---------------------------------------------------------------- workload

const skus = ['apple', 'pear', 'plum', 'fig', 'kiwi'];
const prices = [1.5, 2.25, 9.99, 10, 0.1];

function pick<T>(xs: readonly T[]): T {
  return xs[Math.floor(Math.random() * xs.length)];
}

/**
 * Generates appends of mixed events: `order-<tag>-<n>` streams (OrderPlaced first, then ItemAdded,
 * ItemRemoved, OrderShipped, OrderCancelled, and an event type the orders model ignores), and other
 * streams (`cart-…`, `user-…`, and `inventory_<tag>` without a category dash).
 */
export class MixedEvents {
  private readonly placed = new Set<string>();
  private orders = 0;

  constructor(
    readonly tag: string,
    private readonly maxOrders = 60,
  ) {}

  next(): { streamId: string; events: NewEvent[] } {
    const r = Math.random();
    if (r < 0.6) {
      const newOrder = this.orders < this.maxOrders && (this.orders < 3 || Math.random() < 0.15);
      const n = newOrder ? this.orders++ : Math.floor(Math.random() * this.orders);
      const streamId = `order-${this.tag}-${n}`;
      const events: NewEvent[] = [];
      if (!this.placed.has(streamId)) {
        events.push({
          type: 'OrderPlaced',
          data: {
            customerId: `cust-${Math.floor(Math.random() * 20)}`,
            items: Array.from({ length: Math.floor(Math.random() * 3) }, () => ({
              sku: pick(skus),
              quantity: 1 + Math.floor(Math.random() * 3),
              unitPrice: pick(prices),
            })),
          },
        });
      }
      const more = Math.floor(Math.random() * 4);
      for (let i = 0; i < more; i++) events.push(this.orderEvent());
      if (events.length === 0) events.push(this.orderEvent());
      return { streamId, events };
    }
    const streamId =
      r < 0.75
        ? `cart-${this.tag}-${Math.floor(Math.random() * 10)}`
        : r < 0.9
          ? `user-${this.tag}-${Math.floor(Math.random() * 10)}`
          : `inventory_${this.tag}`;
    const n = 1 + Math.floor(Math.random() * 6);
    return {
      streamId,
      events: Array.from({ length: n }, (_, i) => ({
        type: pick(['Viewed', 'Touched', 'Counted']),
        data: { i },
      })),
    };
  }

  /** Records that the append of `streamId` was acknowledged (its OrderPlaced is in). */
  acked(streamId: string): void {
    if (streamId.startsWith('order-')) this.placed.add(streamId);
  }

  private orderEvent(): NewEvent {
    const r = Math.random();
    if (r < 0.45)
      return {
        type: 'ItemAdded',
        data: { sku: pick(skus), quantity: 1 + Math.floor(Math.random() * 3), unitPrice: pick(prices) },
      };
    if (r < 0.65) return { type: 'ItemRemoved', data: { sku: pick(skus) } };
    if (r < 0.75) return { type: 'OrderShipped', data: { carrier: 'ups' } };
    if (r < 0.85) return { type: 'OrderCancelled', data: { reason: 'test' } };
    if (r < 0.92) return { type: 'OrderPlaced', data: { items: [{ sku: pick(skus), unitPrice: 3 }] } };
    return { type: 'OrderNoted', data: { note: 'ignored by the orders fold' } };
  }
}

/** Appends `count` events (roughly: whole requests) of a MixedEvents generator, acknowledged one request at a time. */
export async function appendMixed(client: EventStoreClient, gen: MixedEvents, count: number): Promise<void> {
  let n = 0;
  while (n < count) {
    const { streamId, events } = gen.next();
    await client.append(streamId, events);
    gen.acked(streamId);
    n += events.length;
  }
}

/**
 * Appends continuously from `concurrency` workers until stopped. Failed appends (a node killed, an election)
 * are counted and the worker goes on: the checker's truth is `$all`, not what the writer was told.
 */
export class Writer {
  appended = 0;
  failures = 0;
  private running = false;
  private workers: Promise<void>[] = [];

  constructor(
    private readonly client: EventStoreClient,
    private readonly gen: MixedEvents,
    private readonly opts: { concurrency?: number; pauseMs?: number } = {},
  ) {}

  start(): this {
    this.running = true;
    for (let i = 0; i < (this.opts.concurrency ?? 2); i++) this.workers.push(this.work());
    return this;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
    this.workers = [];
  }

  /** Waits until `n` more events were acknowledged than when called. */
  async waitAppended(n: number, timeoutMs = 60_000): Promise<void> {
    const target = this.appended + n;
    await waitFor(
      `the writer to append ${target} events (has ${this.appended})`,
      () => this.appended >= target,
      {
        timeoutMs,
        intervalMs: 50,
      },
    );
  }

  private async work(): Promise<void> {
    while (this.running) {
      const { streamId, events } = this.gen.next();
      try {
        await this.client.append(streamId, events);
        this.gen.acked(streamId);
        this.appended += events.length;
      } catch {
        this.failures++;
        await sleep(100);
      }
      if (this.opts.pauseMs) await sleep(this.opts.pauseMs);
    }
  }
}

// ---------------------------------------------------------------- expected read models

export async function readWholeAll(client: EventStoreClient): Promise<EventEnvelope[]> {
  const out: EventEnvelope[] = [];
  for await (const page of client.readAllPages({ from: 0, limit: 4096 })) out.push(...page);
  out.forEach((e, i) => {
    if (e.position !== i) throw new Error(`$all is not gapless: index ${i} holds position ${e.position}`);
  });
  return out;
}

export interface SummaryRow {
  stream_id: string;
  event_count: number;
  last_revision: number;
  first_position: number;
  last_position: number;
  last_event_type: string;
  updated_at: string;
}

export interface OrderLine {
  sku: string;
  quantity: number;
  unitPrice: number;
}

export interface OrderRow {
  order_id: string;
  status: string;
  customer_id: string | null;
  item_count: number;
  total: number;
  items: OrderLine[];
  updated_at: string;
}

export function expectedSummaries(all: readonly EventEnvelope[]): SummaryRow[] {
  const m = new Map<string, SummaryRow>();
  for (const e of all) {
    const row = m.get(e.streamId);
    m.set(e.streamId, {
      stream_id: e.streamId,
      event_count: (row?.event_count ?? 0) + 1,
      last_revision: e.revision,
      first_position: row?.first_position ?? e.position,
      last_position: e.position,
      last_event_type: e.type,
      updated_at: e.timestamp,
    });
  }
  return [...m.values()].sort((a, b) => cmp(a.stream_id, b.stream_id));
}

function toLine(x: unknown): OrderLine | null {
  if (typeof x !== 'object' || x === null) return null;
  const o = x as Record<string, unknown>;
  if (typeof o.sku !== 'string') return null;
  return {
    sku: o.sku,
    quantity: typeof o.quantity === 'number' ? o.quantity : 1,
    unitPrice: typeof o.unitPrice === 'number' ? o.unitPrice : 0,
  };
}

function addLine(items: OrderLine[], line: OrderLine): OrderLine[] {
  const i = items.findIndex((l) => l.sku === line.sku && l.unitPrice === line.unitPrice);
  if (i < 0) return [...items, line];
  return items.map((l, k) => (k === i ? { ...l, quantity: l.quantity + line.quantity } : l));
}

const orderTypes = new Set(['OrderPlaced', 'ItemAdded', 'ItemRemoved', 'OrderShipped', 'OrderCancelled']);

/** The orders fold of API.md's worked example, written independently of the projector's code. */
export function expectedOrders(all: readonly EventEnvelope[]): OrderRow[] {
  const m = new Map<string, OrderRow>();
  for (const e of all) {
    if (!e.streamId.startsWith('order-') || e.streamId.length === 'order-'.length) continue;
    if (!orderTypes.has(e.type)) continue;
    const id = e.streamId.slice('order-'.length);
    const o: OrderRow = m.get(id) ?? {
      order_id: id,
      status: 'new',
      customer_id: null,
      item_count: 0,
      total: 0,
      items: [],
      updated_at: '',
    };
    const d = (typeof e.data === 'object' && e.data !== null ? e.data : {}) as Record<string, unknown>;
    let next = o;
    if (e.type === 'OrderPlaced') {
      const lines = Array.isArray(d.items)
        ? d.items.map(toLine).filter((l): l is OrderLine => l !== null)
        : [];
      next = {
        ...o,
        status: 'placed',
        customer_id: typeof d.customerId === 'string' ? d.customerId : o.customer_id,
        items: lines.reduce(addLine, o.items),
      };
    } else if (e.type === 'ItemAdded') {
      const line = toLine(d);
      if (line) next = { ...o, items: addLine(o.items, line) };
    } else if (e.type === 'ItemRemoved') next = { ...o, items: o.items.filter((l) => l.sku !== d.sku) };
    else if (e.type === 'OrderShipped') next = o.status === 'cancelled' ? o : { ...o, status: 'shipped' };
    else if (e.type === 'OrderCancelled') next = o.status === 'shipped' ? o : { ...o, status: 'cancelled' };
    const total = Math.round(next.items.reduce((s, l) => s + l.quantity * l.unitPrice, 0) * 100) / 100;
    m.set(id, { ...next, total, item_count: next.items.length, updated_at: e.timestamp });
  }
  return [...m.values()].sort((a, b) => cmp(a.order_id, b.order_id));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------- what the projector wrote

function iso(v: unknown): string {
  return v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString();
}

export async function dbSummaries(url: string, schema = 'projector'): Promise<SummaryRow[]> {
  const rows = await query(url, `SELECT * FROM "${schema}".stream_summaries ORDER BY stream_id COLLATE "C"`);
  return rows.map((r) => ({
    stream_id: r.stream_id,
    event_count: Number(r.event_count),
    last_revision: Number(r.last_revision),
    first_position: Number(r.first_position),
    last_position: Number(r.last_position),
    last_event_type: r.last_event_type,
    updated_at: iso(r.updated_at),
  }));
}

export async function dbOrders(url: string, schema = 'projector'): Promise<OrderRow[]> {
  const rows = await query(url, `SELECT * FROM "${schema}".orders ORDER BY order_id COLLATE "C"`);
  return rows.map((r) => ({
    order_id: r.order_id,
    status: r.status,
    customer_id: r.customer_id,
    item_count: Number(r.item_count),
    total: Number(r.total),
    items: r.items,
    updated_at: iso(r.updated_at),
  }));
}

export async function dbCheckpoints(url: string, schema = 'projector'): Promise<Record<string, number>> {
  const rows = await query(url, `SELECT name, position FROM "${schema}".checkpoints`);
  return Object.fromEntries(rows.map((r) => [r.name, Number(r.position)]));
}

/**
 * Waits until the checkpoints of `models` reach `head` (a position past it is reported). With the process
 * `p`, waits for its /status to say so, then insists that the checkpoint rows say the same (a checkpoint is
 * committed before the process reports it); without, polls the rows.
 */
export async function waitCheckpoints(
  url: string,
  head: number,
  models: string[] = builtInModels,
  timeoutMs = 90_000,
  p?: ProjectorProcess,
): Promise<void> {
  if (p) {
    await p.waitFor(
      `read models ${models.join(', ')} at position ${head}`,
      (s) => {
        for (const m of s.readModels)
          if (m.position > head) throw new Error(`${m.name} is at ${m.position}, past the head ${head}`);
        return models.every((m) => s.readModels.find((r) => r.name === m)?.position === head);
      },
      { timeoutMs },
    );
    const cps = await dbCheckpoints(url);
    expect(Object.fromEntries(models.map((m) => [m, cps[m]]))).toEqual(
      Object.fromEntries(models.map((m) => [m, head])),
    );
    return;
  }
  let last: Record<string, number> = {};
  await waitFor(
    `checkpoints of ${models.join(', ')} to reach ${head}`,
    async () => {
      last = await dbCheckpoints(url);
      for (const m of models)
        if ((last[m] ?? -1) > head)
          throw new Error(`checkpoint of ${m} is ${last[m]}, past the head ${head}`);
      return models.every((m) => last[m] === head);
    },
    { timeoutMs, intervalMs: 200 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}; checkpoints: ${JSON.stringify(last)}`);
  });
}

/**
 * The common checker: with the writers stopped, reads the whole `$all`, waits for the projector's checkpoints
 * to reach its head, and compares `stream_summaries` and `orders` with the expected rows, exactly. The orders
 * are also compared with the event store's own `orders` projection. Returns the head and the events.
 */
export async function expectReadModelsExact(
  client: EventStoreClient,
  es: E2EClient,
  dbUrl: string,
  p?: ProjectorProcess,
): Promise<{ head: number; all: EventEnvelope[] }> {
  const head = await client.headPosition();
  const all = await readWholeAll(client);
  if (all.length !== head + 1) throw new Error(`$all has ${all.length} events but the head is ${head}`);
  await waitCheckpoints(dbUrl, head, builtInModels, 90_000, p);

  const summaries = await dbSummaries(dbUrl);
  const want = expectedSummaries(all);
  expect(summaries.length).toBe(want.length);
  expect(summaries.reduce((s, r) => s + r.event_count, 0)).toBe(all.length);
  expect(summaries).toEqual(want);

  const orders = await dbOrders(dbUrl);
  const wantOrders = expectedOrders(all);
  expect(orders).toEqual(wantOrders);
  await expectOrdersMatchEventStore(es, orders);

  const cps = await dbCheckpoints(dbUrl);
  for (const m of builtInModels) expect(cps[m]).toBe(head);
  return { head, all };
}

/** status, customerId, total, items (and item_count = items.length), updatedAt of each row = GET /projections/orders/{id}. */
export async function expectOrdersMatchEventStore(es: E2EClient, orders: OrderRow[]): Promise<void> {
  const queue = [...orders];
  const mismatches: string[] = [];
  const worker = async () => {
    for (let o = queue.shift(); o; o = queue.shift()) {
      const r: HttpResult = await es.get(`/projections/orders/${encodeURIComponent(o.order_id)}`, {
        attempts: 50,
      });
      if (r.status !== 200) {
        mismatches.push(`${o.order_id}: the event store answered ${r.status} ${r.text}`);
        continue;
      }
      const s = r.body as {
        status: string;
        customerId: string | null;
        total: number;
        items: OrderLine[];
        updatedAt: string;
      };
      const mine = {
        status: o.status,
        customerId: o.customer_id,
        total: o.total,
        items: o.items,
        n: o.item_count,
        at: o.updated_at,
      };
      const theirs = {
        status: s.status,
        customerId: s.customerId,
        total: s.total,
        items: s.items,
        n: s.items.length,
        at: s.updatedAt,
      };
      try {
        expect(mine).toEqual(theirs);
      } catch {
        mismatches.push(
          `${o.order_id}: projector ${JSON.stringify(mine)} vs event store ${JSON.stringify(theirs)}`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  expect(mismatches).toEqual([]);
}

// ---------------------------------------------------------------- projector HTTP

export async function http(p: ProjectorProcess, route: string): Promise<HttpResult> {
  return getJson(`${p.url}${route}`, 10_000);
}

/** A sample of a Prometheus text exposition: the value of `name{labels}`, or null. */
export function metric(text: string, name: string, labels = ''): number | null {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${esc(name)}${labels ? esc(`{${labels}}`) : ''} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

export function randomBetween(lo: number, hi: number): number {
  return lo + Math.floor(Math.random() * (hi - lo + 1));
}
