import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import {
  AppendResult,
  EventEnvelope,
  EventStoreClient,
  ExpectedRevision,
  NewEvent,
  Subscription,
  UnknownOutcomeError,
} from '@app/client';
import { collectList, expectedRevision, intInRange, jsonArg, nonNegativeInt, positiveInt } from '../args';
import { Context } from '../context';
import { batchEventsDefault, batchEventsMax, eventBatches, scanEventFile } from '../event-file';
import { UsageError } from '../exit-codes';
import { formatEvent } from '../output';
import { progressBar } from '../progress';
import type { Runner } from '../context';

const all = '$all';
/** Most events of one read request (the node's page bound). */
const readPageMax = 4096;

export function registerStreamCommands(program: Command, run: Runner): void {
  program
    .command('append')
    .summary('append events to a stream (one from the arguments, or a JSON-lines file)')
    .description(
      'Appends one event (<type> [data-json]) or every event of a JSON-lines file (--file), atomically per request. ' +
        'File lines are {"type", "data"?, "metadata"?, "id"?}. Events without an id get one derived from the ' +
        "file's content (or --id-seed), the stream and the line number, and batches are cut the same way on every " +
        'run: re-running the same command after an interruption writes nothing twice (the store answers an ' +
        'identical retry with the original revisions). Keep --batch-size the same when you re-run.',
    )
    .argument('<stream>', 'stream id')
    .argument('[type]', 'event type (without --file)')
    .argument('[data-json]', 'event data as JSON (without --file)')
    .option('-f, --file <path>', 'JSON-lines file of events to append in batches')
    .option(
      '-e, --expected-revision <rev>',
      'any | no_stream | stream_exists | <revision>: checked by the first request; with --file each later batch expects the revision the previous one ended at',
      expectedRevision,
    )
    .option('--metadata <json>', 'event metadata as JSON (without --file)')
    .option('--id <uuid>', 'event id (without --file; default: a random UUID)')
    .addOption(
      new Option('--batch-size <n>', `events per request with --file (1-${batchEventsMax})`)
        .argParser(intInRange(1, batchEventsMax))
        .default(batchEventsDefault),
    )
    .option('--id-seed <text>', "with --file: derive event ids from this text instead of the file's content")
    .option('--no-progress', 'no progress bar (it is drawn on a terminal only, never with --json)')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        `  esctl append order-42 OrderPlaced '{"total":10}' --expected-revision no_stream\n` +
        '  esctl append order-42 --file events.jsonl --batch-size 200',
    )
    .action((stream: string, type: string | undefined, data: string | undefined, opts, cmd: Command) =>
      run(cmd, (ctx) =>
        opts.file
          ? appendFile(ctx, stream, type, opts)
          : appendOne(ctx, stream, type, data, opts as AppendOneOptions),
      ),
    );

  program
    .command('read')
    .summary('read events of a stream, or of $all')
    .description(
      `Reads events of <stream> in revision order (or of ${all} in position order), page by page, up to --limit.`,
    )
    .argument('<stream>', `stream id, or ${all}`)
    .option(
      '--from <n>',
      'revision (position for $all) to start at (default: the start, or the end with --backward)',
      nonNegativeInt,
    )
    .addOption(new Option('-n, --limit <n>', 'most events to print').argParser(positiveInt).default(100))
    .option('-b, --backward', 'newest first')
    .option('--types <a,b>', `${all} only: only events of these types`, collectList)
    .option('--stream-prefix <prefix>', `${all} only: only events of streams whose id starts with this`)
    .option('--local', "read this node's applied state (possibly behind) instead of a linearizable read")
    .addHelpText(
      'after',
      "\nExamples:\n  esctl read order-42\n  esctl read '$all' --from 1000 --limit 50 --types OrderPlaced",
    )
    .action((stream: string, opts: ReadOptions, cmd: Command) => run(cmd, (ctx) => read(ctx, stream, opts)));

  program
    .command('tail')
    .summary('follow a stream or $all live (Server-Sent Events) until interrupted')
    .description(
      'Prints every event committed to <stream> (or $all) from now on, or from --from, in order and exactly once, ' +
        'across node failures (the subscription resumes on another node). Ctrl-C (SIGINT) or SIGTERM stops it ' +
        '(exit code 0). With --json: one event per line (JSON lines).',
    )
    .argument('<stream>', `stream id, or ${all}`)
    .option(
      '--from <n>',
      'first revision (position for $all) to print (default: only new events)',
      nonNegativeInt,
    )
    .option('--count <n>', 'stop after this many events', positiveInt)
    .option('--types <a,b>', `${all} only: only events of these types`, collectList)
    .option('--stream-prefix <prefix>', `${all} only: only events of streams whose id starts with this`)
    .addHelpText('after', "\nExamples:\n  esctl tail '$all' --json\n  esctl tail order-42 --from 0")
    .action((stream: string, opts: TailOptions, cmd: Command) => run(cmd, (ctx) => tail(ctx, stream, opts)));
}

interface AppendOneOptions {
  expectedRevision?: ExpectedRevision;
  metadata?: string;
  id?: string;
}

async function appendOne(
  ctx: Context,
  stream: string,
  type: string | undefined,
  data: string | undefined,
  opts: AppendOneOptions,
): Promise<void> {
  if (!type) throw new UsageError('append needs <type> [data-json], or --file <path>');
  const event: NewEvent = { type };
  if (data !== undefined) event.data = jsonArg(data, 'data-json');
  if (opts.metadata !== undefined) event.metadata = jsonArg(opts.metadata, '--metadata');
  // Chosen here rather than by the client, so that a retry after an unknown outcome can reuse it.
  event.id = opts.id ?? randomUUID();
  let r: AppendResult;
  try {
    r = await ctx.cluster().append(stream, [event], { expectedRevision: opts.expectedRevision });
  } catch (err) {
    if (err instanceof UnknownOutcomeError)
      hint(err, `to retry without a risk of writing it twice, run the same command with --id ${event.id}`);
    throw err;
  }
  if (ctx.json) return ctx.out.document(r);
  await ctx.out.line(
    `appended 1 event to ${r.streamId}: revision ${r.lastRevision}, position ${r.lastPosition}`,
  );
}

interface AppendFileOptions {
  file: string;
  expectedRevision?: ExpectedRevision;
  metadata?: string;
  id?: string;
  batchSize: number;
  idSeed?: string;
  progress: boolean;
}

async function appendFile(ctx: Context, stream: string, type: string | undefined, opts: AppendFileOptions) {
  if (type !== undefined || opts.metadata !== undefined || opts.id !== undefined)
    throw new UsageError(
      'with --file, give no <type>, [data-json], --metadata or --id (they come from the file)',
    );
  const file = path.resolve(opts.file);
  const scan = await scanEventFile(opts.file);
  const seed = opts.idSeed ?? `sha256:${scan.sha256}`;
  const client = ctx.cluster();
  // Batches that answer with positions at or below the head before this run were committed by an earlier run.
  const headBefore = scan.events > 0 ? await client.headPosition() : -1;
  const bar = progressBar(ctx.io, opts.progress && !ctx.json, `append ${stream}`, 'events');
  let expected = opts.expectedRevision;
  let sent = 0;
  let present = 0;
  let batches = 0;
  let first: AppendResult | null = null;
  let last: AppendResult | null = null;
  bar.start(scan.events);
  try {
    for await (const batch of eventBatches(opts.file, {
      streamId: stream,
      seed,
      batchEvents: opts.batchSize,
    })) {
      let r: AppendResult;
      try {
        r = await client.append(
          stream,
          batch.map((b) => b.event),
          { expectedRevision: expected },
        );
      } catch (err) {
        bar.stop();
        const lines = `lines ${batch[0].line}-${batch[batch.length - 1].line}`;
        hint(
          err,
          `${sent} of ${scan.events} events were acknowledged before the batch of ${lines} failed; ` +
            're-running the same command resumes without writing any event twice',
        );
        throw err;
      }
      if (opts.expectedRevision !== undefined) expected = r.lastRevision;
      first ??= r;
      last = r;
      batches++;
      sent += batch.length;
      if (r.lastPosition <= headBefore) present += batch.length;
      bar.update(sent);
    }
  } finally {
    bar.stop();
  }
  const summary = {
    streamId: stream,
    file,
    events: sent,
    written: sent - present,
    alreadyPresent: present,
    batches,
    firstRevision: first?.firstRevision ?? null,
    lastRevision: last?.lastRevision ?? null,
    firstPosition: first?.firstPosition ?? null,
    lastPosition: last?.lastPosition ?? null,
  };
  if (ctx.json) return ctx.out.document(summary);
  if (sent === 0) return ctx.out.line(`${opts.file} holds no events: nothing appended`);
  await ctx.out.line(
    `appended ${sent} events to ${stream} in ${batches} batch${batches === 1 ? '' : 'es'}: revisions ${summary.firstRevision}-${summary.lastRevision}, positions ${summary.firstPosition}-${summary.lastPosition}` +
      (present > 0 ? ` (${present} were already in the store from an earlier run: not written again)` : ''),
  );
}

/** Adds a line that the error report prints after the message. */
export function hint(err: unknown, text: string): void {
  if (err && typeof err === 'object') (err as { esctlHint?: string }).esctlHint = text;
}

interface ReadOptions {
  from?: number;
  limit: number;
  backward?: boolean;
  types?: string[];
  streamPrefix?: string;
  local?: boolean;
}

async function read(ctx: Context, stream: string, opts: ReadOptions): Promise<void> {
  const isAll = stream === all;
  if (!isAll && (opts.types || opts.streamPrefix))
    throw new UsageError(`--types and --stream-prefix filter ${all} only`);
  const client = ctx.cluster();
  const direction = opts.backward ? 'backward' : undefined;
  const consistency = opts.local ? 'local' : undefined;
  /** Kept for --json only (one document); printed as they come otherwise. */
  const events: EventEnvelope[] = [];
  let count = 0;
  let from = opts.from;
  let next: number | null = null;
  let last: number | null = null;
  for (;;) {
    const limit = Math.min(readPageMax, opts.limit - count);
    const page = isAll
      ? await client.readAll({
          from,
          limit,
          direction,
          consistency,
          types: opts.types,
          streamPrefix: opts.streamPrefix,
        })
      : await client.readStream(stream, { from, limit, direction, consistency });
    last = isAll
      ? (page as { lastPosition: number }).lastPosition
      : (page as { lastRevision: number }).lastRevision;
    next = page.next ?? null;
    for (const e of page.events) {
      if (ctx.json) events.push(e);
      else await ctx.out.line(formatEvent(e));
    }
    count += page.events.length;
    if (next === null || count >= opts.limit) break;
    if (from !== undefined && (opts.backward ? next >= from : next <= from)) break; // no progress: defensive
    from = next;
  }
  if (ctx.json) {
    const doc = isAll
      ? { events, lastPosition: last, next }
      : { streamId: stream, events, lastRevision: last, next };
    return ctx.out.document(doc);
  }
  if (count === 0) ctx.out.note(`no events (${isAll ? 'last position' : 'last revision'} ${last})`);
  if (next !== null) ctx.out.note(`more follow: --from ${next}`);
}

interface TailOptions {
  from?: number;
  count?: number;
  types?: string[];
  streamPrefix?: string;
}

async function tail(ctx: Context, stream: string, opts: TailOptions): Promise<void> {
  const isAll = stream === all;
  if (!isAll && (opts.types || opts.streamPrefix))
    throw new UsageError(`--types and --stream-prefix filter ${all} only`);
  const client: EventStoreClient = ctx.cluster();
  const sub: Subscription = isAll
    ? client.subscribeAll({ from: opts.from, types: opts.types, streamPrefix: opts.streamPrefix })
    : client.subscribeStream(stream, { from: opts.from });
  const stop = () => sub.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let seen = 0;
  try {
    for await (const batch of sub) {
      for (const e of batch) {
        if (ctx.json) await ctx.out.jsonLine(e);
        else await ctx.out.line(formatEvent(e));
        if (opts.count !== undefined && ++seen >= opts.count) return sub.close();
      }
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    sub.close();
  }
}
