/**
 * The load generator: Debian's `wrk` (C, epoll, one light thread) with `bench/append.lua` building the
 * bodies, so that the load costs little of the 2 shared cores. Also the HTTP ceiling: a trivial node:http
 * server (bench/support/trivial-server.ts) driven by the same wrk in the same run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { waitFor } from '@app/consensus/testing';
import { cpuSeconds, killProc, Proc, repoRoot, spawnTracked, trackChild } from './bench-run';
import * as fs from 'node:fs';

export const appendLua = path.join(repoRoot, 'bench', 'append.lua');

export interface WrkResult {
  requests: number;
  durationUs: number;
  bytes: number;
  ok: number;
  redirects: number;
  clientErrors: number;
  serverErrors: number;
  otherStatus: number;
  connectErrors: number;
  readErrors: number;
  writeErrors: number;
  timeouts: number;
  latencyUs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  /** 201 answers per second. */
  okPerS: number;
  /** CPU used by wrk itself, in cores (1.0 = one core busy for the whole run). */
  wrkCores: number;
  /** Per second of the run, when the script prints `WRK_TIMELINE` (bench/soak.lua). */
  timeline?: TimelineSecond[];
}

/** One second of a run: 201 answers, other answers, and the 201s' latency (microseconds; p50/p99 within 10%). */
export interface TimelineSecond {
  s: number;
  ok: number;
  other: number;
  p50: number;
  p99: number;
  max: number;
}

export interface WrkRun {
  url: string;
  connections: number;
  durationS: number;
  eventsPerRequest: number;
  eventBytes: number;
  streams: number;
  /** Each thread stops after this many 201s (0: run for durationS). */
  stopAfterOkPerThread?: number;
  threads?: number;
  timeoutS?: number;
  /** The Lua script (default bench/append.lua; bench/soak.lua takes the same arguments). */
  script?: string;
}

/** Exits with install instructions when wrk is not on PATH. */
export function requireWrk(): string {
  const r = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  if (r.error) {
    process.stderr.write(
      'bench: `wrk` (the HTTP load generator) is not installed.\n' +
        '  Debian/Ubuntu: sudo apt-get install -y wrk\n' +
        '  macOS:         brew install wrk\n' +
        'then run the benchmark again.\n',
    );
    process.exit(2);
  }
  return (r.stdout + r.stderr).split('\n')[0].trim();
}

export async function runWrk(run: WrkRun): Promise<WrkResult> {
  const threads = run.threads ?? 1;
  const args = [
    '-t',
    String(threads),
    '-c',
    String(Math.max(run.connections, threads)),
    '-d',
    `${run.durationS}s`,
    '--timeout',
    `${run.timeoutS ?? 30}s`,
    '-s',
    run.script ?? appendLua,
    run.url,
    '--',
    randomBytes(4).toString('hex'),
    String(run.eventsPerRequest),
    String(run.eventBytes),
    String(run.streams),
    String(run.stopAfterOkPerThread ?? 0),
  ];
  return spawnWrk(
    'wrk',
    args,
    threads,
    run.stopAfterOkPerThread !== undefined && run.stopAfterOkPerThread > 0,
  );
}

/**
 * Runs wrk with a script of ours that prints `WRK_RESULT {json}` in done(), sampling its CPU. With
 * `stopWhenThreadsDone`, once `threads` threads printed WRK_THREAD_STOPPED, SIGINT makes wrk report at once
 * instead of sleeping out the rest of -d.
 */
export async function spawnWrk(
  label: string,
  args: string[],
  threads: number,
  stopWhenThreadsDone: boolean,
): Promise<WrkResult> {
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(label, child);
  let out = '';
  let err = '';
  let cpu = 0;
  const cpuTimer = setInterval(() => {
    const c = child.pid ? cpuSeconds(child.pid) : NaN;
    if (Number.isFinite(c)) cpu = c;
  }, 200);
  let stoppedThreads = 0;
  child.stdout.on('data', (c: Buffer) => {
    const text = c.toString();
    out += text;
    stoppedThreads += text.split('WRK_THREAD_STOPPED').length - 1;
    if (stoppedThreads >= threads && stopWhenThreadsDone) child.kill('SIGINT');
  });
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearInterval(cpuTimer);
  const line = out.split('\n').find((l) => l.startsWith('WRK_RESULT '));
  if (code !== 0 || !line)
    throw new Error(`bench: wrk ${args.join(' ')} failed (exit ${code}):\n${out}\n${err}`);
  const r = JSON.parse(line.slice('WRK_RESULT '.length)) as WrkResult;
  const timeline = out.split('\n').find((l) => l.startsWith('WRK_TIMELINE '));
  if (timeline) r.timeline = JSON.parse(timeline.slice('WRK_TIMELINE '.length)) as TimelineSecond[];
  const seconds = r.durationUs / 1e6;
  r.okPerS = r.ok / seconds;
  r.wrkCores = cpu / seconds;
  return r;
}

/** Non-201 answers and socket errors of a run, as a short note ('' when clean). */
export function wrkProblems(r: WrkResult): string {
  const parts: string[] = [];
  const add = (n: number, what: string) => n > 0 && parts.push(`${n} ${what}`);
  add(r.redirects, '3xx');
  add(r.clientErrors, '4xx');
  add(r.serverErrors, '5xx');
  add(r.otherStatus, 'other status');
  add(r.connectErrors, 'connect errors');
  add(r.readErrors, 'read errors');
  add(r.writeErrors, 'write errors');
  add(r.timeouts, 'timeouts');
  return parts.join(', ');
}

/** The trivial node:http server as its own process. */
export class CeilingServer {
  private constructor(
    readonly proc: Proc,
    readonly url: string,
  ) {}

  static async start(dir: string): Promise<CeilingServer> {
    const main = path.join(repoRoot, 'bench', 'support', 'trivial-server.ts');
    const register = path.join(repoRoot, 'tools', 'swc-register.js');
    const logFile = path.join(dir, 'ceiling-server.log');
    const proc = spawnTracked('ceiling', [process.execPath, '--require', register, main], {}, logFile);
    let port = 0;
    await waitFor(
      'the trivial HTTP server to listen',
      async () => {
        if (proc.exited) throw new Error(`bench: trivial server exited: ${fs.readFileSync(logFile, 'utf8')}`);
        const m = /LISTENING (\d+)/.exec(fs.readFileSync(logFile, 'utf8'));
        if (m) port = Number(m[1]);
        return port > 0;
      },
      { timeoutMs: 20_000, intervalMs: 20, backoff: false },
    );
    return new CeilingServer(proc, `http://127.0.0.1:${port}`);
  }

  stop(): Promise<void> {
    return killProc(this.proc, 'SIGKILL');
  }
}
