import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { waitFor } from '@app/consensus/testing';
import { freePorts } from './cluster-harness';
import { query } from './pg-database';

/**
 * A Postgres server owned by one test, beside the shared one on 5432: the projector's fault suites
 * stop it, crash it (`stop('immediate')`, `kill9()`) and start it again on the same data directory and
 * port in the middle of a load, which they cannot do to a server other suites use.
 *
 * A real server: initdb'd, fsync on, started with pg_ctl, listening on 127.0.0.1 with its unix socket
 * in its own directory. Postgres refuses to run as root, so when the tests run as root every server
 * command runs as the `postgres` system user (runuser) and the directory is handed to that user.
 * Every wait is bounded and every failure names the step and carries the server log's tail. An exit
 * hook shuts down (SIGQUIT, by PID) any server a test forgot to destroy.
 */

export const pgBinDir = process.env.PG_BIN_DIR ?? '/usr/lib/postgresql/15/bin';

const osUser = 'postgres';
const initdbTimeoutMs = 60_000;
const startTimeoutSec = 60;
const stopTimeoutSec = 60;
const acceptTimeoutMs = 30_000;
const crashExitTimeoutMs = 30_000;
const logTailLines = 40;
const zombieGraceMs = 2000;

export interface PrivatePostgresOptions {
  /** Port on 127.0.0.1; a free one if omitted. */
  port?: number;
  /** Extra postgresql.conf settings (`name = value` lines), e.g. `{ max_connections: '200' }`. */
  settings?: Record<string, string>;
}

export type StopMode = 'smart' | 'fast' | 'immediate';

interface RunResult {
  code: number | string | null;
  stdout: string;
  stderr: string;
}

const liveServers = new Set<PrivatePostgres>();
const liveHelpers = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of liveHelpers) {
      try {
        if (c.pid) process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    for (const s of liveServers) s.abandon();
  });
}

export class PrivatePostgres {
  readonly root: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly logFile: string;
  /** The postmaster's PID while this object believes it is running, else null. */
  pid: number | null = null;
  private destroyed = false;

  private constructor(
    root: string,
    readonly port: number,
  ) {
    this.root = root;
    this.dataDir = path.join(root, 'data');
    this.socketDir = path.join(root, 'sock');
    this.logFile = path.join(root, 'server.log');
  }

  /** initdb into a fresh temporary directory, then start and wait until it accepts connections. */
  static async start(opts: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
    for (const bin of ['initdb', 'pg_ctl', 'postgres'])
      if (!fs.existsSync(path.join(pgBinDir, bin)))
        throw new Error(
          `${path.join(pgBinDir, bin)} is missing (set PG_BIN_DIR to the Postgres bin directory)`,
        );
    installExitHook();
    const port = opts.port ?? (await freePorts(1))[0];
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-private-'));
    const pg = new PrivatePostgres(root, port);
    liveServers.add(pg);
    try {
      fs.mkdirSync(pg.socketDir);
      pg.giveToServerUser(root);
      pg.giveToServerUser(pg.socketDir);
      const init = await pg.runAsServerUser(
        'initdb',
        ['-D', pg.dataDir, '--auth=trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C'],
        initdbTimeoutMs,
      );
      if (init.code !== 0) throw new Error(`initdb exited with ${init.code}:\n${init.stdout}${init.stderr}`);
      const settings: Record<string, string> = {
        listen_addresses: `'127.0.0.1'`,
        port: String(port),
        unix_socket_directories: `'${pg.socketDir}'`,
        fsync: 'on',
        synchronous_commit: 'on',
        full_page_writes: 'on',
        shared_buffers: `'16MB'`,
        max_connections: '100',
        logging_collector: 'off',
        log_line_prefix: `'%m [%p] '`,
        ...opts.settings,
      };
      const conf = Object.entries(settings)
        .map(([k, v]) => `${k} = ${v}`)
        .join('\n');
      fs.appendFileSync(
        path.join(pg.dataDir, 'postgresql.conf'),
        `\n# private-postgres (test harness)\n${conf}\n`,
      );
      await pg.start();
      return pg;
    } catch (err) {
      await pg.destroy().catch(() => undefined);
      throw new Error(`private Postgres on port ${port} failed to start: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** `postgres://postgres@127.0.0.1:<port>/<db>` */
  url(db = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${encodeURIComponent(db)}`;
  }

  /** Starts the server again on the same data directory and port (crash recovery after a crash). */
  async start(): Promise<void> {
    if (this.destroyed) throw new Error('this private Postgres was destroyed');
    if (this.pid !== null && processAlive(this.pid))
      throw new Error(`private Postgres on port ${this.port} is already running (pid ${this.pid})`);
    this.pid = null;
    const r = await this.runAsServerUser(
      'pg_ctl',
      ['-D', this.dataDir, '-l', this.logFile, '-w', '-t', String(startTimeoutSec), 'start'],
      (startTimeoutSec + 15) * 1000,
    );
    this.pid = readPostmasterPid(this.dataDir);
    if (r.code !== 0)
      throw this.failure(`pg_ctl start exited with ${r.code}: ${(r.stdout + r.stderr).trim()}`);
    if (this.pid === null) throw this.failure('pg_ctl start succeeded but postmaster.pid is missing');
    const pid = this.pid;
    const outcome = await waitFor(
      `private Postgres on port ${this.port} to accept connections`,
      async () => {
        if (!processAlive(pid) || isZombie(pid)) return 'exited';
        await query(this.url(), 'SELECT 1', [], { timeoutMs: 3000 });
        return 'ok';
      },
      { timeoutMs: acceptTimeoutMs, intervalMs: 50 },
    ).catch((err: Error) => {
      throw this.failure(err.message);
    });
    if (outcome === 'exited') {
      this.pid = null;
      throw this.failure(`postmaster ${pid} exited before it accepted connections`);
    }
  }

  /**
   * pg_ctl stop. `fast` rolls back open transactions and checkpoints; `immediate` is crash-like (no
   * checkpoint: the next start replays the WAL). Waits until the postmaster has exited.
   */
  async stop(mode: StopMode = 'fast'): Promise<void> {
    if (this.pid === null) return;
    const pid = this.pid;
    const r = await this.runAsServerUser(
      'pg_ctl',
      ['-D', this.dataDir, '-m', mode, '-w', '-t', String(stopTimeoutSec), 'stop'],
      (stopTimeoutSec + 15) * 1000,
    );
    if (r.code !== 0)
      throw this.failure(`pg_ctl stop -m ${mode} exited with ${r.code}: ${(r.stdout + r.stderr).trim()}`);
    await this.waitGone(pid, `postmaster ${pid} to exit after stop -m ${mode}`);
    this.pid = null;
  }

  /**
   * SIGKILL to the postmaster (PID from postmaster.pid): a crash. Its children notice the postmaster's
   * death and exit on their own; this waits for them, since a new postmaster refuses to start while
   * they still hold the old shared memory. `start()` then runs crash recovery.
   */
  async kill9(): Promise<void> {
    const pid = readPostmasterPid(this.dataDir) ?? this.pid;
    if (pid === null || !processAlive(pid)) throw this.failure('kill9: the postmaster is not running');
    const children = childrenOf(pid);
    process.kill(pid, 'SIGKILL');
    await this.waitGone(pid, `postmaster ${pid} to die after SIGKILL`);
    for (const c of children) await this.waitGone(c, `orphaned server process ${c} to exit`);
    // The dead postmaster is an orphan; in some containers init reaps orphans late or never. While it
    // is a zombie it still passes the new postmaster's kill(pid, 0) check on the stale lock files
    // (data dir and socket), so give the reaper a moment, then remove those two files ourselves.
    await waitFor('', () => !processAlive(pid), { timeoutMs: zombieGraceMs, intervalMs: 20 }).catch(() => {
      // Without the lock file the new postmaster cannot find (and free) the old SysV segment: do it.
      const shmid = readLockFileShmId(this.dataDir);
      if (shmid !== null) {
        try {
          execFileSync('ipcrm', ['-m', String(shmid)], { stdio: 'ignore', timeout: 5000 });
        } catch {
          /* already gone */
        }
      }
      fs.rmSync(path.join(this.dataDir, 'postmaster.pid'), { force: true });
      fs.rmSync(path.join(this.socketDir, `.s.PGSQL.${this.port}.lock`), { force: true });
    });
    this.pid = null;
  }

  /** Whether the postmaster process is alive. */
  running(): boolean {
    return this.pid !== null && processAlive(this.pid);
  }

  /** The last lines of the server log. */
  logTail(lines = logTailLines): string {
    try {
      return fs
        .readFileSync(this.logFile, 'utf8')
        .split('\n')
        .slice(-lines - 1)
        .join('\n');
    } catch {
      return '(no server log)';
    }
  }

  /** Stops the server (immediate; SIGKILL by PID if that fails) and removes every file. Safe twice. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    try {
      if (this.pid !== null && processAlive(this.pid)) {
        await this.stop('immediate').catch(async () => {
          if (this.pid !== null && processAlive(this.pid)) await this.kill9().catch(() => undefined);
        });
      }
    } finally {
      this.destroyed = true;
      liveServers.delete(this);
      if (process.env.E2E_KEEP_DATA !== '1') fs.rmSync(this.root, { recursive: true, force: true });
    }
  }

  /** Exit hook only (synchronous): immediate shutdown by PID, files removed. */
  abandon(): void {
    const pid = this.pid ?? readPostmasterPid(this.dataDir);
    if (pid !== null) {
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {
        /* already gone */
      }
    }
    try {
      if (process.env.E2E_KEEP_DATA !== '1') fs.rmSync(this.root, { recursive: true, force: true });
    } catch {
      /* the server may still be writing; the tmp dir is left */
    }
  }

  private failure(what: string): Error {
    return new Error(
      `private Postgres (port ${this.port}, ${this.dataDir}): ${what}\n--- server log (tail) ---\n${this.logTail()}`,
    );
  }

  private async waitGone(pid: number, what: string): Promise<void> {
    await waitFor(what, () => !processAlive(pid) || isZombie(pid), {
      timeoutMs: crashExitTimeoutMs,
      intervalMs: 20,
    }).catch((err: Error) => {
      throw this.failure(err.message);
    });
  }

  private giveToServerUser(dir: string): void {
    if (!runningAsRoot()) return;
    const { uid, gid } = serverUserIds();
    fs.chownSync(dir, uid, gid);
    fs.chmodSync(dir, 0o700);
  }

  /** Runs a Postgres binary (as the postgres user when we are root), bounded; kills it by PID on timeout. */
  private runAsServerUser(bin: string, args: string[], timeoutMs: number): Promise<RunResult> {
    const file = path.join(pgBinDir, bin);
    const [cmd, argv] = runningAsRoot() ? ['runuser', ['-u', osUser, '--', file, ...args]] : [file, args];
    return new Promise<RunResult>((resolve, reject) => {
      // cwd: the postgres user must be able to enter it.
      const child = spawn(cmd, argv, { cwd: this.root, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (b: Buffer) => (stdout = (stdout + b.toString('utf8')).slice(-20_000)));
      child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-20_000)));
      liveHelpers.add(child);
      const timer = setTimeout(() => {
        try {
          if (child.pid) process.kill(child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        reject(
          this.failure(`${bin} ${args.join(' ')} did not finish within ${timeoutMs} ms:\n${stdout}${stderr}`),
        );
      }, timeoutMs);
      child.once('error', (err) => {
        clearTimeout(timer);
        liveHelpers.delete(child);
        reject(this.failure(`could not run ${cmd}: ${err.message}`));
      });
      // 'exit', not 'close': the postmaster that pg_ctl leaves behind must not be able to hold us.
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        liveHelpers.delete(child);
        setImmediate(() => resolve({ code: code ?? signal, stdout, stderr }));
      });
    });
  }
}

function runningAsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

let serverIds: { uid: number; gid: number } | null = null;
function serverUserIds(): { uid: number; gid: number } {
  if (!serverIds) {
    try {
      const uid = Number(execFileSync('id', ['-u', osUser], { encoding: 'utf8', timeout: 5000 }).trim());
      const gid = Number(execFileSync('id', ['-g', osUser], { encoding: 'utf8', timeout: 5000 }).trim());
      serverIds = { uid, gid };
    } catch (err) {
      throw new Error(`running as root needs a '${osUser}' system user to run Postgres as: ${err}`);
    }
  }
  return serverIds;
}

/** First line of postmaster.pid, or null if there is none. */
export function readPostmasterPid(dataDir: string): number | null {
  try {
    const first = fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0];
    const pid = Number(first.trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** The SysV shared memory id recorded in postmaster.pid (line 7: key and id), or null. */
function readLockFileShmId(dataDir: string): number | null {
  try {
    const line = fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[6] ?? '';
    const id = Number(line.trim().split(/\s+/)[1]);
    return Number.isInteger(id) && id >= 0 ? id : null;
  } catch {
    return null;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** /proc/<pid>/stat fields after the command name: state, ppid, … */
function procStat(pid: number): string[] | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

function isZombie(pid: number): boolean {
  return procStat(pid)?.[0] === 'Z';
}

/** PIDs whose parent is `pid` right now (Linux /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let entries: string[] = [];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const st = procStat(Number(e));
    if (st && Number(st[1]) === pid) out.push(Number(e));
  }
  return out;
}
