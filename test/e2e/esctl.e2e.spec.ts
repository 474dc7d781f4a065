import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { waitFor } from '@app/consensus/testing';
import { ClusterHarness, freePorts, repoRoot, trackChild } from '../support/cluster-harness';
import { ProjectorProcess } from '../support/projector-harness';
import { stableEnv } from '../support/workload';

/**
 * esctl (apps/esctl) as a user runs it: the built CLI (`dist/apps/esctl/src/main.js`, what the package's `bin`
 * points at) spawned against a real 3-node cluster and a projector. Appends from arguments and from a file
 * (killed half-way and re-run: every event exactly once), reads, a live tail stopped by SIGTERM, cluster
 * status, projections, read models, --json output, and each exit code.
 */

jest.setTimeout(120_000);

const cliMain = path.join(repoRoot, 'dist', 'apps', 'esctl', 'src', 'main.js');

let h: ClusterHarness;
let projector: ProjectorProcess | null = null;
let projectorReady: Promise<void>;
let tmp: string;
/** --url with every node, comma-separated. */
let urls: string;

interface Result {
  code: number | string | null;
  stdout: string;
  stderr: string;
}

/** Starts `esctl args…` (tracked by PID: killed if this process ends first). */
function start(args: string[]) {
  const child = spawn(process.execPath, [cliMain, ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = trackChild('esctl', child);
  const r = { stdout: '', stderr: '' };
  child.stdout!.on('data', (c: Buffer) => (r.stdout += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (r.stderr += c.toString('utf8')));
  const done: Promise<Result> = proc.exit.then((code) => ({ code, ...r }));
  return { child, output: r, done };
}

/** Runs `esctl args…` to the end (killed after 60 s), with `--url <every node>` unless args has one. */
async function esctl(...args: string[]): Promise<Result> {
  const run = start(args.includes('--url') ? args : ['--url', urls, ...args]);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), 60_000);
  const r = await run.done;
  clearTimeout(timer);
  return r;
}

/** Runs esctl and expects exit code 0; returns stdout parsed as JSON when `--json` is among the args. */
async function ok(...args: string[]): Promise<any> {
  const r = await esctl(...args);
  if (r.code !== 0)
    throw new Error(`esctl ${args.join(' ')} exited with ${r.code}\n${r.stderr}\n${r.stdout}`);
  return args.includes('--json') ? JSON.parse(r.stdout) : r.stdout;
}

function writeEvents(name: string, count: number, type = 'Counted'): string {
  const file = path.join(tmp, name);
  const lines = Array.from({ length: count }, (_, i) => JSON.stringify({ type, data: { i } }));
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

beforeAll(async () => {
  if (!fs.existsSync(cliMain)) throw new Error(`${cliMain} is missing: run \`npm run build\` first`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'esctl-e2e-'));
  h = await ClusterHarness.start({ nodes: 3, env: stableEnv });
  await h.waitForLeader();
  urls = h.urls().join(',');
  // Started now, used by the last test: PGlite's start-up overlaps the other tests.
  projector = await ProjectorProcess.start({
    env: { EVENT_STORE_URLS: urls, PROJECTOR_SINKS: 'postgres', PROJECTOR_LINGER_MS: '5' },
  });
  projectorReady = projector.waitReady(90_000);
  projectorReady.catch(() => undefined);
}, 120_000);

afterAll(async () => {
  await projector?.destroy().catch(() => undefined);
  await h?.cleanup();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

it('cluster status: the leader and every member with its role, as text and as JSON', async () => {
  const status = await ok('cluster', 'status', '--json');
  expect(status.members).toHaveLength(3);
  expect(status.members.every((m: any) => m.reachable && m.voter)).toBe(true);
  expect(status.members.filter((m: any) => m.role === 'leader').map((m: any) => m.id)).toEqual([
    status.leaderId,
  ]);
  const text = await ok('cluster', 'status');
  expect(text).toContain(`leader ${status.leaderId}`);
  expect(text.split('\n').filter((l: string) => /^n\d\s+(leader|follower)\s+yes/.test(l))).toHaveLength(3);
});

it('append from arguments and read back; a wrong expected revision is exit code 5', async () => {
  // through a follower only: esctl follows the 307 to the leader
  const leader = await h.waitForLeader();
  const follower = h.running().find((n) => n.id !== leader.id)!;
  const first = await ok(
    '--url',
    follower.url,
    'append',
    'cli-order-1',
    'OrderPlaced',
    '{"total":10}',
    '-e',
    'no_stream',
    '--json',
  );
  expect(first).toMatchObject({ streamId: 'cli-order-1', firstRevision: 0, lastRevision: 0 });
  expect(await ok('append', 'cli-order-1', 'OrderPaid', '--metadata', '{"by":"esctl"}', '-e', '0')).toMatch(
    /^appended 1 event to cli-order-1: revision 1, position \d+\n$/,
  );

  const conflict = await esctl('append', 'cli-order-1', 'OrderPaid', '-e', '0', '--json');
  expect(conflict.code).toBe(5);
  expect(JSON.parse(conflict.stderr)).toMatchObject({ error: 'conflict', exitCode: 5 });
  expect(conflict.stderr).toContain('actual 1');

  const page = await ok('read', 'cli-order-1', '--json');
  expect(page.events.map((e: any) => [e.revision, e.type, e.data, e.metadata])).toEqual([
    [0, 'OrderPlaced', { total: 10 }, {}],
    [1, 'OrderPaid', {}, { by: 'esctl' }],
  ]);
  expect(page.next).toBeNull();
  const text = await ok('read', 'cli-order-1', '--backward', '--limit', '1');
  expect(text).toMatch(/^@\d+ {2}cli-order-1#1 {2}OrderPaid {2}\S+Z {2}\{\} {2}meta=\{"by":"esctl"\}\n$/);
  const all = await ok('read', '$all', '--json', '--from', String(first.firstPosition), '--limit', '2');
  expect(all.events.map((e: any) => e.streamId)).toEqual(['cli-order-1', 'cli-order-1']);
});

it('append --file, killed half-way and re-run: every event exactly once, in file order', async () => {
  const count = 3000;
  const file = writeEvents('events.jsonl', count);
  const args = [
    '--url',
    urls,
    'append',
    'cli-file-1',
    '--file',
    file,
    '--batch-size',
    '10',
    '-e',
    'no_stream',
  ];
  const run = start(args);
  // Killed once some batches are in (10 events per request: 300 requests take a few seconds).
  const seen = await waitFor(
    'the first batches of the file',
    async () => {
      const r = await esctl('read', 'cli-file-1', '--backward', '--limit', '1', '--json');
      if (r.code !== 0) return undefined;
      const last = JSON.parse(r.stdout).lastRevision as number;
      return last >= 99 ? last : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 20 },
  );
  run.child.kill('SIGKILL');
  const killed = await run.done;
  expect(killed.code).toBe('SIGKILL');

  const again = await ok(...args.slice(2), '--json');
  expect(again).toMatchObject({
    streamId: 'cli-file-1',
    events: count,
    firstRevision: 0,
    lastRevision: count - 1,
  });
  expect(again.alreadyPresent).toBeGreaterThanOrEqual(seen + 1);
  expect(again.written).toBe(count - again.alreadyPresent);
  expect(again.written).toBeGreaterThan(0);
  // once more, with other batch cuts: nothing written
  const third = await ok('append', 'cli-file-1', '--file', file, '--batch-size', '1000', '--json');
  expect(third).toMatchObject({ events: count, written: 0, alreadyPresent: count, batches: 3 });

  const read = await ok('read', 'cli-file-1', '--limit', String(count + 10), '--json');
  expect(read.events.map((e: any) => e.data.i)).toEqual(Array.from({ length: count }, (_, i) => i));
  expect(new Set(read.events.map((e: any) => e.id)).size).toBe(count);
  expect(read.lastRevision).toBe(count - 1);
});

it('tail prints history then live events as JSON lines, and stops on SIGTERM with exit code 0', async () => {
  await ok('append', 'cli-tail-1', 'Before', '{"n":0}');
  const tail = start(['--url', urls, 'tail', 'cli-tail-1', '--from', '0', '--json']);
  await waitFor('the event from before the tail', async () => tail.output.stdout.includes('"Before"'), {
    timeoutMs: 30_000,
    intervalMs: 20,
  });
  await ok('append', 'cli-tail-1', 'Live', '{"n":1}');
  await waitFor('the live event', async () => tail.output.stdout.includes('"Live"'), {
    timeoutMs: 30_000,
    intervalMs: 20,
  });
  tail.child.kill('SIGTERM');
  const r = await tail.done;
  expect(r.code).toBe(0);
  const events = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  expect(events.map((e) => [e.revision, e.type, e.data.n])).toEqual([
    [0, 'Before', 0],
    [1, 'Live', 1],
  ]);
  // --count ends it by itself, on $all with a filter
  const counted = await ok('tail', '$all', '--from', '0', '--types', 'Live', '--count', '1');
  expect(counted).toMatch(/cli-tail-1#1 {2}Live/);
});

it('projections list, get and reset (waits for the replay)', async () => {
  await ok('append', 'cli-proj-1', 'Thing', '{}');
  const list = await ok('projections', 'list', '--json');
  expect(list.map((p: any) => p.name)).toEqual(
    expect.arrayContaining(['streams', 'event-types', 'categories']),
  );
  expect(await ok('projections', 'list')).toMatch(/^NAME\s+STATUS\s+POSITION\s+LAG/);
  const streams = await ok('projections', 'get', 'streams', 'cli-proj-1', '--json');
  expect(streams).toMatchObject({ eventCount: 1, lastRevision: 0, lastEventType: 'Thing' });
  const types = await ok('projections', 'get', 'event-types', '--json');
  expect(types.name).toBe('event-types');
  expect(types.state.Counted).toBe(3000);
  const reset = await ok('projections', 'reset', 'event-types', '--json');
  expect(reset).toMatchObject({ name: 'event-types', status: 'running', lag: 0 });
  const missing = await esctl('projections', 'get', 'no-such-projection');
  expect(missing.code).toBe(3);
  expect(missing.stderr).toContain('projection_not_found');
});

it('exit codes: usage 2, refused 3, unreachable 4', async () => {
  const usage = await esctl('append', 'cli-x', 'T', '--expected-revision', 'sometimes');
  expect(usage.code).toBe(2);
  expect(usage.stderr).toContain('--expected-revision');
  expect((await esctl('no-such-command')).code).toBe(2);

  const refused = await esctl('append', 'not a stream id', 'T', '--json');
  expect(refused.code).toBe(3);
  expect(JSON.parse(refused.stderr)).toMatchObject({ error: 'refused', status: 400 });
  expect((await esctl('read', 'cli-never-written')).code).toBe(3);

  const [port] = await freePorts(1); // nothing listens there
  const t0 = Date.now();
  const down = start(['--url', `http://127.0.0.1:${port}`, '--timeout', '1000', 'read', 'cli-order-1']);
  const r = await down.done;
  expect(r.code).toBe(4);
  expect(r.stderr).toContain('ECONNREFUSED');
  expect(Date.now() - t0).toBeLessThan(15_000);
});

it('read-models list, get and rebuild (waits for the swap) against the projector', async () => {
  await projectorReady;
  const head = JSON.parse(
    (await esctl('read', '$all', '--backward', '--limit', '1', '--json')).stdout,
  ).lastPosition;
  await projector!.waitFor(`postgres at ${head}`, (s) => s.sinks.postgres.position >= head);
  const p = ['--projector-url', projector!.url];
  const list = await ok(...p, 'read-models', 'list', '--json');
  expect(list.map((m: any) => m.name)).toEqual(expect.arrayContaining(['stream_summaries', 'orders']));
  const row = await ok(...p, 'read-models', 'get', 'stream_summaries', 'cli-file-1', '--json');
  expect(row).toMatchObject({ streamId: 'cli-file-1', eventCount: 3000, lastRevision: 2999 });
  const missing = await esctl(...p, 'read-models', 'get', 'stream_summaries', 'cli-nope');
  expect(missing.code).toBe(3);
  const rebuilt = await ok(...p, 'read-models', 'rebuild', 'stream_summaries', '--json');
  expect(rebuilt).toMatchObject({ name: 'stream_summaries', state: 'running' });
  expect(rebuilt.position).toBeGreaterThanOrEqual(head);
  expect(await ok(...p, 'read-models', 'get', 'stream_summaries', 'cli-file-1', '--json')).toEqual(row);
});
