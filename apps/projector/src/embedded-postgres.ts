import * as fs from 'node:fs';
import * as path from 'node:path';

export interface EmbeddedPostgres {
  /** A postgres:// URL of the socket server (one connection at a time: use a pool of one). */
  url: string;
  close(): Promise<void>;
}

/**
 * The default database when DATABASE_URL is unset: PGlite (Postgres compiled to WebAssembly) with its data
 * under `<dataDir>/pglite`, served on a loopback port by pglite-socket so that TypeORM and `pg` talk to it as
 * to any server. It serves one connection at a time; more deadlock, so the projector's pool has one.
 */
export async function startEmbeddedPostgres(dataDir: string): Promise<EmbeddedPostgres> {
  const dir = path.resolve(dataDir, 'pglite');
  fs.mkdirSync(dir, { recursive: true });
  // Loaded lazily: the WebAssembly module is large and unused with a real server.
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const db = await PGlite.create({ dataDir: dir });
  const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1' });
  await server.start();
  const conn = String(server.getServerConn());
  const port = Number(conn.slice(conn.lastIndexOf(':') + 1));
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    close: async () => {
      await server.stop().catch(() => undefined);
      await db.close().catch(() => undefined);
    },
  };
}
