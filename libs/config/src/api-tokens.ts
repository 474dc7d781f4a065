import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API tokens of the event-store nodes: the roles, the line format of a tokens file, and how a token is made
 * and hashed. Shared by the node (which reads the lines and checks bearer tokens) and esctl (which mints a
 * token and prints its line). A node keeps only the SHA-256 of each token: a token is 32 random bytes, so a
 * plain hash is enough (nothing to brute-force), and a stolen tokens file grants nothing.
 *
 * A line: `name:role:sha256-hex`, e.g. `ci:write:9f86d0…` (64 hex digits). Blank lines and lines starting
 * with `#` are skipped.
 */

export type Role = 'read' | 'write' | 'admin';
export const roles: readonly Role[] = ['read', 'write', 'admin'];
const rank: Record<Role, number> = { read: 1, write: 2, admin: 3 };

/** admin implies write implies read. */
export function roleAllows(held: Role, needed: Role): boolean {
  return rank[held] >= rank[needed];
}

export interface TokenEntry {
  name: string;
  role: Role;
  /** SHA-256 of the token (32 bytes). */
  hash: Buffer;
}

/** What every minted token starts with (lets secret scanners and humans recognise one). */
export const tokenPrefix = 'est_';
const tokenNamePattern = /^[A-Za-z0-9._-]{1,64}$/;
const hashPattern = /^[0-9a-fA-F]{64}$/;

/** A new token: the prefix and 32 random bytes, base64url. Shown once; only its hash is stored. */
export function mintToken(): string {
  return tokenPrefix + randomBytes(32).toString('base64url');
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** The tokens-file line of `token`. */
export function tokenLine(name: string, role: Role, token: string): string {
  if (!tokenNamePattern.test(name)) throw new RangeError(`token name "${name}": ${nameProblem}`);
  return `${name}:${role}:${hashToken(token).toString('hex')}`;
}

const nameProblem = 'expected 1-64 characters from [A-Za-z0-9._-]';

/** A tokens list that does not parse; `message` names where (file and line, or the variable and entry). */
export class TokenListError extends Error {
  override readonly name = 'TokenListError';
}

/**
 * Parses token lines. `text` is split on newlines (and commas too when `commas`, for an environment
 * variable); `where(n)` names the n-th line (1-based) in error messages, e.g. `/etc/tokens line 3`.
 */
export function parseTokenLines(
  text: string,
  where: (n: number) => string,
  opts: { commas?: boolean } = {},
): TokenEntry[] {
  const out: TokenEntry[] = [];
  const byName = new Map<string, number>();
  const byHash = new Map<string, number>();
  const lines = text.split(opts.commas ? /\r?\n|,/ : /\r?\n/);
  lines.forEach((raw, i) => {
    const n = i + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fail = (problem: string): never => {
      throw new TokenListError(`${where(n)}: ${problem}`);
    };
    const fields = line.split(':');
    if (fields.length !== 3)
      fail(
        `expected name:role:sha256-hex (3 fields separated by ":"), found ${fields.length} field${fields.length === 1 ? '' : 's'}`,
      );
    const [name, role, hash] = fields.map((f) => f.trim());
    if (!tokenNamePattern.test(name)) fail(`token name "${name}": ${nameProblem}`);
    if (!(roles as readonly string[]).includes(role))
      fail(`token "${name}": unknown role "${role}"; expected read, write or admin`);
    if (!hashPattern.test(hash))
      fail(
        hash.startsWith(tokenPrefix)
          ? `token "${name}": the third field is a token itself; put its SHA-256 there (esctl token create prints the line)`
          : `token "${name}": the third field must be the token's SHA-256 as 64 hex digits (esctl token create prints the line)`,
      );
    const key = hash.toLowerCase();
    const sameName = byName.get(name);
    if (sameName !== undefined) fail(`token name "${name}" already used on line ${sameName}`);
    const sameHash = byHash.get(key);
    if (sameHash !== undefined) fail(`token "${name}" has the same hash as line ${sameHash}`);
    byName.set(name, n);
    byHash.set(key, n);
    out.push({ name, role: role as Role, hash: Buffer.from(key, 'hex') });
  });
  return out;
}

/**
 * The entry whose hash is the token's SHA-256, or null. Every entry is compared, each in constant time, so
 * the time taken says nothing about which entry (if any) matched.
 */
export function findToken(entries: readonly TokenEntry[], token: string): TokenEntry | null {
  const h = hashToken(token);
  let found: TokenEntry | null = null;
  for (const e of entries) if (timingSafeEqual(h, e.hash) && found === null) found = e;
  return found;
}
