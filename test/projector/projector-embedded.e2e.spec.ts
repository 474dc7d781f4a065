/**
 * The embedded default (no DATABASE_URL): read models in PGlite under PROJECTOR_DATA_DIR, served to the
 * projector through pglite-socket. The rows must be exact (no event lost or applied twice) across kill -9 of
 * the projector in the middle of batches: PGlite's own WAL has to keep rows and checkpoint together.
 */
import { EventStoreClient } from '@app/client';
import type { ClusterHarness } from '../support/cluster-harness';
import { sleep } from '../support/e2e-client';
import { ProjectorProcess } from '../support/projector-harness';
import {
  appendMixed,
  expectedSummaries,
  MixedEvents,
  readWholeAll,
  startCluster,
  storeClient,
  SummaryRow,
  Writer,
} from './projector-support';

jest.setTimeout(300_000);

/** Every row of a read model through the REST routes, following `next`. */
async function allRows(p: ProjectorProcess, name: string): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  let after: string | null = null;
  for (let page = 0; page < 10_000; page++) {
    const q: string = after === null ? '' : `&after=${encodeURIComponent(after)}`;
    const r = await fetch(`${p.url}/read-models/${name}?limit=1000${q}`);
    expect(r.status).toBe(200);
    const body = (await r.json()) as { items: Record<string, unknown>[]; next: string | null };
    rows.push(...body.items);
    if (body.next === null) return rows;
    after = body.next;
  }
  throw new Error('too many pages');
}

describe('projector on the embedded database (PGlite)', () => {
  let h: ClusterHarness;
  let client: EventStoreClient;
  let p: ProjectorProcess | null = null;

  beforeAll(async () => {
    h = await startCluster();
    client = storeClient(h);
  });

  afterAll(async () => {
    await p?.destroy().catch(() => undefined);
    client?.close();
    await h?.cleanup();
  });

  it('keeps rows exact across kill -9 mid-batches and serves them over REST', async () => {
    const gen = new MixedEvents('emb');
    await appendMixed(client, gen, 1500);
    p = await ProjectorProcess.start({
      env: {
        EVENT_STORE_URLS: [...h.nodes.values()].map((n) => n.url).join(','),
        PROJECTOR_BATCH_EVENTS: '50',
        PROJECTOR_LINGER_MS: '5',
      },
    });
    await p.waitReady(90_000);
    const writer = new Writer(client, gen, { concurrency: 2 }).start();
    try {
      for (let round = 0; round < 3; round++) {
        await sleep(300 + Math.floor(Math.random() * 1200));
        await p.kill9();
        await writer.waitAppended(50);
        await p.restart();
        await p.waitReady(90_000);
      }
    } finally {
      await writer.stop();
    }
    const head = await client.headPosition();
    const proc = p;
    await proc.waitFor(`postgres at ${head}`, (s) => s.sinks.postgres.position === head, {
      timeoutMs: 120_000,
    });
    const all = await readWholeAll(client);
    const want = expectedSummaries(all).map((r: SummaryRow) => ({
      streamId: r.stream_id,
      eventCount: r.event_count,
      lastRevision: r.last_revision,
      firstPosition: r.first_position,
      lastPosition: r.last_position,
      lastEventType: r.last_event_type,
      updatedAt: r.updated_at,
    }));
    const got = await allRows(proc, 'stream_summaries');
    expect(got).toEqual(want);
    const status = await proc.status();
    expect(status.readModels.map((m) => [m.name, m.position])).toEqual([
      ['stream_summaries', head],
      ['orders', head],
    ]);
    expect(proc.logs.some((l) => /embedded Postgres \(PGlite\)/.test(l))).toBe(true);
  });
});
