import { DataSource } from 'typeorm';
import type { EventEnvelope } from '@app/client';
import { defineReadModel, Row } from '../../read-models';
import { orders } from '../../read-models/orders';
import { StreamSummary, streamSummaries } from '../../read-models/stream-summaries';
import { foldBatch } from './fold';
import { ModelTable } from './table';

let position = 0;
function ev(streamId: string, type: string, data: unknown = {}, revision = 0): EventEnvelope {
  const p = position++;
  return {
    id: `00000000-0000-4000-8000-${String(p).padStart(12, '0')}`,
    streamId,
    type,
    revision,
    position: p,
    timestamp: new Date(1_700_000_000_000 + p).toISOString(),
    data,
    metadata: {},
  };
}

// Entity metadata needs a DataSource built, not connected: no database is touched.
async function tableOf(model: ReturnType<typeof defineReadModel>): Promise<ModelTable> {
  const ds = new DataSource({ type: 'postgres', entities: [model.entity], schema: 'projector' });
  // buildMetadatas is protected: the metadata is all this spec needs, no connection
  await (ds as unknown as { buildMetadatas(): Promise<void> }).buildMetadatas();
  return new ModelTable(model, 'projector', ds);
}

const noRows = async () => new Map<string, Row>();

describe('foldBatch', () => {
  beforeEach(() => (position = 0));

  it('folds a batch per key and skips events at or before the checkpoint', async () => {
    const t = await tableOf(streamSummaries);
    const events = [ev('a', 'X', {}, 0), ev('b', 'Y', {}, 0), ev('a', 'Z', {}, 1)];
    const r = await foldBatch(t, events, 0, noRows);
    expect(r.position).toBe(2);
    const byKey = new Map(r.upserts.map((row) => [row.streamId, row]));
    // event 0 is at the checkpoint: a's row holds event 2 only
    expect(byKey.get('a')).toMatchObject({
      eventCount: 1,
      lastRevision: 1,
      firstPosition: 2,
      lastEventType: 'Z',
    });
    expect(byKey.get('b')).toMatchObject({ eventCount: 1, firstPosition: 1, lastEventType: 'Y' });
  });

  it('continues from the rows as they are in the table', async () => {
    const t = await tableOf(streamSummaries);
    const existing: StreamSummary & Row = {
      streamId: 'a',
      eventCount: 5,
      lastRevision: 4,
      firstPosition: 0,
      lastPosition: 9,
      lastEventType: 'Old',
      updatedAt: '2020-01-01T00:00:00.000Z',
    };
    position = 10;
    const r = await foldBatch(t, [ev('a', 'New', {}, 5)], 9, async (keys) => {
      expect(keys).toEqual(['a']);
      return new Map([['a', existing]]);
    });
    expect(r.upserts).toEqual([
      expect.objectContaining({ eventCount: 6, firstPosition: 0, lastPosition: 10 }),
    ]);
  });

  it('folds orders like the event store example', async () => {
    const t = await tableOf(orders);
    const r = await foldBatch(
      t,
      [
        ev('order-7', 'OrderPlaced', { customerId: 'c', items: [{ sku: 'a', quantity: 2, unitPrice: 1.5 }] }),
        ev('order-7', 'ItemAdded', { sku: 'b', quantity: 1, unitPrice: 10 }),
        ev('order-7', 'ItemRemoved', { sku: 'a' }),
        ev('order-7', 'OrderShipped'),
        ev('order-7', 'OrderCancelled'),
        ev('customer-1', 'OrderPlaced'),
      ],
      -1,
      noRows,
    );
    expect(r.upserts).toHaveLength(1);
    expect(r.upserts[0]).toMatchObject({
      orderId: '7',
      status: 'shipped',
      customerId: 'c',
      total: 10,
      itemCount: 1,
    });
    expect(r.position).toBe(5);
  });

  it('an order stream with only events the fold does not know is a `new` order, as in the event store', async () => {
    const t = await tableOf(orders);
    const r = await foldBatch(t, [ev('order-9', 'OrderNoted'), ev('order-9', 'OrderNoted')], -1, noRows);
    expect(r.upserts).toEqual([
      expect.objectContaining({ orderId: '9', status: 'new', itemCount: 0, total: 0, updatedAt: null }),
    ]);
  });

  const poisonModel = (onError: 'stop' | 'skip') =>
    defineReadModel<StreamSummary & Row>({
      ...streamSummaries,
      onError,
      handlers: {
        '*': (row: (StreamSummary & Row) | null, e: EventEnvelope) => {
          if (e.type === 'Poison') throw new Error('cannot fold Poison');
          return streamSummaries.handlers['*'](row, e) as StreamSummary & Row;
        },
      },
    } as never);

  it('stops before a poison event under the stop policy, keeping what came before it', async () => {
    const t = await tableOf(poisonModel('stop'));
    const r = await foldBatch(t, [ev('a', 'X'), ev('a', 'Poison', {}, 1), ev('a', 'Y', {}, 2)], -1, noRows);
    expect(r.stopped).toMatchObject({ position: 1, error: 'cannot fold Poison' });
    expect(r.position).toBe(0);
    expect(r.upserts).toEqual([expect.objectContaining({ eventCount: 1, lastEventType: 'X' })]);
    expect(r.deadLetters).toEqual([]);
  });

  it('records a dead letter and goes on under the skip policy', async () => {
    const t = await tableOf(poisonModel('skip'));
    const r = await foldBatch(t, [ev('a', 'X'), ev('a', 'Poison', {}, 1), ev('a', 'Y', {}, 2)], -1, noRows);
    expect(r.stopped).toBeNull();
    expect(r.position).toBe(2);
    expect(r.deadLetters).toEqual([
      { position: 1, eventId: expect.any(String), error: 'cannot fold Poison' },
    ]);
    expect(r.upserts).toEqual([expect.objectContaining({ eventCount: 2, lastEventType: 'Y' })]);
  });

  it('deletes a row whose handler returns null, and rejects a row of another key', async () => {
    const base = streamSummaries;
    const model = defineReadModel<StreamSummary & Row>({
      ...base,
      handlers: {
        Deleted: () => null,
        Moved: (row: (StreamSummary & Row) | null, e: EventEnvelope) => ({
          ...(base.handlers['*'](row, e) as StreamSummary & Row),
          streamId: 'elsewhere',
        }),
        '*': base.handlers['*'] as never,
      },
    } as never);
    const t = await tableOf(model);
    const existing = new Map<string, Row>([['a', { streamId: 'a', eventCount: 1 }]]);
    const r = await foldBatch(t, [ev('a', 'Deleted')], -1, async () => existing);
    expect(r.deletes).toEqual(['a']);
    const bad = await foldBatch(t, [ev('b', 'Moved')], 0, noRows);
    expect(bad.stopped?.error).toMatch(/key elsewhere/);
  });
});
