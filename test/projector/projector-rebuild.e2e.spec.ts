/**
 * A rebuild survives a crash of the projector: the shadow table and its checkpoint are in the database, so a
 * projector restarted (kill -9) in the middle of a rebuild resumes it from the shadow's checkpoint and swaps it
 * in; the result equals a full replay (a row damaged before the rebuild is repaired) and nothing is left behind.
 */
import { EventStoreClient } from '@app/client';
import type { ClusterHarness } from '../support/cluster-harness';
import { E2EClient } from '../support/e2e-client';
import { createTestDatabase, query, TestDatabase } from '../support/pg-database';
import { ProjectorProcess } from '../support/projector-harness';
import {
  appendMixed,
  builtInModels,
  dbCheckpoints,
  expectReadModelsExact,
  MixedEvents,
  projectorEnv,
  startCluster,
  storeClient,
  waitCheckpoints,
  Writer,
} from './projector-support';

jest.setTimeout(240_000);

describe('rebuild across a projector crash', () => {
  let h: ClusterHarness;
  let client: EventStoreClient;
  let es: E2EClient;
  let db: TestDatabase;
  let p: ProjectorProcess | null = null;

  beforeAll(async () => {
    h = await startCluster();
    client = storeClient(h);
    es = new E2EClient(() => h.urls());
    db = await createTestDatabase('proj_rebuild_crash');
  });

  afterAll(async () => {
    await p?.destroy().catch(() => undefined);
    client?.close();
    await h?.cleanup();
    await db?.drop().catch(() => undefined);
  });

  it('resumes an interrupted rebuild from its shadow checkpoint after kill -9 and swaps it in', async () => {
    await appendMixed(client, new MixedEvents('rbc', 100), 4000);
    p = await ProjectorProcess.start({
      name: 'projector-rebuild-crash',
      env: projectorEnv(h, db.url, {
        PROJECTOR_BATCH_EVENTS: '50',
        PROJECTOR_LINGER_MS: '0',
        PROJECTOR_REBUILD_SWAP_EVENTS: '100',
      }),
    });
    await p.waitReady();
    await waitCheckpoints(db.url, await client.headPosition(), builtInModels, 90_000, p);
    const victim = (
      await query(db.url, 'SELECT stream_id FROM projector.stream_summaries ORDER BY stream_id LIMIT 1')
    )[0].stream_id;
    await query(db.url, 'UPDATE projector.stream_summaries SET event_count = 999999 WHERE stream_id = $1', [
      victim,
    ]);

    const w = new Writer(client, new MixedEvents('rbc-live', 20), { concurrency: 1, pauseMs: 20 }).start();
    try {
      const post = await fetch(`${p.url}/read-models/stream_summaries/rebuild`, { method: 'POST' });
      expect(post.status).toBe(202);
      // crash while the shadow is part-way: past its first batches, well before the head
      const proc = p;
      await proc.waitFor(
        'the rebuild part-way',
        (s) => {
          const m = s.readModels.find((r) => r.name === 'stream_summaries') as {
            rebuild?: { position: number };
          };
          return (m?.rebuild?.position ?? -1) >= 500;
        },
        { timeoutMs: 60_000, intervalMs: 20 },
      );
      await proc.kill9();
      const shadow = await dbCheckpoints(db.url);
      expect(shadow['stream_summaries#rebuild']).toBeGreaterThanOrEqual(500);
      await proc.restart();
      await proc.waitReady();
      await proc.waitFor('the resumed rebuild swapped in', () =>
        proc.logs.some((l) => /rebuild of stream_summaries caught up at position \d+: swapped in/.test(l)),
      );
      // it resumed from the shadow checkpoint, not from 0
      expect(
        proc.logs.some((l) => new RegExp(`rebuild:stream_summaries: writing after position [1-9]`).test(l)),
      ).toBe(true);
    } finally {
      await w.stop();
    }
    await expectReadModelsExact(client, es, db.url, p);
    const cps = await dbCheckpoints(db.url);
    expect(Object.keys(cps).sort()).toEqual([...builtInModels].sort());
    const tables = await query(db.url, `SELECT tablename FROM pg_tables WHERE schemaname = 'projector'`);
    expect(tables.map((t) => t.tablename).sort()).toEqual([
      'checkpoints',
      'dead_letters',
      'migrations',
      'orders',
      'stream_summaries',
    ]);
  });
});
