import {
  findToken,
  hashToken,
  mintToken,
  parseTokenLines,
  roleAllows,
  tokenLine,
  TokenListError,
} from './api-tokens';

const at = (n: number) => `/etc/es/tokens line ${n}`;
const hex = (t: string) => hashToken(t).toString('hex');

describe('tokens file lines (name:role:sha256-hex)', () => {
  it('reads entries, skipping blank lines and # comments; the hash may be upper case', () => {
    const text = [
      '# who may do what',
      '',
      `ci:write:${hex('t-ci')}`,
      `  ops:admin:${hex('t-ops').toUpperCase()}  `,
      `grafana:read:${hex('t-graf')}`,
    ].join('\n');
    const entries = parseTokenLines(text, at);
    expect(entries.map((e) => [e.name, e.role])).toEqual([
      ['ci', 'write'],
      ['ops', 'admin'],
      ['grafana', 'read'],
    ]);
    expect(findToken(entries, 't-ops')?.name).toBe('ops');
    expect(findToken(entries, 't-graf')?.role).toBe('read');
    expect(findToken(entries, 't-nobody')).toBeNull();
    expect(findToken(entries, '')).toBeNull();
  });

  it.each([
    ['ci:write', 'line 1: expected name:role:sha256-hex (3 fields separated by ":"), found 2 fields'],
    [`ci:write:${hex('a')}:x`, 'line 1: expected name:role:sha256-hex'],
    [`c i:write:${hex('a')}`, 'line 1: token name "c i": expected 1-64 characters'],
    [`ci:owner:${hex('a')}`, 'line 1: token "ci": unknown role "owner"; expected read, write or admin'],
    ['ci:read:abc123', `line 1: token "ci": the third field must be the token's SHA-256 as 64 hex digits`],
    ['ci:read:est_abcdef', 'line 1: token "ci": the third field is a token itself'],
    [`# ok\nci:read:${hex('a')}\nci:write:${hex('b')}`, 'line 3: token name "ci" already used on line 2'],
    [`a:read:${hex('x')}\n\nb:write:${hex('x')}`, 'line 3: token "b" has the same hash as line 1'],
  ])('refuses %j naming the file and line', (text, message) => {
    expect(() => parseTokenLines(text, at)).toThrow(TokenListError);
    expect(() => parseTokenLines(text, at)).toThrow(`/etc/es/tokens ${message}`);
  });

  it('splits on commas too for an environment variable', () => {
    const entries = parseTokenLines(`a:read:${hex('1')}, b:admin:${hex('2')}`, (n) => `entry ${n}`, {
      commas: true,
    });
    expect(entries.map((e) => e.name)).toEqual(['a', 'b']);
    expect(() => parseTokenLines(`a:read:${hex('1')},b:read`, (n) => `entry ${n}`, { commas: true })).toThrow(
      'entry 2: expected name:role:sha256-hex',
    );
  });
});

describe('minting', () => {
  it('makes distinct high-entropy tokens whose line the parser reads back', () => {
    const t1 = mintToken();
    const t2 = mintToken();
    expect(t1).not.toBe(t2);
    expect(t1).toMatch(/^est_[A-Za-z0-9_-]{43}$/);
    const line = tokenLine('ci', 'write', t1);
    expect(line).toBe(`ci:write:${hex(t1)}`);
    expect(line).not.toContain(t1);
    const [entry] = parseTokenLines(line, at);
    expect(findToken([entry], t1)).toBe(entry);
    expect(findToken([entry], t2)).toBeNull();
  });
});

describe('roles', () => {
  it('admin implies write implies read, never the other way', () => {
    expect(roleAllows('admin', 'write')).toBe(true);
    expect(roleAllows('admin', 'read')).toBe(true);
    expect(roleAllows('write', 'read')).toBe(true);
    expect(roleAllows('write', 'admin')).toBe(false);
    expect(roleAllows('read', 'write')).toBe(false);
    expect(roleAllows('read', 'read')).toBe(true);
  });
});
