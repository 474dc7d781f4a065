import { setTimeout as sleep } from 'node:timers/promises';
import { Command, Option } from 'commander';
import { intInRange } from '../args';
import { Context } from '../context';
import { CommandFailed } from '../exit-codes';
import { table } from '../output';
import { progressBar } from '../progress';
import type { Runner } from '../context';
import { pollIntervalMs } from './projections';

/** GET /read-models entries (docs/PROJECTOR.md). */
interface ReadModelInfo {
  name: string;
  table: string | null;
  state: string;
  position: number;
}

interface RebuildProgress {
  position: number;
  eventsPerSecond: number;
  etaSeconds: number | null;
  startedAt: string;
  state: 'rebuilding' | 'stopped' | 'done' | string;
  error: string | null;
}

interface ProjectorStatus {
  head: number;
  readModels: { name: string; state: string; position: number; rebuild?: RebuildProgress }[];
}

/** Rows per page of GET /read-models/{name} (the projector's bound). */
const rowsPageMax = 1000;

export function registerReadModelCommands(program: Command, run: Runner): void {
  const readModels = program
    .command('read-models')
    .summary("the projector's Postgres read models (list, get, rebuild)")
    .description('Talks to the projector at --projector-url (default http://127.0.0.1:2150).');

  readModels
    .command('list')
    .summary('state and position of every read model')
    .description('Every read model with its table, state and position.')
    .action((_opts, cmd: Command) =>
      run(cmd, async (ctx) => {
        const list = await ctx.projector().request<ReadModelInfo[]>('GET', '/read-models');
        if (ctx.json) return ctx.out.document(list);
        await ctx.out.line(
          table(
            ['NAME', 'TABLE', 'STATE', 'POSITION'],
            list.map((m) => [m.name, m.table, m.state, m.position]),
          ),
        );
      }),
    );

  readModels
    .command('get')
    .summary('a page of rows, or one row')
    .description(
      'A page of rows in primary-key order (--after <the next printed> for the next), or one row by [id].',
    )
    .argument('<name>', 'read model name (stream_summaries, orders, …)')
    .argument('[id]', 'the primary key of one row')
    .option('--after <key>', 'rows after this key (the `next` of the previous page)')
    .addOption(new Option('-n, --limit <n>', 'rows per page').argParser(intInRange(1, rowsPageMax)))
    .addHelpText(
      'after',
      '\nExamples:\n  esctl read-models get orders --limit 20\n  esctl read-models get stream_summaries order-42',
    )
    .action((name: string, id: string | undefined, opts: { after?: string; limit?: number }, cmd: Command) =>
      run(cmd, (ctx) => get(ctx, name, id, opts)),
    );

  readModels
    .command('rebuild')
    .summary('rebuild a read model beside the live one and wait for the swap')
    .description(
      'Rebuilds a read model from position 0 beside the live one (queries keep answering meanwhile), then waits ' +
        'until it is swapped in (a progress bar on a terminal). A rebuild that stops on an error ends with exit code 1.',
    )
    .argument('<name>', 'read model name')
    .option('--no-wait', 'return once the rebuild is accepted')
    .option('--no-progress', 'no progress bar while waiting')
    .action((name: string, opts: { wait: boolean; progress: boolean }, cmd: Command) =>
      run(cmd, (ctx) => rebuild(ctx, name, opts)),
    );
}

async function get(
  ctx: Context,
  name: string,
  id: string | undefined,
  opts: { after?: string; limit?: number },
): Promise<void> {
  const client = ctx.projector();
  if (id !== undefined) {
    const row = await client.request<unknown>(
      'GET',
      `/read-models/${encodeURIComponent(name)}/${encodeURIComponent(id)}`,
    );
    if (ctx.json) return ctx.out.document(row);
    return ctx.out.line(JSON.stringify(row, null, 2));
  }
  const q = new URLSearchParams();
  if (opts.after !== undefined) q.set('after', opts.after);
  if (opts.limit !== undefined) q.set('limit', String(opts.limit));
  const qs = q.toString();
  const page = await client.request<{ items: unknown[]; next: string | number | null }>(
    'GET',
    `/read-models/${encodeURIComponent(name)}${qs ? `?${qs}` : ''}`,
  );
  if (ctx.json) return ctx.out.document(page);
  for (const item of page.items) await ctx.out.line(JSON.stringify(item));
  if (page.items.length === 0) ctx.out.note('no rows');
  if (page.next !== null && page.next !== undefined) ctx.out.note(`more rows follow: --after ${page.next}`);
}

async function rebuild(
  ctx: Context,
  name: string,
  opts: { wait: boolean; progress: boolean },
): Promise<void> {
  const client = ctx.projector();
  const accepted = await client.request<unknown>('POST', `/read-models/${encodeURIComponent(name)}/rebuild`, {
    write: true,
  });
  if (!opts.wait) {
    if (ctx.json) return ctx.out.document(accepted);
    return ctx.out.line(`${name}: rebuild accepted`);
  }
  const bar = progressBar(ctx.io, opts.progress && !ctx.json, `rebuild ${name}`, 'events');
  const started = Date.now();
  let model: ProjectorStatus['readModels'][number];
  try {
    for (let first = true; ; first = false) {
      const status = await client.request<ProjectorStatus>('GET', '/status');
      const found = status.readModels.find((m) => m.name === name);
      if (!found) throw new CommandFailed(`read model ${name} is no longer listed by the projector`);
      model = found;
      const done = (model.rebuild?.position ?? model.position) + 1;
      const total = Math.max(done, status.head + 1);
      if (first) bar.start(total, done);
      else bar.update(done, total);
      if (model.rebuild?.state === 'stopped')
        throw new CommandFailed(
          `the rebuild of ${name} stopped: ${model.rebuild.error ?? 'no reason given'}`,
        );
      if (model.state !== 'rebuilding' && model.rebuild?.state !== 'rebuilding') break;
      await sleep(pollIntervalMs);
    }
  } finally {
    bar.stop();
  }
  if (ctx.json) return ctx.out.document(model);
  await ctx.out.line(
    `${name} rebuilt: ${model.state} at position ${model.position} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
  );
}
