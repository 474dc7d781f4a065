import type { DataSource } from 'typeorm';
import type { ReadModel, Row } from '../../read-models';

type Kind = 'number' | 'timestamp' | 'json' | 'text';

interface ColumnInfo {
  /** Column name in SQL. */
  db: string;
  /** Property name in rows. */
  prop: string;
  /** SQL type for array casts (`bigint`, `timestamptz`, …). */
  sqlType: string;
  kind: Kind;
}

const numberTypes = new Set([
  'bigint',
  'int',
  'int2',
  'int4',
  'int8',
  'integer',
  'smallint',
  'numeric',
  'decimal',
  'real',
  'double precision',
  'float',
  'float4',
  'float8',
]);

function kindOf(sqlType: string): Kind {
  if (numberTypes.has(sqlType)) return 'number';
  if (sqlType.startsWith('timestamp')) return 'timestamp';
  if (sqlType === 'json' || sqlType === 'jsonb') return 'json';
  return 'text';
}

/**
 * How one read model's rows map to its table: columns from the TypeORM entity metadata, the SQL of the
 * per-batch statements (one SELECT of the touched rows, one multi-row upsert, one delete), and the
 * conversion of rows read back. The table name is a parameter: a rebuild writes the same model into a
 * shadow table beside the live one.
 */
export class ModelTable {
  readonly table: string;
  readonly key: ColumnInfo;
  readonly columns: ColumnInfo[];

  constructor(
    readonly model: ReadModel,
    readonly schema: string,
    dataSource: DataSource,
  ) {
    const meta = dataSource.getMetadata(model.entity);
    this.table = meta.tableName;
    if (meta.primaryColumns.length !== 1)
      throw new Error(`read model ${model.name}: its entity must have exactly one primary column`);
    const info = (c: (typeof meta.columns)[number]): ColumnInfo => {
      if (typeof c.type !== 'string')
        throw new Error(
          `read model ${model.name}: column ${c.propertyName} needs an explicit SQL type, e.g. @Column({ type: 'text' })`,
        );
      const sqlType = c.type.toLowerCase();
      return { db: c.databaseName, prop: c.propertyName, sqlType, kind: kindOf(sqlType) };
    };
    this.columns = meta.columns.map(info);
    this.key = info(meta.primaryColumns[0]);
  }

  qualified(table = this.table): string {
    return `"${this.schema}"."${table}"`;
  }

  selectByKeys(table: string): string {
    return `SELECT * FROM ${this.qualified(table)} WHERE "${this.key.db}" = ANY($1::${this.key.sqlType}[])`;
  }

  /** `INSERT … SELECT * FROM unnest($1::t1[], …) ON CONFLICT (key) DO UPDATE`: one statement for any row count. */
  upsert(table: string): string {
    const cols = this.columns.map((c) => `"${c.db}"`).join(', ');
    const arrays = this.columns
      .map((c, i) => (c.kind === 'json' ? `$${i + 1}::text[]` : `$${i + 1}::${c.sqlType}[]`))
      .join(', ');
    const selects = this.columns
      .map((c, i) => (c.kind === 'json' ? `c${i}::${c.sqlType}` : `c${i}`))
      .join(', ');
    const names = this.columns.map((_, i) => `c${i}`).join(', ');
    const updates = this.columns
      .filter((c) => c !== this.key && c.db !== this.key.db)
      .map((c) => `"${c.db}" = EXCLUDED."${c.db}"`)
      .join(', ');
    const onConflict = updates === '' ? 'DO NOTHING' : `DO UPDATE SET ${updates}`;
    return (
      `INSERT INTO ${this.qualified(table)} (${cols}) SELECT ${selects} FROM unnest(${arrays}) AS u(${names}) ` +
      `ON CONFLICT ("${this.key.db}") ${onConflict}`
    );
  }

  deleteByKeys(table: string): string {
    return `DELETE FROM ${this.qualified(table)} WHERE "${this.key.db}" = ANY($1::${this.key.sqlType}[])`;
  }

  /** Column-wise arrays for `upsert`. */
  upsertParams(rows: readonly Row[]): unknown[][] {
    return this.columns.map((c) =>
      rows.map((r) => {
        const v = r[c.prop];
        if (v === undefined || v === null) return null;
        return c.kind === 'json' ? JSON.stringify(v) : v;
      }),
    );
  }

  /** A row as read from Postgres → the shape handlers and the REST routes see. */
  fromDb(dbRow: Record<string, unknown>): Row {
    const out: Row = {};
    for (const c of this.columns) {
      const v = dbRow[c.db];
      if (v === null || v === undefined) out[c.prop] = null;
      else if (c.kind === 'number') out[c.prop] = Number(v);
      else if (c.kind === 'timestamp') out[c.prop] = v instanceof Date ? v.toISOString() : String(v);
      else out[c.prop] = v;
    }
    return out;
  }

  keyOfRow(row: Row): string {
    return String(row[this.key.prop]);
  }
}
