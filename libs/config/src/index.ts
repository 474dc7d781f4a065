import { z } from 'zod';
import { ConfigError } from './config-error';

/**
 * What the apps share for reading their settings once at start-up: environment variables, each also a
 * `--kebab-case` flag (flags win), validated by a zod schema into errors that name the variable. And the
 * logger those settings (LOG_LEVEL, LOG_FORMAT) configure: ./logging.ts. API tokens (./api-tokens.ts) and TLS
 * certificate files (./tls-files.ts), read from settings by the node, the projector and esctl; the access
 * control of the node's and the projector's HTTP APIs (./access.ts: 401/403/429, start-up refusal off loopback).
 */

export * from './logging';
export * from './api-tokens';
export * from './tls-files';
export * from './access';
export { ConfigError } from './config-error';

export function kebabFlag(variable: string): string {
  return '--' + variable.toLowerCase().replace(/_/g, '-');
}

/**
 * `--node-id n2` or `--node-id=n2`. A bare flag (no value follows) means `true` when `bareIsTrue`, else it is
 * an error naming the variable. Unknown flags are an error listing the known ones.
 */
export function parseFlags(
  argv: readonly string[],
  variables: readonly string[],
  opts: { bareIsTrue: boolean },
): Record<string, string> {
  const byFlag = new Map(variables.map((v) => [kebabFlag(v), v]));
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const variable = byFlag.get(flag);
    if (!variable)
      throw new ConfigError(arg, `unknown argument; known flags: ${[...byFlag.keys()].join(' ')}`);
    if (eq >= 0) out[variable] = arg.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[variable] = argv[++i];
    else if (opts.bareIsTrue) out[variable] = 'true';
    else throw new ConfigError(variable, `${flag} needs a value`);
  }
  return out;
}

/** Parses `input` with `schema`; the first problem becomes a ConfigError naming its variable and the value given. */
export function parseSettings<S extends z.ZodTypeAny>(
  schema: S,
  input: Record<string, string | undefined>,
): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue.path[0] ?? 'configuration');
    throw new ConfigError(variable, `${issue.message} (got ${JSON.stringify(input[variable] ?? null)})`);
  }
  return parsed.data;
}

export const hostPortPattern = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** An integer setting in [min, max] (environment strings are coerced). */
export const intSetting = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** `host:port` with a port in 1..65535; `example` shows up in the message. */
export const hostPortSetting = (example: string) =>
  z
    .string()
    .regex(hostPortPattern, `expected host:port, e.g. ${example}`)
    .refine((v) => {
      const port = Number(v.slice(v.lastIndexOf(':') + 1));
      return port >= 1 && port <= 65535;
    }, 'port must be 1-65535');
