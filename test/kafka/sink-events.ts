import type { EventEnvelope } from '@app/client';

/**
 * Deterministic events for the Kafka sink suites: position p belongs to stream `prefix(k)` with k = p mod
 * `streams`, at revision floor(p / streams), so positions are gapless and revisions gapless per stream.
 */
export function makeEvents(
  from: number,
  count: number,
  streams = 7,
  streamId: (k: number) => string = (k) => `order-${k}`,
): EventEnvelope[] {
  const out: EventEnvelope[] = [];
  for (let p = from; p < from + count; p++) {
    const k = p % streams;
    out.push({
      id: `00000000-0000-4000-8000-${String(p).padStart(12, '0')}`,
      streamId: streamId(k),
      type: p % 3 === 0 ? 'OrderPlaced' : 'ItemAdded',
      revision: Math.floor(p / streams),
      position: p,
      timestamp: new Date(Date.UTC(2026, 0, 1) + p).toISOString(),
      data: { n: p, text: `event ${p}` },
      metadata: { source: 'kafka-sink-test' },
    });
  }
  return out;
}
