import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { EventEnvelope, EventSubscription, SubscriptionTarget } from '@app/event-store';
import { ApiError } from '../http/api-error';
import { NodeRuntime } from '../runtime/node-runtime';
import { NODE_RUNTIME } from './tokens';

/** API.md: a comment line at least every 15 s. */
const heartbeatMs = 10_000;
/** Open subscriptions per node; beyond it new ones get 503. */
const subscriptionsMax = 10_000;
/** A reader that does not drain the socket for this long is closed with a final `event: error`. */
const drainWaitMsMax = 120_000;

/**
 * Server-Sent Events over a store subscription (history, then live, no gap, no duplicate). The next event
 * is pulled only when the socket has drained, so a slow reader makes the subscription fall back to reading
 * history rather than grow a buffer here.
 */
@Injectable()
export class SubscriptionsService implements OnApplicationShutdown {
  private readonly logger = new Logger('sse');
  private readonly open = new Set<() => void>();

  constructor(@Inject(NODE_RUNTIME) private readonly rt: NodeRuntime) {}

  /** `from` from the query, overridden by Last-Event-ID (resume after that id). */
  static startFrom(
    queryFrom: number | undefined,
    lastEventId: string | string[] | undefined,
  ): number | undefined {
    if (lastEventId === undefined) return queryFrom;
    const v = Array.isArray(lastEventId) ? lastEventId[0] : lastEventId;
    if (!/^\d{1,16}$/.test(v.trim()) || !Number.isSafeInteger(Number(v))) {
      throw ApiError.invalid('Last-Event-ID: must be an integer >= 0 (a revision or position sent as id:)', [
        { field: 'Last-Event-ID', problem: 'not an integer' },
      ]);
    }
    return Number(v) + 1;
  }

  serve(
    req: FastifyRequest,
    reply: FastifyReply,
    target: SubscriptionTarget,
    from: number | undefined,
  ): void {
    if (this.open.size >= subscriptionsMax)
      throw ApiError.unavailable(
        `this node serves ${subscriptionsMax} subscriptions already; try another node`,
      );
    const sub = this.rt.store.subscribe(target, { from });
    const idOf = 'streamId' in target ? (e: EventEnvelope) => e.revision : (e: EventEnvelope) => e.position;
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    raw.write(': subscribed\n\n');
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      this.open.delete(close);
      sub.close();
      if (!raw.writableEnded) raw.end();
    };
    this.open.add(close);
    const heartbeat = setInterval(() => {
      if (!closed && raw.writableLength === 0) raw.write(': heartbeat\n\n');
    }, heartbeatMs);
    req.raw.once('close', close);
    raw.once('close', close);
    raw.once('error', close);
    void this.pump(sub, raw, idOf, () => closed).then(
      () => close(),
      (err: Error) => {
        if (!closed && !raw.writableEnded)
          raw.write(
            `event: error\ndata: ${JSON.stringify({ error: 'subscription_failed', message: err.message })}\n\n`,
          );
        if (!closed) this.logger.warn(`subscription ended: ${err.message}`);
        close();
      },
    );
  }

  private async pump(
    sub: EventSubscription,
    raw: FastifyReply['raw'],
    idOf: (e: EventEnvelope) => number,
    isClosed: () => boolean,
  ): Promise<void> {
    // One write per page of events at hand (not per event): fewer writes and promises at high rates.
    for (;;) {
      const batch = await sub.nextBatch();
      if (batch === null || isClosed()) return;
      let text = '';
      for (const e of batch) text += `id: ${idOf(e)}\ndata: ${JSON.stringify(e)}\n\n`;
      if (!raw.write(text)) {
        const drained = await waitDrain(raw, drainWaitMsMax);
        if (!drained && !isClosed()) {
          raw.write(
            `event: error\ndata: ${JSON.stringify({ error: 'slow_reader', message: `the reader did not drain for ${drainWaitMsMax} ms; resume with Last-Event-ID` })}\n\n`,
          );
          return;
        }
      }
    }
  }

  onApplicationShutdown(): void {
    this.closeAll();
  }

  closeAll(): void {
    for (const close of [...this.open]) close();
  }
}

function waitDrain(raw: FastifyReply['raw'], timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      clearTimeout(timer);
      raw.off('drain', onDrain);
      raw.off('close', onClose);
      resolve(v);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    raw.once('drain', onDrain);
    raw.once('close', onClose);
  });
}
