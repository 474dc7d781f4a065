import { ChildProcess, spawn } from 'child_process';
import * as path from 'path';
import { DurableStorage } from './durable-storage';
import { crashEntry } from '../testing/crash-child';
import { Prng } from '../testing/prng';
import { CapturingLogger, removeDir, tempDir } from '../testing/storage-fixtures';
import { waitFor } from '../testing/wait-for';

// Crash tests on the real file system: a child appends (with truncations at each restart, segment rolls
// every 64 KiB and 4 concurrent appenders) and is killed with SIGKILL at seeded random moments. After each
// kill the parent reopens the directory and checks every entry the child was told is durable.
const iterations = Number(process.env.CRASH_ITERATIONS ?? 24);
const killDelayMsMin = 20;
const killDelayMsMax = 300;
const readyTimeoutMs = 30_000;
const seed = Number(process.env.CRASH_SEED ?? 20240601);

const repo = path.resolve(__dirname, '../../../..');
const register = path.join(repo, 'tools/swc-register.js');
const childScript = path.join(__dirname, '../testing/crash-child.ts');

jest.setTimeout(240_000);

interface RunReport {
  lastDurable: number;
  hardStateTerm: number;
  ready: boolean;
  stderr: string;
  exit: Promise<void>;
}

/** Starts the child and collects its durability reports until it dies. */
function startChild(
  dir: string,
  from: number,
  term: number,
  childSeed: number,
): { child: ChildProcess; report: RunReport } {
  const child = spawn(
    process.execPath,
    ['--require', register, childScript, dir, String(from), String(term), String(childSeed)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: repo,
    },
  );
  const report: RunReport = {
    lastDurable: 0,
    hardStateTerm: 0,
    ready: false,
    stderr: '',
    exit: Promise.resolve(),
  };
  let partial = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      const [kind, a, b] = line.split(' ');
      if (kind === 'ready') report.ready = true;
      else if (kind === 'hs') report.hardStateTerm = Number(a);
      else if (kind === 'e' && Number(b) === term)
        report.lastDurable = Math.max(report.lastDurable, Number(a));
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (report.stderr += c));
  report.exit = new Promise((resolve) => child.on('exit', () => resolve()));
  return { child, report };
}

/** Problems found in the reopened log (plain checks: a log holds many thousands of entries). */
function verify(s: DurableStorage, expectedTerm: number[]): string[] {
  const problems: string[] = [];
  const last = s.lastIndex();
  if (last < expectedTerm.length - 1)
    problems.push(`last index ${last} < ${expectedTerm.length - 1} reported durable`);
  let i = s.firstIndex();
  let prevTerm = 0;
  while (i <= last && problems.length < 10) {
    for (const e of s.entries(i, last + 1, 1 << 20)) {
      const want = expectedTerm[i];
      if (e.index !== i) problems.push(`entry ${e.index} where ${i} was expected (gap)`);
      else if (e.term < prevTerm) problems.push(`term ${e.term} at ${i} below ${prevTerm}`);
      else if (!Buffer.from(e.data).equals(Buffer.from(crashEntry(e.index, e.term).data)))
        problems.push(`entry ${i} damaged`);
      else if (want !== undefined && e.term !== want)
        problems.push(`entry ${i} has term ${e.term}, ${want} was reported durable`);
      prevTerm = e.term;
      i++;
    }
  }
  if (s.term(last + 1) !== undefined) problems.push(`an entry after the last index ${last}`);
  return problems;
}

describe('crash safety (SIGKILL at random moments)', () => {
  let dir: string;
  let live: ChildProcess | null = null;
  beforeEach(() => (dir = tempDir('storage-crash-')));
  afterEach(async () => {
    // A failed or timed-out test must not leave a child writing into the directory.
    if (live !== null && live.exitCode === null && live.signalCode === null) {
      const exited = new Promise((r) => live!.once('exit', r));
      live.kill('SIGKILL');
      await exited;
    }
    live = null;
    removeDir(dir);
  });

  test(`${iterations} kills: every entry reported durable is present and intact, the log has no gaps`, async () => {
    const random = new Prng(seed).asFunction();
    /** expectedTerm[i] for every index some run was told is durable (and no later run truncated). */
    const expectedTerm: number[] = [0];
    let hardStateTerm = 0;
    let lastIndex = 0;
    let totalReported = 0;
    for (let run = 1; run <= iterations; run++) {
      const from = Math.max(1, lastIndex + 1 - Math.floor(random() * 4));
      const term = run;
      const { child, report } = startChild(dir, from, term, Math.floor(random() * 1e9));
      live = child;
      try {
        await waitFor(`child ${run} to open the storage`, () => report.ready || child.exitCode !== null, {
          timeoutMs: readyTimeoutMs,
          intervalMs: 5,
        });
        if (!report.ready) throw new Error(`child ${run} exited early: ${report.stderr}`);
        await new Promise((r) =>
          setTimeout(r, killDelayMsMin + random() * (killDelayMsMax - killDelayMsMin)),
        );
      } finally {
        child.kill('SIGKILL');
        await report.exit;
      }
      expect(report.stderr).toBe('');
      // The model: this run truncated from `from` and made [from, lastDurable] durable at `term`.
      expectedTerm.length = Math.min(expectedTerm.length, from);
      for (let i = from; i <= report.lastDurable; i++) expectedTerm[i] = term;
      totalReported += Math.max(0, report.lastDurable - from + 1);
      hardStateTerm = Math.max(hardStateTerm, report.hardStateTerm);

      const logger = new CapturingLogger();
      const s = await DurableStorage.open(dir, { segmentBytes: 64 * 1024, logger });
      try {
        lastIndex = s.lastIndex();
        expect(s.initialState().hardState.term).toBeGreaterThanOrEqual(hardStateTerm);
        expect(verify(s, expectedTerm)).toEqual([]);
      } finally {
        await s.close();
      }
    }
    // The test must have exercised something: most runs report durable entries.
    expect(totalReported).toBeGreaterThan(iterations * 10);
  });
});
