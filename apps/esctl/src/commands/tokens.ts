import { Command, InvalidArgumentError, Option } from 'commander';
import { mintToken, Role, roles, tokenLine } from '@app/config';
import type { Runner } from '../context';

const tokenNamePattern = /^[A-Za-z0-9._-]{1,64}$/;

function tokenName(value: string): string {
  if (!tokenNamePattern.test(value))
    throw new InvalidArgumentError('expected 1-64 characters from [A-Za-z0-9._-].');
  return value;
}

/**
 * `esctl token create`: a new API token and the line that lists it in a node's (or the projector's) TOKENS_FILE
 * (or API_TOKENS).
 * Nothing is sent anywhere: the token is random, the line holds only its SHA-256.
 */
export function registerTokenCommands(program: Command, run: Runner): void {
  const token = program
    .command('token')
    .summary('API tokens for the nodes and the projector (create)')
    .description(
      'API tokens authenticate requests to the nodes and the projector ("Authorization: Bearer <token>"). ' +
        "They store only each token's SHA-256, one line name:role:sha256-hex per token in the file named by TOKENS_FILE.",
    );

  token
    .command('create')
    .summary('mint a token; print it once, and its line for TOKENS_FILE')
    .description(
      'Mints a random token (printed once: store it where the client reads it) and prints the line to add ' +
        "to every node's TOKENS_FILE, and the projector's (restart them to load it). Roles: read (reads, " +
        'subscriptions, /cluster, /metrics, read models), write (also appends), admin (also membership, ' +
        'leadership transfer, snapshot, projection reset, read-model rebuild).',
    )
    .addOption(new Option('--role <role>', 'read, write or admin').choices(roles).makeOptionMandatory())
    .requiredOption(
      '--name <name>',
      'who the token is for (1-64 of [A-Za-z0-9._-]; shown in 403s and rate limits)',
      tokenName,
    )
    .action((opts: { role: Role; name: string }, cmd: Command) =>
      run(cmd, async (ctx) => {
        const secret = mintToken();
        const line = tokenLine(opts.name, opts.role, secret);
        if (ctx.json) return ctx.out.document({ name: opts.name, role: opts.role, token: secret, line });
        await ctx.out.line(
          `token (shown only now; give it to the client, e.g. ESCTL_TOKEN or EVENT_STORE_TOKEN):`,
        );
        await ctx.out.line(`  ${secret}`);
        await ctx.out.line(`line for the TOKENS_FILE of the nodes and the projector:`);
        await ctx.out.line(`  ${line}`);
      }),
    );
}
