#!/usr/bin/env node
import { run } from './program';

/** esctl: the command-line tool of the event store (apps/esctl/README.md). Exit codes: see `esctl --help`. */

/** After the command, open handles (a keep-alive socket closing) get this long before the process exits. */
const exitGraceMs = 2_000;

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  // `esctl read … | head`: the reader went away; that is not a failure of the command.
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

void run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    setTimeout(() => process.exit(code), exitGraceMs).unref();
  },
  (err: unknown) => {
    process.stderr.write(`esctl: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
