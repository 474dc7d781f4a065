import { setTimeout as sleep } from 'node:timers/promises';
import { Command, Option } from 'commander';
import { intInRange } from '../args';
import { Context } from '../context';
import { CommandFailed } from '../exit-codes';
import { table } from '../output';
import { progressBar } from '../progress';
import type { Runner } from '../context';

/** GET /projections entries (docs/API.md). */
interface ProjectionInfo {
  name: string;
  status: 'running' | 'rebuilding' | 'faulted' | string;
  position: number;
  lag: number;
  eventsPerSecond?: number;
  etaSeconds?: number | null;
  error?: string;
}

interface ProjectionView {
  name: string;
  position: number;
  state: unknown;
  next?: string;
}

/** Partitions per page of GET /projections/{name} (the node's default and bound). */
const partitionsPageMax = 10_000;
export const pollIntervalMs = 250;

export function registerProjectionCommands(program: Command, run: Runner): void {
  const projections = program
    .command('projections')
    .summary("the nodes' projections (list, get, reset)")
    .description(
      'Projections are folded by every node from its applied events. These commands read from (and reset on) ' +
        'the first answering node of --url: pass a single --url to choose the node.',
    );

  projections
    .command('list')
    .summary('status, position and lag of every projection')
    .description('Every projection with its status (running, rebuilding, faulted), position and lag.')
    .action((_opts, cmd: Command) =>
      run(cmd, async (ctx) => {
        const list = await ctx.cluster().request<ProjectionInfo[]>('GET', '/projections');
        if (ctx.json) return ctx.out.document(list);
        await ctx.out.line(
          table(
            ['NAME', 'STATUS', 'POSITION', 'LAG', 'ERROR'],
            list.map((p) => [p.name, p.status, p.position, p.lag, p.error ?? '']),
          ),
        );
      }),
    );

  projections
    .command('get')
    .summary("a projection's state (a page of partitions) or one partition")
    .description(
      "A projection's state, or one partition's with [key]. A partitioned projection answers a page of " +
        'partitions in key order; the next page is --after <the next printed>.',
    )
    .argument('<name>', 'projection name (streams, event-types, categories, orders, …)')
    .argument('[key]', 'a partition key (e.g. a stream id for `streams`)')
    .option('--after <key>', 'partitions after this key (the `next` of the previous page)')
    .addOption(
      new Option('-n, --limit <n>', 'partitions per page').argParser(intInRange(1, partitionsPageMax)),
    )
    .option('--local', "this node's applied state instead of a linearizable read")
    .addHelpText(
      'after',
      '\nExamples:\n  esctl projections get event-types\n  esctl projections get streams order-42',
    )
    .action(
      (
        name: string,
        key: string | undefined,
        opts: { after?: string; limit?: number; local?: boolean },
        cmd: Command,
      ) => run(cmd, (ctx) => get(ctx, name, key, opts)),
    );

  projections
    .command('reset')
    .summary('replay a projection from position 0 and wait until it is done')
    .description(
      'Rebuilds a projection by replaying from position 0, then waits until the replay is done (a progress bar ' +
        'on a terminal). A projection that faults meanwhile ends the command with exit code 1.',
    )
    .argument('<name>', 'projection name')
    .option('--no-wait', 'return once the reset is accepted')
    .option('--no-progress', 'no progress bar while waiting')
    .action((name: string, opts: { wait: boolean; progress: boolean }, cmd: Command) =>
      run(cmd, (ctx) => reset(ctx, name, opts)),
    );
}

async function get(
  ctx: Context,
  name: string,
  key: string | undefined,
  opts: { after?: string; limit?: number; local?: boolean },
): Promise<void> {
  const q = new URLSearchParams();
  if (opts.local) q.set('consistency', 'local');
  const client = ctx.cluster();
  if (key !== undefined) {
    const qs = q.toString();
    const state = await client.request<unknown>(
      'GET',
      `/projections/${encodeURIComponent(name)}/${encodeURIComponent(key)}${qs ? `?${qs}` : ''}`,
    );
    if (ctx.json) return ctx.out.document(state);
    return ctx.out.line(JSON.stringify(state, null, 2));
  }
  if (opts.after !== undefined) q.set('after', opts.after);
  if (opts.limit !== undefined) q.set('limit', String(opts.limit));
  const qs = q.toString();
  const view = await client.request<ProjectionView>(
    'GET',
    `/projections/${encodeURIComponent(name)}${qs ? `?${qs}` : ''}`,
  );
  if (ctx.json) return ctx.out.document(view);
  await ctx.out.line(`${view.name} at position ${view.position}`);
  await ctx.out.line(JSON.stringify(view.state, null, 2));
  if (view.next !== undefined && view.next !== null)
    ctx.out.note(`more partitions follow: --after ${view.next}`);
}

async function reset(ctx: Context, name: string, opts: { wait: boolean; progress: boolean }): Promise<void> {
  const client = ctx.cluster();
  const accepted = await client.request<unknown>('POST', `/projections/${encodeURIComponent(name)}/reset`, {
    write: true,
  });
  if (!opts.wait) {
    if (ctx.json) return ctx.out.document(accepted);
    return ctx.out.line(`${name}: reset accepted, rebuilding from position 0`);
  }
  const bar = progressBar(ctx.io, opts.progress && !ctx.json, `reset ${name}`, 'events');
  const started = Date.now();
  let info: ProjectionInfo;
  try {
    for (let first = true; ; first = false) {
      const list = await client.request<ProjectionInfo[]>('GET', '/projections');
      const found = list.find((p) => p.name === name);
      if (!found) throw new CommandFailed(`projection ${name} is no longer listed by the node`);
      info = found;
      const done = info.position + 1;
      const total = done + Math.max(0, info.lag);
      if (first) bar.start(total, done);
      else bar.update(done, total);
      if (info.status === 'faulted')
        throw new CommandFailed(
          `projection ${name} faulted while rebuilding: ${info.error ?? 'no reason given'}`,
        );
      if (info.status !== 'rebuilding') break;
      await sleep(pollIntervalMs);
    }
  } finally {
    bar.stop();
  }
  if (ctx.json) return ctx.out.document(info);
  await ctx.out.line(
    `${name} rebuilt: position ${info.position}, lag ${info.lag} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
  );
}
