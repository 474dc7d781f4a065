/**
 * Processes and directories of a benchmark run. Every child is tracked by PID and killed (SIGKILL, by PID)
 * when the benchmark exits, fails or is interrupted; data lives on the real disk under `.bench-tmp/` in
 * the repository (gitignored) and is removed afterwards.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

function findRepoRoot(from: string): string {
  let dir = from;
  for (let depth = 0; depth < 8; depth++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'bench'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`bench: no repository root (package.json + bench/) above ${from}`);
}

export const repoRoot = findRepoRoot(__dirname);
export const clockTicksPerS = 100;

export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  exit: Promise<number | string | null>;
  exited: boolean;
  logFile: string;
}

const live = new Set<Proc>();
const dirs = new Set<string>();

function killAllNow(): void {
  for (const p of live) {
    try {
      process.kill(p.pid, 'SIGCONT');
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (process.env.BENCH_KEEP_DATA !== '1')
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
}

process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}: killing ${live.size} child process(es) and removing data\n`);
    killAllNow();
    process.exit(130);
  });
}

/** `.bench-tmp/<name>-<pid>` in the repository, on the real disk; removed at exit unless BENCH_KEEP_DATA=1. */
export function benchDir(name: string): string {
  const dir = path.join(repoRoot, '.bench-tmp', `${name}-${process.pid}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  dirs.add(dir);
  const fsType = filesystemOf(dir);
  if (/tmpfs|ramfs/.test(fsType))
    process.stderr.write(`bench: WARNING ${dir} is on ${fsType}: fsync figures mean nothing\n`);
  return dir;
}

/** `df -T` line for a directory: device, type, sizes, mount point. */
export function filesystemOf(dir: string): string {
  try {
    const line = execFileSync('df', ['-T', dir], { encoding: 'utf8' }).trim().split('\n').pop() ?? '?';
    const cols = line.split(/\s+/);
    return `${cols[1]} on ${cols[0]} (${cols[6] ?? '?'})`;
  } catch {
    return '?';
  }
}

/** Starts a tracked process; stdout and stderr go to `logFile`. */
export function spawnTracked(
  name: string,
  args: string[],
  env: Record<string, string>,
  logFile: string,
): Proc {
  const out = fs.openSync(logFile, 'a');
  const child = spawn(args[0], args.slice(1), {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  return trackChild(name, child, logFile);
}

/** Registers a child started elsewhere so that it is killed by PID when the benchmark ends. */
export function trackChild(name: string, child: ChildProcess, logFile = ''): Proc {
  if (!child.pid) throw new Error(`bench: could not start ${name} (${child.spawnargs.join(' ')})`);
  const p: Proc = { name, pid: child.pid, child, exited: false, logFile, exit: Promise.resolve(null) };
  p.exit = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      p.exited = true;
      live.delete(p);
      resolve(code ?? signal);
    });
  });
  live.add(p);
  return p;
}

/** Sends `signal` to the process by PID and waits for its exit (bounded). */
export async function killProc(
  p: Proc,
  signal: NodeJS.Signals = 'SIGKILL',
  timeoutMs = 30_000,
): Promise<void> {
  if (p.exited) return;
  try {
    process.kill(p.pid, signal);
  } catch {
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
  const outcome = await Promise.race([p.exit, timeout]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    process.kill(p.pid, 'SIGKILL');
    await p.exit;
  }
}

/** User + system CPU seconds a live process has used so far (Linux /proc), or NaN. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicksPerS;
  } catch {
    return NaN;
  }
}

/** Resident set size of a process in MiB (NaN once it is gone). */
export function rssMiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` every `intervalMs` until it returns true; throws naming `what` after `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`bench: timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
