import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { MergeJob, runMergeJob } from './merge-job';
import { RunInfo } from './run-file';

/**
 * Merges of runs on a thread of their own, one per process, shared by every store (the stream index and the
 * partition stores of all projections). A merge reads whole runs and writes a new one: CPU (decoding,
 * comparing, encoding, CRCs) that on the event loop came in 2-8 ms turns between requests, lost to a loaded
 * loop, and let runs pile up (35 index runs at 2M streams where 6-8 would do; every lookup of a new key
 * asks each). On its own thread a merge runs whenever a core is free, and the loop only swaps the result in.
 *
 * The thread starts on the first merge and ends after IDLE_MS without one: an isolate costs ~10 MiB that an
 * idle node need not keep. It holds no state: a job names its input files and its output file. Should the
 * thread fail to start or die, the merges under way fail (their stores record it, as for a failed write) and
 * the next merge starts a new thread.
 */
export const IDLE_MS = 5_000;

type Reply = { id: number; info: RunInfo } | { id: number; error: string };

export class MergeThread {
  private static sharedThread: MergeThread | null = null;

  private worker: Worker | null = null;
  private readonly pending = new Map<
    number,
    { worker: Worker; resolve: (i: RunInfo) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | null = null;
  /** Jobs run, threads started (tests and metrics). */
  jobs = 0;
  starts = 0;

  constructor(private readonly idleMs = IDLE_MS) {}

  /** The process's merge thread. */
  static shared(): MergeThread {
    return (MergeThread.sharedThread ??= new MergeThread());
  }

  /** Runs the merge on the thread; resolves with the output run's description once it is in place. */
  run(job: MergeJob): Promise<RunInfo> {
    const worker = this.ensure();
    const id = this.nextId++;
    this.jobs++;
    if (this.idleTimer !== null) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
    // While jobs are out the thread keeps the process alive (a store awaiting its merge has nothing else).
    if (this.pending.size === 0) worker.ref();
    return new Promise<RunInfo>((resolve, reject) => {
      this.pending.set(id, { worker, resolve, reject });
      worker.postMessage({ id, job });
    });
  }

  /** Whether the thread is running now. */
  get running(): boolean {
    return this.worker !== null;
  }

  /** Ends the thread (jobs under way fail). */
  async stop(): Promise<void> {
    const w = this.worker;
    if (w === null) return;
    this.worker = null;
    await w.terminate();
  }

  private ensure(): Worker {
    if (this.worker !== null) return this.worker;
    const w = startWorker();
    this.starts++;
    w.on('message', (r: Reply) => this.settle(r));
    w.on('error', (e) => this.failAll(w, e));
    w.on('exit', (code) => this.failAll(w, new Error(`the merge thread exited (code ${code})`)));
    this.worker = w;
    return w;
  }

  private settle(r: Reply): void {
    const p = this.pending.get(r.id);
    if (p === undefined) return;
    this.pending.delete(r.id);
    if ('error' in r) p.reject(new Error(r.error));
    else p.resolve(r.info);
    if (this.pending.size === 0) this.idle();
  }

  private idle(): void {
    const w = this.worker;
    if (w === null) return;
    w.unref();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.pending.size > 0 || this.worker !== w) return;
      this.worker = null;
      void w.terminate();
    }, this.idleMs);
    this.idleTimer.unref();
  }

  /** The thread `w` failed or ended: its jobs fail (not those of a thread started since). */
  private failAll(w: Worker, e: Error): void {
    if (this.worker === w) this.worker = null;
    for (const [id, p] of this.pending) {
      if (p.worker !== w) continue;
      this.pending.delete(id);
      p.reject(new Error(`merge thread: ${e.message}`));
    }
  }
}

/**
 * The worker, from the compiled file next to this one (dist/), or from the TypeScript source through the
 * repository's require hook (tests, the simulator and benchmarks run the sources).
 */
function startWorker(): Worker {
  // Young generation of 4 MiB (the default 16+ would be resident for nothing: a merge allocates little
  // that lives), old generation bounded so a runaway merge fails instead of growing the node.
  const resourceLimits = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 128 };
  const js = path.join(__dirname, 'merge-worker.js');
  if (fs.existsSync(js)) return new Worker(js, { resourceLimits });
  const ts = path.join(__dirname, 'merge-worker.ts');
  const hook = findUp(__dirname, path.join('tools', 'swc-register.js'));
  if (!fs.existsSync(ts) || hook === null)
    throw new Error(`merge thread: neither ${js} nor ${ts} with tools/swc-register.js was found`);
  return new Worker(`require(${JSON.stringify(hook)}); require(${JSON.stringify(ts)});`, {
    eval: true,
    resourceLimits,
  });
}

function findUp(from: string, rel: string): string | null {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const f = path.join(dir, rel);
    if (fs.existsSync(f)) return f;
    if (path.dirname(dir) === dir) return null;
  }
}

/**
 * Where a store's merges run: on the merge thread (`thread`), or on the caller's event loop in slices (the
 * stores' `mergeThread: false`, for callers that want no thread).
 */
export function mergeRuns(job: MergeJob, thread: boolean, sliceMs: () => number): Promise<RunInfo> {
  return thread ? MergeThread.shared().run(job) : runMergeJob(job, sliceMs);
}
