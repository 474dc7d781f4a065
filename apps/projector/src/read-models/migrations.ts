import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The schema the DataSource was configured with (PROJECTOR_SCHEMA): migrations are written for any. */
export function schemaOf(qr: QueryRunner): string {
  const s = (qr.connection.options as { schema?: string }).schema;
  if (!s) throw new Error('the projector DataSource has no schema configured');
  return s;
}

/**
 * The projector's own tables and the built-in read models (PROJECTOR.md "Postgres"). Later changes come as
 * new migrations; this one is never edited once released.
 */
export class ProjectorBase1765000000000 implements MigrationInterface {
  name = 'ProjectorBase1765000000000';

  async up(qr: QueryRunner): Promise<void> {
    const s = schemaOf(qr);
    await qr.query(
      `CREATE TABLE IF NOT EXISTS "${s}".checkpoints (name text PRIMARY KEY, position bigint NOT NULL)`,
    );
    await qr.query(
      `CREATE TABLE IF NOT EXISTS "${s}".dead_letters (id bigserial PRIMARY KEY, name text NOT NULL, position bigint NOT NULL, ` +
        `event_id text NOT NULL, error text NOT NULL, at timestamptz NOT NULL DEFAULT now())`,
    );
    await qr.query(
      `CREATE INDEX IF NOT EXISTS dead_letters_name_position ON "${s}".dead_letters (name, position)`,
    );
    await qr.query(
      `CREATE TABLE IF NOT EXISTS "${s}".stream_summaries (stream_id text PRIMARY KEY, event_count bigint NOT NULL, ` +
        `last_revision bigint NOT NULL, first_position bigint NOT NULL, last_position bigint NOT NULL, ` +
        `last_event_type text NOT NULL, updated_at timestamptz NOT NULL)`,
    );
    await qr.query(
      `CREATE TABLE IF NOT EXISTS "${s}".orders (order_id text PRIMARY KEY, status text NOT NULL, customer_id text, ` +
        `item_count int NOT NULL, total numeric NOT NULL, items jsonb NOT NULL, updated_at timestamptz)`,
    );
  }

  async down(qr: QueryRunner): Promise<void> {
    const s = schemaOf(qr);
    for (const t of ['orders', 'stream_summaries', 'dead_letters', 'checkpoints'])
      await qr.query(`DROP TABLE IF EXISTS "${s}".${t}`);
  }
}

export const builtInMigrations: (new () => MigrationInterface)[] = [ProjectorBase1765000000000];
