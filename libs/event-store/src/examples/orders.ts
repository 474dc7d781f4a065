import { defineProjection } from '../projections/define';
import { EventEnvelope } from '../types';

/**
 * A worked example over a sample domain: orders live in streams `order-<orderId>` and receive
 *   OrderPlaced    { customerId?, items?: [{ sku, quantity, unitPrice }] }
 *   ItemAdded      { sku, quantity, unitPrice }
 *   ItemRemoved    { sku }
 *   OrderShipped   { carrier? }
 *   OrderCancelled { reason? }
 * The `orders` projection is partitioned by order id: GET /projections/orders/42 → that order's state.
 */
export interface OrderLine {
  sku: string;
  quantity: number;
  unitPrice: number;
}

export interface OrderState {
  orderId: string;
  status: 'new' | 'placed' | 'shipped' | 'cancelled';
  customerId: string | null;
  items: OrderLine[];
  total: number;
  updatedAt: string | null;
}

const ORDER_STREAM_PREFIX = 'order-';

/** An order line from event data (`{ sku, quantity?, unitPrice? }`), or null when it has no sku. Shared with the projector's `orders` read model. */
export function toLine(x: unknown): OrderLine | null {
  if (typeof x !== 'object' || x === null) return null;
  const o = x as Record<string, unknown>;
  if (typeof o.sku !== 'string') return null;
  const quantity = typeof o.quantity === 'number' && Number.isFinite(o.quantity) ? o.quantity : 1;
  const unitPrice = typeof o.unitPrice === 'number' && Number.isFinite(o.unitPrice) ? o.unitPrice : 0;
  return { sku: o.sku, quantity, unitPrice };
}

/** Adds a line, merging it into an existing one of the same sku and price. */
export function addLine(items: OrderLine[], line: OrderLine): OrderLine[] {
  const existing = items.find((l) => l.sku === line.sku && l.unitPrice === line.unitPrice);
  if (!existing) return [...items, line];
  return items.map((l) => (l === existing ? { ...l, quantity: l.quantity + line.quantity } : l));
}

/** The sum of quantity × unit price, rounded to cents. */
export function totalOf(items: OrderLine[]): number {
  return Math.round(items.reduce((sum, l) => sum + l.quantity * l.unitPrice, 0) * 100) / 100;
}

function evolve(state: OrderState, e: EventEnvelope): OrderState {
  const data = (typeof e.data === 'object' && e.data !== null ? e.data : {}) as Record<string, unknown>;
  let next: OrderState;
  switch (e.type) {
    case 'OrderPlaced': {
      const lines = Array.isArray(data.items)
        ? data.items.map(toLine).filter((l): l is OrderLine => l !== null)
        : [];
      const items = lines.reduce(addLine, state.items);
      const customerId = typeof data.customerId === 'string' ? data.customerId : state.customerId;
      next = { ...state, status: 'placed', customerId, items };
      break;
    }
    case 'ItemAdded': {
      const line = toLine(data);
      next = line ? { ...state, items: addLine(state.items, line) } : state;
      break;
    }
    case 'ItemRemoved':
      next = { ...state, items: state.items.filter((l) => l.sku !== data.sku) };
      break;
    case 'OrderShipped':
      next = state.status === 'cancelled' ? state : { ...state, status: 'shipped' };
      break;
    case 'OrderCancelled':
      next = state.status === 'shipped' ? state : { ...state, status: 'cancelled' };
      break;
    default:
      return state;
  }
  return { ...next, total: totalOf(next.items), updatedAt: e.timestamp };
}

export const ordersProjection = defineProjection<OrderState | null>({
  name: 'orders',
  initial: () => null,
  canHandle: (e) => e.streamId.startsWith(ORDER_STREAM_PREFIX),
  partitionBy: (e) => e.streamId.slice(ORDER_STREAM_PREFIX.length) || null,
  handle: (state, e) => {
    const current = state ?? {
      orderId: e.streamId.slice(ORDER_STREAM_PREFIX.length),
      status: 'new',
      customerId: null,
      items: [],
      total: 0,
      updatedAt: null,
    };
    return evolve(current, e);
  },
});
