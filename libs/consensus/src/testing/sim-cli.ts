import { runSeeds, describeTotals } from './runner';
import { BUGS, BugName, PROFILES, ProfileName } from './scenario';
import { defaultCoreFactory } from './sim-defaults';

const USAGE = `usage: npm run sim -- --seeds N [--from S] [--profile ${PROFILES.join('|')}] [--bug ${BUGS.join('|')}] [--trace] [--trace-tail N] [--keep-going] [--no-persist-check]`;
const PROGRESS_EVERY_MS = 5_000;

interface CliArgs {
  seeds: number;
  from: number;
  profile: ProfileName;
  bug: BugName | null;
  trace: boolean;
  traceTail: number;
  keepGoing: boolean;
  persistCheck: boolean;
}

function parseArgs(argv: string[]): CliArgs {
  const a: CliArgs = {
    seeds: 100,
    from: 1,
    profile: 'default',
    bug: null,
    trace: false,
    traceTail: 80,
    keepGoing: false,
    persistCheck: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) fail(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--seeds':
        a.seeds = positiveInt(flag, value());
        break;
      case '--from':
        a.from = positiveInt(flag, value());
        break;
      case '--profile': {
        const p = value();
        if (!(PROFILES as readonly string[]).includes(p))
          fail(`unknown profile ${p}; one of ${PROFILES.join(', ')}`);
        a.profile = p as ProfileName;
        break;
      }
      case '--bug': {
        const b = value();
        if (!(BUGS as readonly string[]).includes(b)) fail(`unknown bug ${b}; one of ${BUGS.join(', ')}`);
        a.bug = b as BugName;
        break;
      }
      case '--trace':
        a.trace = true;
        break;
      case '--trace-tail':
        a.traceTail = positiveInt(flag, value());
        break;
      case '--no-persist-check':
        a.persistCheck = false;
        break;
      case '--keep-going':
        a.keepGoing = true;
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        fail(`unknown argument ${flag}`);
    }
  }
  return a;
}

function positiveInt(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) fail(`${flag} must be a non-negative integer, got ${v}`);
  return n;
}

function fail(message: string): never {
  console.error(`sim: ${message}\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  console.log(
    `sim: seeds ${args.from}..${args.from + args.seeds - 1}, profile ${args.profile}${args.bug ? `, bug ${args.bug}` : ''}; ` +
      `each node is the production RaftNode (node/raft-node.ts) with the real core, on virtual time and an in-memory disk`,
  );
  let lastProgress = performance.now();
  let done = 0;
  let failedSoFar = 0;
  const summary = await runSeeds({
    ...args,
    makeCore: defaultCoreFactory,
    out: (line) => console.log(line),
    onSeed: (r) => {
      done++;
      if (!r.ok) failedSoFar++;
      const now = performance.now();
      if (!args.trace && now - lastProgress > PROGRESS_EVERY_MS) {
        lastProgress = now;
        console.log(`sim: ${done}/${args.seeds} seeds done (last ${r.seed}), ${failedSoFar} failed`);
      }
    },
  });
  console.log(describeTotals(summary.ran, summary.totals));
  console.log(
    `slowest convergence after faults healed: ${summary.slowestLiveness.ms.toFixed(0)} virtual ms (seed ${summary.slowestLiveness.seed})`,
  );
  console.log(
    `sim: ran ${summary.ran} seeds in ${(summary.elapsedMs / 1000).toFixed(1)} s: ${summary.seedsPerSecond.toFixed(1)} seeds/s, ${summary.failed.length} failed` +
      (summary.failed.length > 0 ? ` (seeds ${summary.failed.map((r) => r.seed).join(', ')})` : ''),
  );
  process.exitCode = summary.failed.length > 0 ? 1 : 0;
}

main().catch((e: Error) => {
  console.error(`sim: ${e.stack ?? e.message}`);
  process.exitCode = 2;
});
