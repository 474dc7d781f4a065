import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { waitFor, WaitOptions } from '@app/consensus/testing';
import { freePorts } from './cluster-harness';
import { getJson } from './e2e-client';

/**
 * A real projector process (`dist/apps/projector/src/main.js`, see PROJECTOR.md) for the projector's
 * e2e suites. Like the cluster harness: the process is ended by its PID (`stop()`, `kill9()`,
 * `destroy()`, and an exit hook as a last resort), every wait is bounded, and its output is kept
 * (bounded in memory, in full in a log file beside its data directory) for failure messages.
 */

export const repoRoot = path.resolve(__dirname, '..', '..');
export const projectorMain = path.join(repoRoot, 'dist', 'apps', 'projector', 'src', 'main.js');

const logLinesKept = 4000;
const readyTimeoutMsDefault = 60_000;
const stopTimeoutMsDefault = 30_000;
const killTimeoutMs = 10_000;
const expectExitTimeoutMsDefault = 30_000;
const outputCharsKept = 200_000;

export interface SinkStatus {
  state: 'running' | 'paused' | 'rebuilding' | 'stopped' | 'off' | string;
  position: number;
  lag?: number;
  [k: string]: unknown;
}

export interface ProjectorStatus {
  head: number;
  sinks: Record<string, SinkStatus>;
  readModels: { name: string; state: string; position: number; [k: string]: unknown }[];
  [k: string]: unknown;
}

export interface ProjectorOptions {
  /**
   * Environment of the process (EVENT_STORE_URLS, DATABASE_URL, KAFKA_BROKERS, …). PROJECTOR_HTTP_ADDR
   * defaults to a free port on 127.0.0.1, PROJECTOR_DATA_DIR to a fresh temporary directory.
   */
  env?: Record<string, string>;
  /** Command-line flags (`--kebab-case` forms of the variables). */
  args?: string[];
  /** Print the log live to stderr (debugging); also with E2E_ECHO_LOGS=1. */
  echoLogs?: boolean;
  /** A name for log lines and messages. */
  name?: string;
}

const live = new Set<ChildProcess>();
const tempRoots = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) {
      try {
        if (c.pid) process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    if (process.env.E2E_KEEP_DATA !== '1')
      for (const r of tempRoots) {
        try {
          fs.rmSync(r, { recursive: true, force: true });
        } catch {
          /* left behind */
        }
      }
  });
}

function assertBuilt(): void {
  if (!fs.existsSync(projectorMain))
    throw new Error(`${projectorMain} is missing: run \`npm run build\` first`);
}

export class ProjectorProcess {
  /** Environment of every (re)start: the caller's plus the defaults filled in. */
  readonly env: Record<string, string>;
  readonly args: string[];
  readonly url: string;
  readonly name: string;
  /** Temporary directory of this harness (data dir default and the log file). */
  readonly root: string;
  readonly logFile: string;
  /** Output lines of every start (stderr lines begin with '!', harness lines with '[harness]'). */
  readonly logs: string[] = [];
  /** Exit code (or signal name) of each ended run, oldest first. */
  readonly exitCodes: (number | string | null)[] = [];
  private child: ChildProcess | null = null;
  private readonly echo: boolean;

  private constructor(opts: ProjectorOptions, env: Record<string, string>, root: string) {
    this.env = env;
    this.args = opts.args ?? [];
    this.name = opts.name ?? 'projector';
    this.root = root;
    this.logFile = path.join(root, `${this.name}.log`);
    this.echo = opts.echoLogs ?? process.env.E2E_ECHO_LOGS === '1';
    this.url = `http://${env.PROJECTOR_HTTP_ADDR}`;
  }

  /** Spawns the projector; does not wait (see waitReady / waitHealthy). */
  static async start(opts: ProjectorOptions = {}): Promise<ProjectorProcess> {
    assertBuilt();
    installExitHook();
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'projector-'));
    tempRoots.add(root);
    const env: Record<string, string> = { ...(opts.env ?? {}) };
    if (!env.PROJECTOR_HTTP_ADDR) env.PROJECTOR_HTTP_ADDR = `127.0.0.1:${(await freePorts(1))[0]}`;
    if (!env.PROJECTOR_DATA_DIR) env.PROJECTOR_DATA_DIR = path.join(root, 'data');
    const p = new ProjectorProcess(opts, env, root);
    p.spawn();
    return p;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Exit code (or signal) of the current run; undefined while it runs (or before the first start). */
  get exitCode(): number | string | null | undefined {
    if (!this.child) return this.exitCodes.at(-1);
    if (this.child.exitCode === null && this.child.signalCode === null) return undefined;
    return this.child.exitCode ?? this.child.signalCode;
  }

  running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Polls GET /ready until 200; fails at once if the process exits, with the log's tail. */
  async waitReady(timeoutMs = readyTimeoutMsDefault): Promise<void> {
    await this.waitHttp('/ready', timeoutMs);
  }

  /** Polls GET /health until 200 (process up; sinks may still be connecting). */
  async waitHealthy(timeoutMs = readyTimeoutMsDefault): Promise<void> {
    await this.waitHttp('/health', timeoutMs);
  }

  /** GET /status (throws if it is not a 200 with JSON). */
  async status(timeoutMs = 5000): Promise<ProjectorStatus> {
    const r = await getJson(`${this.url}/status`, timeoutMs);
    if (r.status !== 200 || typeof r.body !== 'object' || r.body === null)
      throw new Error(`GET /status answered ${r.status}: ${r.text.slice(0, 300)}`);
    return r.body as ProjectorStatus;
  }

  /** Polls /status until `predicate` holds; returns that status. Fails if the process exits meanwhile. */
  async waitFor(
    what: string,
    predicate: (s: ProjectorStatus) => boolean,
    opts: WaitOptions = {},
  ): Promise<ProjectorStatus> {
    let last: ProjectorStatus | null = null;
    const r = await waitFor(
      `${this.name}: ${what}`,
      async () => {
        if (!this.running()) return { exited: true as const };
        const s = await this.status();
        last = s;
        return predicate(s) ? { status: s } : undefined;
      },
      { timeoutMs: opts.timeoutMs ?? 60_000, intervalMs: opts.intervalMs ?? 100 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nlast status: ${JSON.stringify(last)}\n${this.tail()}`);
    });
    if ('exited' in r) throw this.exitedWhileWaiting(what);
    return r.status;
  }

  /** SIGKILL by PID and wait for the exit. */
  async kill9(): Promise<number | string | null> {
    return this.signalAndWait('SIGKILL', killTimeoutMs);
  }

  /** SIGTERM, wait up to `timeoutMs` for a graceful exit, then SIGKILL. Returns the exit code/signal. */
  async stop(timeoutMs = stopTimeoutMsDefault): Promise<number | string | null> {
    if (!this.running()) return this.exitCode ?? null;
    const child = this.child!;
    const exited = this.waitExit(timeoutMs).then(
      () => true,
      () => false,
    );
    child.kill('SIGTERM');
    if (await exited) return this.exitCode ?? null;
    this.record(`[harness] ${this.name} (pid ${child.pid}) ignored SIGTERM for ${timeoutMs} ms: SIGKILL`);
    return this.kill9();
  }

  /** Starts again with the same environment and flags (same port and data dir); kills a running one first. */
  async restart(extraEnv: Record<string, string> = {}): Promise<void> {
    assertBuilt();
    if (this.running()) await this.kill9();
    Object.assign(this.env, extraEnv);
    this.spawn();
  }

  /** Waits for the current run to end; returns its exit code (or signal name). */
  waitExit(timeoutMs = stopTimeoutMsDefault): Promise<number | string | null> {
    const child = this.child;
    if (!child) return Promise.reject(new Error(`${this.name} was never started`));
    if (!this.running()) return Promise.resolve(this.exitCode ?? null);
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        clearTimeout(timer);
        resolve(code ?? signal);
      };
      const timer = setTimeout(() => {
        child.off('exit', onExit);
        reject(
          new Error(`${this.name} (pid ${child.pid}) did not exit within ${timeoutMs} ms\n${this.tail()}`),
        );
      }, timeoutMs);
      child.once('exit', onExit);
    });
  }

  /** Log lines since the latest (re)start. */
  logsSinceStart(): string[] {
    for (let i = this.logs.length - 1; i >= 0; i--)
      if (this.logs[i].startsWith(`[harness] ${this.name} started`)) return this.logs.slice(i + 1);
    return this.logs;
  }

  /** The last lines of the log, for failure messages. */
  tail(lines = 40): string {
    return `--- ${this.name} log (tail) ---\n${this.logs.slice(-lines).join('\n')}`;
  }

  /** Kills the process (by PID) and removes the harness's temporary directory. Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.running()) await this.kill9();
    tempRoots.delete(this.root);
    if (process.env.E2E_KEEP_DATA !== '1') fs.rmSync(this.root, { recursive: true, force: true });
  }

  private exitedWhileWaiting(what: string): Error {
    return new Error(`${this.name} exited (${this.exitCode}) while waiting for ${what}\n${this.tail()}`);
  }

  private async waitHttp(route: string, timeoutMs: number): Promise<void> {
    const what = `${this.name} to answer GET ${route} with 200`;
    let last = '';
    const outcome = await waitFor(
      what,
      async () => {
        if (!this.running()) return 'exited';
        const r = await getJson(`${this.url}${route}`, 2000).catch((err: Error) => {
          last = err.message;
          return null;
        });
        if (r) last = `${r.status} ${r.text.slice(0, 200)}`;
        return r?.status === 200 ? 'ok' : undefined;
      },
      { timeoutMs, intervalMs: 50 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last answer: ${last || '(none)'}\n${this.tail()}`);
    });
    if (outcome === 'exited') throw this.exitedWhileWaiting(what);
  }

  private async signalAndWait(signal: NodeJS.Signals, timeoutMs: number): Promise<number | string | null> {
    if (!this.running()) return this.exitCode ?? null;
    const child = this.child!;
    const exited = this.waitExit(timeoutMs);
    try {
      if (child.pid) process.kill(child.pid, signal);
    } catch {
      /* already gone */
    }
    return exited;
  }

  private spawn(): void {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', ...this.env };
    const child = spawn(process.execPath, [projectorMain, ...this.args], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (!child.pid) throw new Error(`could not start ${this.name}`);
    live.add(child);
    this.child = child;
    this.record(`[harness] ${this.name} started with pid ${child.pid} (${this.url})`);
    const onData = (prefix: string) => {
      let partial = '';
      return (chunk: Buffer) => {
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) this.record(prefix + line);
      };
    };
    child.stdout!.on('data', onData(' '));
    child.stderr!.on('data', onData('!'));
    child.once('exit', (code, signal) => {
      live.delete(child);
      this.exitCodes.push(code ?? signal);
      this.record(`[harness] ${this.name} (pid ${child.pid}) exited with ${code ?? signal}`);
    });
  }

  private record(line: string): void {
    this.logs.push(line);
    if (this.logs.length > logLinesKept) this.logs.splice(0, this.logs.length - logLinesKept);
    if (this.echo) process.stderr.write(`[${this.name}] ${line}\n`);
    try {
      fs.appendFileSync(this.logFile, line + '\n');
    } catch {
      /* the root may already be removed */
    }
  }
}

export interface ExpectedExit {
  code: number | string | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the projector and waits for it to exit on its own (config errors: exit code 2 expected). Kills
 * it by PID and fails, with its output, if it is still running after `timeoutMs`. PROJECTOR_HTTP_ADDR
 * and PROJECTOR_DATA_DIR get the same defaults as in ProjectorProcess.start unless given.
 */
export async function runProjectorExpectingExit(
  env: Record<string, string>,
  args: string[] = [],
  timeoutMs = expectExitTimeoutMsDefault,
): Promise<ExpectedExit> {
  assertBuilt();
  installExitHook();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'projector-exit-'));
  tempRoots.add(root);
  const fullEnv: Record<string, string> = { PATH: process.env.PATH ?? '', ...env };
  if (fullEnv.PROJECTOR_HTTP_ADDR === undefined)
    fullEnv.PROJECTOR_HTTP_ADDR = `127.0.0.1:${(await freePorts(1))[0]}`;
  if (fullEnv.PROJECTOR_DATA_DIR === undefined) fullEnv.PROJECTOR_DATA_DIR = path.join(root, 'data');
  try {
    return await new Promise<ExpectedExit>((resolve, reject) => {
      const child = spawn(process.execPath, [projectorMain, ...args], {
        cwd: repoRoot,
        env: fullEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      live.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout!.on(
        'data',
        (b: Buffer) => (stdout = (stdout + b.toString('utf8')).slice(-outputCharsKept)),
      );
      child.stderr!.on(
        'data',
        (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-outputCharsKept)),
      );
      const timer = setTimeout(() => {
        try {
          if (child.pid) process.kill(child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        reject(
          new Error(
            `projector (pid ${child.pid}) was still running after ${timeoutMs} ms; expected it to exit\n` +
              `--- stdout ---\n${stdout.slice(-4000)}\n--- stderr ---\n${stderr.slice(-4000)}`,
          ),
        );
      }, timeoutMs);
      child.once('error', (err) => {
        clearTimeout(timer);
        live.delete(child);
        reject(new Error(`could not start the projector: ${err.message}`));
      });
      // 'close': all output read (the process has exited and its pipes are drained).
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        live.delete(child);
        resolve({ code: code ?? signal, stdout, stderr });
      });
    });
  } finally {
    tempRoots.delete(root);
    if (process.env.E2E_KEEP_DATA !== '1') fs.rmSync(root, { recursive: true, force: true });
  }
}
