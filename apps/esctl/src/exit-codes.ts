import {
  InvalidRequestError,
  StreamNotFoundError,
  UnavailableError,
  UnknownOutcomeError,
  WrongExpectedRevisionError,
} from '@app/client';

/** The process's exit codes (the `--help` epilog and the README list them). */
export const ExitCode = {
  ok: 0,
  /** Anything else: a bug, a faulted projection during a reset, an unreadable file… */
  failure: 1,
  /** Bad command line or input (commander's errors, a bad JSON argument, a malformed events file). */
  usage: 2,
  /** The server refused the request: a 4xx other than 409 (bad input, not found, too large). */
  refused: 3,
  /** No answer: connection errors, no leader, timeouts, 503s, after the client's retries. */
  unreachable: 4,
  /** 409: wrong expected revision (or another conflict: a reused event id, a membership change in progress). */
  conflict: 5,
} as const;

export const exitCodesHelp = `Exit codes:
  0  ok
  1  any other failure
  2  usage error (bad arguments, options or input file)
  3  refused request (a 4xx answer other than 409: invalid, not found, too large)
  4  cluster unreachable (connection errors, no leader, timeouts, after retries)
  5  conflict (409: wrong expected revision, reused event id, membership change in progress)`;

/** A mistake in the command line or its input: nothing was sent. Exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A command that could not do its job for a reason that is not an HTTP error (exit code 1). */
export class CommandFailed extends Error {
  override readonly name = 'CommandFailed';
}

/** The short name of an exit code (for `--json` error output). */
export function exitCodeName(code: number): string {
  for (const [k, v] of Object.entries(ExitCode)) if (v === code) return k;
  return 'failure';
}

export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return ExitCode.usage;
  if (err instanceof WrongExpectedRevisionError) return ExitCode.conflict;
  if (err instanceof InvalidRequestError) return err.status === 409 ? ExitCode.conflict : ExitCode.refused;
  if (err instanceof StreamNotFoundError) return ExitCode.refused;
  if (err instanceof UnavailableError || err instanceof UnknownOutcomeError) return ExitCode.unreachable;
  return ExitCode.failure;
}
