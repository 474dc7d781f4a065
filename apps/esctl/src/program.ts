import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { InvalidRequestError } from '@app/client';
import { collectList, positiveInt } from './args';
import { registerClusterCommands } from './commands/cluster';
import { registerProjectionCommands } from './commands/projections';
import { registerReadModelCommands } from './commands/read-models';
import { registerStreamCommands } from './commands/streams';
import { registerTokenCommands } from './commands/tokens';
import { Context, defaultProjectorUrl, defaultUrl, GlobalOptions, Runner, timeoutMsDefault } from './context';
import { ExitCode, exitCodeName, exitCodeOf, exitCodesHelp } from './exit-codes';
import { Io, processIo } from './output';

const rootHelp = `
Environment:
  ESCTL_URL            node URLs (comma-separated), when no --url is given
  ESCTL_TOKEN          bearer token, when no --token is given
  ESCTL_CA_FILE        CA certificate(s) for https:// URLs, when no --ca-file is given
  ESCTL_PROJECTOR_URL  the projector's URL, when no --projector-url is given

${exitCodesHelp}

Examples:
  esctl cluster status
  esctl append order-42 OrderPlaced '{"total":10}' --expected-revision no_stream
  esctl append order-42 --file events.jsonl
  esctl read order-42 --json
  esctl tail '$all' --url http://127.0.0.1:2113,http://127.0.0.1:2123
  esctl projections reset streams
  esctl read-models get orders --projector-url http://127.0.0.1:2150
  esctl token create --role write --name ci`;

export function buildProgram(io: Io, run: Runner): Command {
  const program = new Command('esctl');
  // Before any subcommand is added: subcommands copy these settings.
  program
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .showHelpAfterError('(run with --help for usage)');
  program
    .description('Command-line tool of the replicated event store and its projector.')
    .version(packageVersion(), '-V, --version')
    .addOption(
      new Option('--url <url>', `node URL; repeat it or separate URLs by commas (default ${defaultUrl})`)
        .env('ESCTL_URL')
        .argParser(collectList),
    )
    .addOption(
      new Option(
        '--token <token>',
        'sent as "Authorization: Bearer <token>" to the nodes and the projector (see esctl token create)',
      ).env('ESCTL_TOKEN'),
    )
    .addOption(
      new Option('--ca-file <file>', 'PEM CA certificate(s) to trust for https:// URLs').env('ESCTL_CA_FILE'),
    )
    .option('--json', 'machine output: one JSON document (JSON lines for tail); errors as JSON on stderr')
    .addOption(
      new Option('--projector-url <url>', 'the projector, for read-models')
        .env('ESCTL_PROJECTOR_URL')
        .default(defaultProjectorUrl),
    )
    .addOption(
      new Option(
        '--timeout <ms>',
        `how long a request keeps being retried (no leader, connection errors) before exit code 4 (default ${timeoutMsDefault}; cluster add: 330000)`,
      ).argParser(positiveInt),
    )
    .option('-v, --verbose', "the client's retries and redirects on stderr")
    .addHelpText('after', rootHelp);
  registerStreamCommands(program, run);
  registerClusterCommands(program, run);
  registerProjectionCommands(program, run);
  registerReadModelCommands(program, run);
  registerTokenCommands(program, run);
  for (const cmd of program.commands)
    if (cmd.commands.length === 0) cmd.addHelpText('after', `\n${exitCodesHelp}`);
  return program;
}

/** Parses `argv` (without node and script) and runs the command; resolves with the exit code. */
export async function run(argv: string[], io: Io = processIo()): Promise<number> {
  let json = argv.includes('--json');
  const runner: Runner = async (cmd, body) => {
    const opts = cmd.optsWithGlobals<GlobalOptions>();
    json = opts.json === true;
    const ctx = new Context({ ...opts, url: opts.url ?? [] }, io);
    try {
      await body(ctx);
    } finally {
      ctx.close();
    }
  };
  const program = buildProgram(io, runner);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.ok;
  } catch (err) {
    // commander has printed its own message (and the help, for an error)
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    const code = exitCodeOf(err);
    report(io, json, err, code);
    return code;
  }
}

function report(io: Io, json: boolean, err: unknown, code: number): void {
  const e = err as Error & { esctlHint?: string };
  const message = e?.message ?? String(err);
  const details = err instanceof InvalidRequestError ? err.details : undefined;
  if (json) {
    const doc: Record<string, unknown> = { error: exitCodeName(code), exitCode: code, message };
    if (err instanceof InvalidRequestError) doc.status = err.status;
    if (details !== undefined) doc.details = details;
    if (e?.esctlHint) doc.hint = e.esctlHint;
    io.stderr.write(`${JSON.stringify(doc)}\n`);
    return;
  }
  const lines = [`esctl: ${message}`];
  if (Array.isArray(details))
    for (const d of details) {
      const text =
        d && typeof d === 'object' && 'field' in d ? `${d.field}: ${d.problem}` : JSON.stringify(d);
      if (!message.includes(text)) lines.push(`  ${text}`);
    }
  if (e?.esctlHint) lines.push(`  ${e.esctlHint}`);
  if (code === ExitCode.failure && e?.stack && process.env.ESCTL_DEBUG === '1') lines.push(e.stack);
  io.stderr.write(`${lines.join('\n')}\n`);
}

/** The package's version (package.json above this file, in the sources and in dist alike). */
function packageVersion(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
      if (pkg?.bin?.esctl || pkg?.name === 'raft-event-store') return String(pkg.version);
    } catch {
      /* not here */
    }
    if (path.dirname(dir) === dir) return '0.0.0';
  }
}
