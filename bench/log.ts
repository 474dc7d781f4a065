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
import { DurableStorage, Entry, EntryType } from '@app/consensus';
import { recordHeaderBytes, syncsInFlightMaxDefault } from '@app/consensus/testing';
import { percentile, runBench } from './support/report';

/** The open child runs this file from TypeScript too. */
const swcRegister = path.join(__dirname, '..', 'tools', 'swc-register.js');
const entryPayloadBytes = 200;
const recordBytesEach = recordHeaderBytes + entryPayloadBytes;
const runMs = Number(process.env.BENCH_RUN_MS ?? 3000);
const warmupMs = 500;
/** Log and raw runs alternate in this many slices each. */
const slices = 12;
const openEntries = Number(process.env.BENCH_OPEN_ENTRIES ?? 1_000_000);
const rawFileBytes = 64 * 1024 * 1024;
const quietLogger = { log: () => {}, warn: () => {}, error: (m: string) => console.error(m) };

interface AppendResult {
  label: string;
  appenders: number;
  entriesPerSec: number;
  mbPerSec: number;
  entriesPerSync: number;
  rawMbPerSec: number;
  /** Median over the slices of log bytes/s ÷ raw bytes/s (each pair ran back to back). */
  ratioMedian: number;
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

/**
 * Appenders run against the log in slices; after each slice they are parked and the raw ceiling runs for
 * as long with that slice's bytes per fsync, so both see the same disk and the same background load.
 */
async function appendRun(
  dir: string,
  appenders: number,
  raw: RawFile,
  syncsInFlightMax?: number,
): Promise<AppendResult> {
  fs.rmSync(dir, { recursive: true, force: true });
  const s = await DurableStorage.open(dir, { logger: quietLogger, syncsInFlightMax });
  const data = Buffer.alloc(entryPayloadBytes, 7);
  let next = 1;
  let measuring = false;
  let stop = false;
  let count = 0;
  let gate: Promise<void> | null = null;
  let parked = 0;
  const latencies: number[] = [];
  const appender = async () => {
    while (!stop) {
      if (gate !== null) {
        parked++;
        await gate;
        parked--;
        continue;
      }
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
  let logSeconds = 0;
  let rawBytes = 0;
  let rawSeconds = 0;
  let syncs = 0;
  const ratios: number[] = [];
  for (let slice = 0; slice < slices; slice++) {
    const before = s.stats();
    const countBefore = count;
    measuring = true;
    const t0 = process.hrtime.bigint();
    await sleep(runMs / slices);
    measuring = false;
    const sliceSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    logSeconds += sliceSeconds;
    let release!: () => void;
    gate = new Promise((r) => (release = r));
    for (let k = 0; k < 10_000 && parked < appenders; k++) await sleep(1);
    const sliceSyncs = s.stats().syncs - before.syncs;
    syncs += sliceSyncs;
    const perSync = Math.max(1, Math.round((count - countBefore) / Math.max(1, sliceSyncs)));
    const r = raw.run(perSync * recordBytesEach, runMs / slices);
    rawBytes += r.bytes;
    rawSeconds += r.seconds;
    const logRate = ((count - countBefore) * recordBytesEach) / sliceSeconds;
    ratios.push(logRate / (r.bytes / r.seconds));
    gate = null;
    release();
  }
  stop = true;
  await Promise.all(runs);
  await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    label: syncsInFlightMax === 1 ? `${appenders} serial` : String(appenders),
    appenders,
    entriesPerSec: count / logSeconds,
    mbPerSec: (count * recordBytesEach) / logSeconds / 1e6,
    entriesPerSync: count / Math.max(1, syncs),
    rawMbPerSec: rawBytes / rawSeconds / 1e6,
    ratioMedian: percentile(ratios, 50),
    latencyP50Ms: percentile(latencies, 50),
    latencyP99Ms: percentile(latencies, 99),
  };
}

/** write + fdatasync of the same bytes per sync into a preallocated, fsynced file, serially. */
class RawFile {
  private readonly fd: number;
  private pos = 0;

  constructor(readonly file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.fd = fs.openSync(file, 'w+');
    const zeros = Buffer.alloc(1024 * 1024);
    for (let o = 0; o < rawFileBytes; o += zeros.length) fs.writeSync(this.fd, zeros, 0, zeros.length, o);
    fs.fsyncSync(this.fd);
  }

  run(bytesPerSync: number, ms: number): { bytes: number; seconds: number } {
    const buf = Buffer.alloc(bytesPerSync, 7);
    let syncs = 0;
    const t0 = process.hrtime.bigint();
    const until = t0 + BigInt(Math.round(ms)) * 1_000_000n;
    while (process.hrtime.bigint() < until) {
      if (this.pos + bytesPerSync > rawFileBytes) this.pos = 0;
      fs.writeSync(this.fd, buf, 0, bytesPerSync, this.pos);
      fs.fdatasyncSync(this.fd);
      this.pos += bytesPerSync;
      syncs++;
    }
    return { bytes: syncs * bytesPerSync, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
  }

  close(): void {
    fs.closeSync(this.fd);
    fs.rmSync(this.file, { force: true });
  }
}

async function buildLog(dir: string, n: number): Promise<number> {
  fs.rmSync(dir, { recursive: true, force: true });
  const s = await DurableStorage.open(dir, { logger: quietLogger });
  const data = Buffer.alloc(entryPayloadBytes, 9);
  const batch = 2000;
  const t0 = Date.now();
  for (let i = 1; i <= n; i += batch) {
    const es: Entry[] = [];
    for (let k = i; k < i + batch && k <= n; k++)
      es.push({ index: k, term: 1 + Math.floor(k / 100_000), type: EntryType.Normal, data });
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
  process.stdout.write(
    JSON.stringify({ openMs, last, rssGrowthMiB: (rss - baseline) / 1048576, segments, probe }) + '\n',
  );
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
  console.log(
    `bench:log — ${entryPayloadBytes}-byte entries (${recordBytesEach}-byte records), ${runMs} ms per run`,
  );
  console.log(`disk under test: ${fsOf(root)}`);
  console.log(`/tmp is on:      ${fsOf('/tmp')}`);
  console.log('');
  const raw = new RawFile(path.join(root, 'raw', 'raw.dat'));
  const results: AppendResult[] = [];
  for (const n of [1, 16, 256]) results.push(await appendRun(path.join(root, `append-${n}`), n, raw));
  results.push(await appendRun(path.join(root, 'append-serial'), 256, raw, 1));
  const big = raw.run(256 * recordBytesEach, 1000);
  raw.close();
  const widths = [10, 11, 8, 9, 12, 13, 8, 8, 8];
  console.log(
    row(
      [
        'appenders',
        'entries/s',
        'MB/s',
        'entries/',
        'raw MB/s at',
        'raw entries/s',
        'ratio',
        'p50 ms',
        'p99 ms',
      ],
      widths,
    ),
  );
  console.log(row(['', '', '', 'fsync', 'same batch', 'same batch', 'to raw', '', ''], widths));
  for (const r of results) {
    console.log(
      row(
        [
          r.label,
          Math.round(r.entriesPerSec),
          r.mbPerSec.toFixed(1),
          r.entriesPerSync.toFixed(1),
          r.rawMbPerSec.toFixed(1),
          Math.round((r.rawMbPerSec * 1e6) / recordBytesEach),
          `${(100 * r.ratioMedian).toFixed(0)}%`,
          r.appenders === 1 ? r.latencyP50Ms.toFixed(3) : '',
          r.appenders === 1 ? r.latencyP99Ms.toFixed(3) : '',
        ],
        widths,
      ),
    );
  }
  const bigMb = big.bytes / big.seconds / 1e6;
  console.log(
    `(raw ceiling at 256 records per fsync: ${bigMb.toFixed(1)} MB/s, ` +
      `${Math.round((bigMb * 1e6) / recordBytesEach)} entries/s. The log overlaps up to ${syncsInFlightMaxDefault} ` +
      `fdatasyncs; "serial" = the log limited to one in flight, like the raw loop)`,
  );
  console.log('');
  const logDir = path.join(root, 'open');
  const buildS = await buildLog(logDir, openEntries);
  console.log(`built a log of ${openEntries} entries in ${buildS.toFixed(1)} s`);
  for (const label of ['open (page cache warm)', 'open (again)']) {
    const child = spawnSync(
      process.execPath,
      ['--expose-gc', '--require', swcRegister, __filename, '--open-child', logDir],
      {
        encoding: 'utf8',
      },
    );
    if (child.status !== 0) throw new Error(`open child failed: ${child.stderr}`);
    const r = JSON.parse(child.stdout.trim().split('\n').pop()!) as {
      openMs: number;
      last: number;
      rssGrowthMiB: number;
      segments: number;
    };
    console.log(
      `${label}: ${r.last} entries in ${r.segments} segments opened in ${r.openMs.toFixed(0)} ms; RSS +${r.rssGrowthMiB.toFixed(1)} MiB over the baseline`,
    );
  }
  fs.rmSync(root, { recursive: true, force: true });
}

runBench('bench:log', main);
