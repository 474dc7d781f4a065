/**
 * `npm run bench:log`: the segment log's append throughput against the raw ceiling of the same disk, and
 * the open time and memory of a 1,000,000-entry log. Prints a table; asserts nothing.
 *
 * Raw ceiling: fs.writeSync + fdatasyncSync of the same bytes per sync as the log wrote per fsync, into a
 * preallocated file (the best case), in the same directory, in the same run.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Entry, EntryType } from '../libs/consensus/src/core/types';
import { DurableStorage } from '../libs/consensus/src/storage';
import { recordHeaderBytes } from '../libs/consensus/src/storage/record';

const entryPayloadBytes = 200;
const recordBytesEach = recordHeaderBytes + entryPayloadBytes;
const runMs = Number(process.env.BENCH_RUN_MS ?? 3000);
const warmupMs = 500;
const openEntries = Number(process.env.BENCH_OPEN_ENTRIES ?? 1_000_000);
const rawFileBytes = 64 * 1024 * 1024;
const quietLogger = { log: () => {}, warn: () => {}, error: (m: string) => console.error(m) };

interface AppendResult {
  appenders: number;
  entriesPerSec: number;
  mbPerSec: number;
  entriesPerSync: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

function benchDir(): string {
  const dir = path.resolve(__dirname, '../../.bench-tmp', `log-${process.pid}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

function fsOf(dir: string): string {
  try {
    return execFileSync('df', ['-T', dir], { encoding: 'utf8' }).trim().split('\n').pop() ?? '?';
  } catch {
    return '?';
  }
}

async function appendRun(dir: string, appenders: number): Promise<AppendResult> {
  fs.rmSync(dir, { recursive: true, force: true });
  const s = await DurableStorage.open(dir, { logger: quietLogger });
  const data = Buffer.alloc(entryPayloadBytes, 7);
  let next = 1;
  let measuring = false;
  let stop = false;
  let count = 0;
  const latencies: number[] = [];
  const appender = async () => {
    while (!stop) {
      const e: Entry = { index: next++, term: 1, type: EntryType.Normal, data };
      if (appenders === 1 && measuring) {
        const t0 = process.hrtime.bigint();
        await s.persist({ entries: [e] });
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      } else {
        await s.persist({ entries: [e] });
      }
      if (measuring) count++;
    }
  };
  const runs = Array.from({ length: appenders }, appender);
  await sleep(warmupMs);
  const before = s.stats();
  measuring = true;
  const t0 = process.hrtime.bigint();
  await sleep(runMs);
  measuring = false;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = s.stats();
  stop = true;
  await Promise.all(runs);
  await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : NaN);
  return {
    appenders,
    entriesPerSec: count / seconds,
    mbPerSec: (count * recordBytesEach) / seconds / 1e6,
    entriesPerSync: count / Math.max(1, after.syncs - before.syncs),
    latencyP50Ms: pct(0.5),
    latencyP99Ms: pct(0.99),
  };
}

/** write + fdatasync of `bytesPerSync` at a time into a preallocated file, serially. */
function rawRun(dir: string, bytesPerSync: number): { mbPerSec: number; syncsPerSec: number } {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'raw.dat');
  const fd = fs.openSync(file, 'w+');
  const zeros = Buffer.alloc(1024 * 1024);
  for (let o = 0; o < rawFileBytes; o += zeros.length) fs.writeSync(fd, zeros, 0, zeros.length, o);
  fs.fsyncSync(fd);
  const buf = Buffer.alloc(bytesPerSync, 7);
  let pos = 0;
  let syncs = 0;
  const t0 = process.hrtime.bigint();
  const until = t0 + BigInt(runMs) * 1_000_000n;
  while (process.hrtime.bigint() < until) {
    if (pos + bytesPerSync > rawFileBytes) pos = 0;
    fs.writeSync(fd, buf, 0, bytesPerSync, pos);
    fs.fdatasyncSync(fd);
    pos += bytesPerSync;
    syncs++;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  fs.closeSync(fd);
  fs.rmSync(file);
  return { mbPerSec: (syncs * bytesPerSync) / seconds / 1e6, syncsPerSec: syncs / seconds };
}

async function buildLog(dir: string, n: number): Promise<number> {
  fs.rmSync(dir, { recursive: true, force: true });
  const s = await DurableStorage.open(dir, { logger: quietLogger });
  const data = Buffer.alloc(entryPayloadBytes, 9);
  const batch = 2000;
  const t0 = Date.now();
  for (let i = 1; i <= n; i += batch) {
    const es: Entry[] = [];
    for (let k = i; k < i + batch && k <= n; k++) es.push({ index: k, term: 1 + Math.floor(k / 100_000), type: EntryType.Normal, data });
    await s.persist({ entries: es });
  }
  await s.close();
  return (Date.now() - t0) / 1000;
}

/** Child mode: open the log, report open time and RSS growth over the process baseline. */
async function openChild(dir: string): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  await sleep(50);
  const baseline = process.memoryUsage().rss;
  const t0 = process.hrtime.bigint();
  const s = await DurableStorage.open(dir, { logger: quietLogger });
  const openMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const last = s.lastIndex();
  const probe = s.entries(1, 2, 1000)[0].data.length + s.entries(last, last + 1, 1000)[0].data.length;
  gc?.();
  await sleep(50);
  const rss = process.memoryUsage().rss;
  const segments = fs.readdirSync(path.join(dir, 'log')).filter((n) => n.endsWith('.seg')).length;
  process.stdout.write(JSON.stringify({ openMs, last, rssGrowthMiB: (rss - baseline) / 1048576, segments, probe }) + '\n');
  await s.close();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, k) => String(c).padStart(widths[k])).join('  ');
}

async function main(): Promise<void> {
  if (process.argv[2] === '--open-child') return openChild(process.argv[3]);
  const root = benchDir();
  console.log(`bench:log — ${entryPayloadBytes}-byte entries (${recordBytesEach}-byte records), ${runMs} ms per run`);
  console.log(`disk under test: ${fsOf(root)}`);
  console.log(`/tmp is on:      ${fsOf('/tmp')}`);
  console.log('');
  const results: AppendResult[] = [];
  for (const n of [1, 16, 256]) results.push(await appendRun(path.join(root, `append-${n}`), n));
  const widths = [9, 12, 9, 10, 13, 13, 10, 10, 9];
  console.log(row(['appenders', 'entries/s', 'MB/s', 'entries/', 'raw MB/s at', 'raw entr/s at', 'ratio', 'p50 ms', 'p99 ms'], widths));
  console.log(row(['', '', '', 'fsync', 'same batch', 'same batch', 'to raw', '', ''], widths));
  for (const r of results) {
    const batchBytes = Math.max(recordBytesEach, Math.round(r.entriesPerSync) * recordBytesEach);
    const raw = rawRun(path.join(root, 'raw'), batchBytes);
    const rawEntries = (raw.mbPerSec * 1e6) / recordBytesEach;
    console.log(
      row(
        [
          r.appenders,
          Math.round(r.entriesPerSec),
          r.mbPerSec.toFixed(1),
          r.entriesPerSync.toFixed(1),
          raw.mbPerSec.toFixed(1),
          Math.round(rawEntries),
          `${((100 * r.mbPerSec) / raw.mbPerSec).toFixed(0)}%`,
          r.appenders === 1 ? r.latencyP50Ms.toFixed(3) : '',
          r.appenders === 1 ? r.latencyP99Ms.toFixed(3) : '',
        ],
        widths,
      ),
    );
  }
  console.log('');
  const logDir = path.join(root, 'open');
  const buildS = await buildLog(logDir, openEntries);
  console.log(`built a log of ${openEntries} entries in ${buildS.toFixed(1)} s`);
  for (const label of ['open (page cache warm)', 'open (again)']) {
    const child = spawnSync(process.execPath, ['--expose-gc', __filename, '--open-child', logDir], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`open child failed: ${child.stderr}`);
    const r = JSON.parse(child.stdout.trim().split('\n').pop()!) as { openMs: number; last: number; rssGrowthMiB: number; segments: number };
    console.log(
      `${label}: ${r.last} entries in ${r.segments} segments opened in ${r.openMs.toFixed(0)} ms; RSS +${r.rssGrowthMiB.toFixed(1)} MiB over the baseline`,
    );
  }
  fs.rmSync(root, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
