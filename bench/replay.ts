/**
 * Replay benchmark of the event store domain (no Raft, no HTTP): builds 1,000,000 events of ~200 B in a
 * temporary directory on the real disk, then measures
 *   - apply rate while building (100-event appends, idempotency + indexes + projections),
 *   - taking a snapshot cut,
 *   - replay rate rebuilding the built-in projections from the event files (reset → running),
 *   - a $all catch-up subscription's delivery rate,
 *   - open/restart time with 1,000,000 events (load the cut: indexes, idempotency window, projections).
 * Prints a table. Usage: npm run bench:replay [-- --events 1000000 --streams 5000 --dir /path]. With more
 * streams than events / 100, appends get smaller (events / streams each) so that every stream is written.
 * STREAM_INDEX=disk and PROJECTION_STATE=disk put the stream index and the partition states on disk.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EntryType } from '@app/consensus';
import {
  encodeCommand,
  prepareAppend,
  DEFAULT_LIMITS,
  builtInProjections,
  ProjectionEngine,
  EventStoreStateMachine,
  newEventId,
} from '@app/event-store';
import { runBench } from './support/report';

const TARGET_REPLAY_EVENTS_PER_S = 300_000;
const TARGET_RESTART_MS = 3000;
const STREAMS_DEFAULT = 5_000;
const TYPES = ['OrderPlaced', 'ItemAdded', 'ItemRemoved', 'OrderShipped', 'OrderCancelled'];

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function quietLogger() {
  return {
    log: () => undefined,
    warn: (m: string) => console.warn(m),
    error: (m: string) => console.error(m),
  };
}

function engine() {
  return new ProjectionEngine(builtInProjections(), { logger: quietLogger() });
}

function storeOptions() {
  return {
    projections: engine(),
    logger: quietLogger(),
    streamIndex: { kind: process.env.STREAM_INDEX === 'disk' ? ('disk' as const) : ('memory' as const) },
    projectionState: {
      kind: process.env.PROJECTION_STATE === 'disk' ? ('disk' as const) : ('memory' as const),
    },
  };
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

async function main(): Promise<void> {
  const total = Number(arg('events', '1000000'));
  const STREAMS = Number(arg('streams', String(STREAMS_DEFAULT)));
  const EVENTS_PER_APPEND = Math.max(1, Math.min(100, Math.floor(total / STREAMS)));
  const base = arg('dir', os.tmpdir());
  const dir = fs.mkdtempSync(path.join(base, 'es-bench-replay-'));
  const rows: [string, string, string][] = [];
  try {
    let sm = await EventStoreStateMachine.open(dir, storeOptions());
    // ---- build ----
    const pad = 'x'.repeat(60);
    const t0 = performance.now();
    let index = 0;
    let applyMs = 0;
    for (let p = 0; p < total; p += EVENTS_PER_APPEND) {
      const n = Math.min(EVENTS_PER_APPEND, total - p);
      const streamId = `order-${(p / EVENTS_PER_APPEND) % STREAMS}`;
      const events = Array.from({ length: n }, (_, k) => ({
        type: TYPES[(p + k) % TYPES.length],
        data: {
          orderId: streamId,
          sku: `sku-${(p + k) % 977}`,
          quantity: 1 + ((p + k) % 5),
          unitPrice: 9.99,
          note: pad,
        },
      }));
      const cmd = prepareAppend({ streamId, events }, DEFAULT_LIMITS, new Date(), newEventId);
      const data = encodeCommand(cmd);
      const ts = performance.now();
      const r = sm.apply({ index: ++index, term: 1, type: EntryType.Normal, data });
      applyMs += performance.now() - ts;
      if (!r || !('ok' in r) || !r.ok) throw new Error(`bench: append failed: ${JSON.stringify(r)}`);
    }
    const buildMs = performance.now() - t0;
    const stats = sm.stats();
    rows.push([
      `build: prepare + encode + apply, ${EVENTS_PER_APPEND}-event appends`,
      `${fmt(total / (buildMs / 1000))} events/s`,
      `${fmt(buildMs)} ms, ${(stats.eventBytes / total).toFixed(0)} B/event, ${stats.eventFiles} files, ${fmt(stats.streams)} streams`,
    ]);
    rows.push([
      '  of which apply (state machine, +3 projections)',
      `${fmt(total / (applyMs / 1000))} events/s`,
      `${fmt(applyMs)} ms`,
    ]);

    const t1 = performance.now();
    const snap = await sm.snapshot();
    const snapMs = performance.now() - t1;
    rows.push(['snapshot cut (fsynced, hard links)', `${fmt(snapMs)} ms`, `at index ${snap.index}`]);
    const ta = performance.now();
    let archiveBytes = 0;
    for await (const chunk of snap.data) archiveBytes += chunk.length;
    const archiveMs = performance.now() - ta;
    rows.push([
      'snapshot archive streamed (for storage/transfer)',
      `${fmt(archiveBytes / 1048576 / (archiveMs / 1000))} MiB/s`,
      `${fmt(archiveBytes / 1048576)} MiB in ${fmt(archiveMs)} ms`,
    ]);

    // ---- replay: rebuild the built-in projections from the event files ----
    const before = JSON.stringify(sm.projections.get('streams')!.state).length;
    const t2 = performance.now();
    for (const name of sm.projections.names()) sm.projections.reset(name);
    await sm.projections.whenIdle();
    const replayMs = performance.now() - t2;
    const after = JSON.stringify(sm.projections.get('streams')!.state).length;
    if (before !== after) throw new Error('bench: streams projection differs after the rebuild');
    const replayRate = total / (replayMs / 1000);
    rows.push([
      'replay: rebuild streams + event-types + categories',
      `${fmt(replayRate)} events/s`,
      `${fmt(replayMs)} ms; target >= ${fmt(TARGET_REPLAY_EVENTS_PER_S)} ${replayRate >= TARGET_REPLAY_EVENTS_PER_S ? 'OK' : 'MISSED'}`,
    ]);

    // ---- $all catch-up subscription ----
    const t3 = performance.now();
    const sub = sm.subscribe({ all: true }, { from: 0 });
    let delivered = 0;
    for await (const e of sub) {
      if (e.position !== delivered)
        throw new Error(`bench: subscription delivered ${e.position}, expected ${delivered}`);
      if (++delivered === total) break;
    }
    const subMs = performance.now() - t3;
    rows.push([
      '$all subscription catch-up (envelopes, data parsed)',
      `${fmt(total / (subMs / 1000))} events/s`,
      `${fmt(subMs)} ms`,
    ]);

    // ---- restart ----
    await sm.close();
    const t4 = performance.now();
    sm = await EventStoreStateMachine.open(dir, storeOptions());
    const openMs = performance.now() - t4;
    await sm.projections.whenIdle();
    const readyMs = performance.now() - t4;
    if (sm.lastPosition() !== total - 1)
      throw new Error(`bench: reopened at position ${sm.lastPosition()}, expected ${total - 1}`);
    rows.push([
      `restart: open with ${fmt(total)} events (load cut)`,
      `${fmt(openMs)} ms`,
      `projections running after ${fmt(readyMs)} ms; target < ${fmt(TARGET_RESTART_MS)} ms ${readyMs < TARGET_RESTART_MS ? 'OK' : 'MISSED'}`,
    ]);
    const t5 = performance.now();
    const page = sm.readAll({ from: Math.floor(total / 2), limit: 4096 });
    rows.push([
      'read $all page of 4096 after restart',
      `${fmt(performance.now() - t5)} ms`,
      `${page.events.length} events`,
    ]);
    await sm.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const w0 = Math.max(...rows.map((r) => r[0].length), 6);
  const w1 = Math.max(...rows.map((r) => r[1].length), 6);
  console.log(
    `\nevent store replay benchmark: ${fmt(total)} events, STREAM_INDEX=${process.env.STREAM_INDEX ?? 'memory'}, PROJECTION_STATE=${process.env.PROJECTION_STATE ?? 'memory'}, dir under ${base} (node ${process.version}, ${os.cpus().length} CPUs)\n`,
  );
  console.log(`${'metric'.padEnd(w0)} | ${'result'.padStart(w1)} | notes`);
  console.log(`${'-'.repeat(w0)}-|-${'-'.repeat(w1)}-|------`);
  for (const [a, b, c] of rows) console.log(`${a.padEnd(w0)} | ${b.padStart(w1)} | ${c}`);
}

runBench('bench:replay', main);
