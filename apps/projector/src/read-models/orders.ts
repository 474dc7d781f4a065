import { Column, Entity, PrimaryColumn } from 'typeorm';
import { addLine, OrderLine, toLine, totalOf } from '@app/event-store';
import { defineReadModel, EventHandler } from './read-model';

/**
 * The worked example (orders live in `order-<id>` streams), the same fold as the event store's `orders`
 * projection, sharing its line arithmetic (`toLine`, `addLine`, `totalOf`): OrderPlaced { customerId?, items? },
 * ItemAdded { sku, quantity, unitPrice }, ItemRemoved { sku }, OrderShipped, OrderCancelled. The line items are kept in an `items` jsonb column so that
 * ItemRemoved can be folded; `item_count` is the number of lines (as `items.length` of the projection).
 */
@Entity('orders')
export class Order {
  @PrimaryColumn({ type: 'text', name: 'order_id' })
  orderId!: string;

  @Column({ type: 'text' })
  status!: string;

  @Column({ type: 'text', name: 'customer_id', nullable: true })
  customerId!: string | null;

  @Column({ type: 'int', name: 'item_count' })
  itemCount!: number;

  @Column({ type: 'numeric' })
  total!: number;

  @Column({ type: 'jsonb' })
  items!: OrderLine[];

  /** Null while no event the fold knows has reached the order (as the event store's projection says). */
  @Column({ type: 'timestamptz', name: 'updated_at', nullable: true })
  updatedAt!: string | null;
}

type OrderRow = Order & Record<string, unknown>;
const orderStreamPrefix = 'order-';

function dataOf(e: { data: unknown }): Record<string, unknown> {
  return typeof e.data === 'object' && e.data !== null ? (e.data as Record<string, unknown>) : {};
}

/** Recomputes the derived columns after the items or status changed. */
function withTotals(row: OrderRow, updatedAt: string): OrderRow {
  return { ...row, total: totalOf(row.items), itemCount: row.items.length, updatedAt };
}

function current(row: OrderRow | null, streamId: string): OrderRow {
  return (
    row ??
    ({
      orderId: streamId.slice(orderStreamPrefix.length),
      status: 'new',
      customerId: null,
      itemCount: 0,
      total: 0,
      items: [],
      updatedAt: null,
    } as OrderRow)
  );
}

const on = (f: (o: OrderRow, data: Record<string, unknown>) => OrderRow): EventHandler<OrderRow> => {
  return (row, e) => withTotals(f(current(row, e.streamId), dataOf(e)), e.timestamp);
};

export const orders = defineReadModel<OrderRow>({
  name: 'orders',
  entity: Order,
  migrations: [],
  keyOf: (e) =>
    e.streamId.startsWith(orderStreamPrefix) && e.streamId.length > orderStreamPrefix.length
      ? e.streamId.slice(orderStreamPrefix.length)
      : null,
  handlers: {
    OrderPlaced: on((o, d) => {
      const lines = Array.isArray(d.items)
        ? d.items.map(toLine).filter((l): l is OrderLine => l !== null)
        : [];
      const customerId = typeof d.customerId === 'string' ? d.customerId : o.customerId;
      return { ...o, status: 'placed', customerId, items: lines.reduce(addLine, o.items) };
    }),
    ItemAdded: on((o, d) => {
      const line = toLine(d);
      return line ? { ...o, items: addLine(o.items, line) } : o;
    }),
    ItemRemoved: on((o, d) => ({ ...o, items: o.items.filter((l) => l.sku !== d.sku) })),
    OrderShipped: on((o) => (o.status === 'cancelled' ? o : { ...o, status: 'shipped' })),
    OrderCancelled: on((o) => (o.status === 'shipped' ? o : { ...o, status: 'cancelled' })),
    // Any other event of an order stream: the order exists (status `new` until placed), nothing changes.
    '*': (row, e) => row ?? current(null, e.streamId),
  },
});
