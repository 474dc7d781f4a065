import type { QueryRunner } from 'typeorm';
import type { EventEnvelope } from '@app/client';
import type { Row } from '../../read-models';
import { SinkUnavailableError } from '../sink';
import { DeadLetter, foldBatch, FoldResult } from './fold';
import { ModelTable } from './table';

/** One model written by a batch: which table and which checkpoint row (the live model, or its rebuild). */
export interface Target {
  table: ModelTable;
  tableName: string;
  checkpointName: string;
  /** The checkpoint as this process last wrote or read it; the transaction fails if the row says otherwise. */
  checkpoint: number;
  /** The poison event that stopped this model, which is then skipped until it is rebuilt; null while running. */
  stopped: DeadLetter | null;
}

export interface TargetOutcome {
  target: Target;
  result: FoldResult;
}

/**
 * Applies a batch to several models in ONE transaction: for each model, the rows its events touch are read,
 * folded, and upserted/deleted; dead letters inserted; the checkpoint moved with a compare-and-set on its old
 * value, so a second writer that slipped past the advisory lock (e.g. across a server restart) makes this
 * transaction fail instead of applying events twice; the sink is then reopened (checkpoints re-read, locks
 * awaited).
 */
export async function writeBatch(
  qr: QueryRunner,
  schema: string,
  targets: readonly Target[],
  events: readonly EventEnvelope[],
): Promise<TargetOutcome[]> {
  const outcomes: TargetOutcome[] = [];
  await qr.startTransaction();
  try {
    for (const target of targets) {
      if (target.stopped) continue;
      const t = target.table;
      const result = await foldBatch(t, events, target.checkpoint, async (keys) => {
        const rows = (await qr.query(t.selectByKeys(target.tableName), [keys])) as Record<string, unknown>[];
        const m = new Map<string, Row>();
        for (const r of rows) {
          const row = t.fromDb(r);
          m.set(t.keyOfRow(row), row);
        }
        return m;
      });
      if (result.upserts.length > 0)
        await qr.query(t.upsert(target.tableName), t.upsertParams(result.upserts));
      if (result.deletes.length > 0) await qr.query(t.deleteByKeys(target.tableName), [result.deletes]);
      if (result.deadLetters.length > 0) {
        await qr.query(
          `INSERT INTO "${schema}".dead_letters (name, position, event_id, error) ` +
            `SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[])`,
          [
            target.checkpointName,
            result.deadLetters.map((d) => d.position),
            result.deadLetters.map((d) => d.eventId),
            result.deadLetters.map((d) => d.error),
          ],
        );
      }
      if (result.position !== target.checkpoint) {
        const r = await qr.query(
          `UPDATE "${schema}".checkpoints SET position = $2 WHERE name = $1 AND position = $3`,
          [target.checkpointName, result.position, target.checkpoint],
          true,
        );
        if (r.affected !== 1)
          // reopening re-reads the checkpoints and waits for the advisory locks
          throw new SinkUnavailableError(
            `postgres: checkpoint of ${target.checkpointName} is no longer ${target.checkpoint}: another projector wrote it`,
          );
      }
      outcomes.push({ target, result });
    }
    await qr.commitTransaction();
  } catch (err) {
    if (qr.isTransactionActive) await qr.rollbackTransaction().catch(() => undefined);
    throw err;
  }
  return outcomes;
}

/** Reads (creating at −1 when missing) the checkpoints of the given names. */
export async function loadCheckpoints(
  qr: QueryRunner,
  schema: string,
  names: readonly string[],
): Promise<Map<string, number>> {
  await qr.query(
    `INSERT INTO "${schema}".checkpoints (name, position) SELECT n, -1 FROM unnest($1::text[]) AS n ON CONFLICT (name) DO NOTHING`,
    [names],
  );
  const rows = (await qr.query(
    `SELECT name, position FROM "${schema}".checkpoints WHERE name = ANY($1::text[])`,
    [names],
  )) as { name: string; position: string }[];
  return new Map(rows.map((r) => [r.name, Number(r.position)]));
}
