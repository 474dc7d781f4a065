import * as net from 'node:net';
import { PassThrough } from 'node:stream';
import {
  InvalidRequestError,
  StreamNotFoundError,
  UnavailableError,
  UnknownOutcomeError,
  WrongExpectedRevisionError,
} from '@app/client';
import { ExitCode, exitCodeOf, UsageError } from './exit-codes';
import { run } from './program';

/** Runs esctl in this process; stdout and stderr as text. */
async function esctl(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await run(argv, { stdout, stderr, stderrIsTTY: false });
  return { code, out, err };
}

async function refusingUrl(): Promise<string> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

describe('esctl exit codes', () => {
  it('maps the client errors', () => {
    expect(exitCodeOf(new WrongExpectedRevisionError('s', 0, 3))).toBe(ExitCode.conflict);
    expect(exitCodeOf(new InvalidRequestError('x', 409, { error: 'idempotency_conflict' }))).toBe(
      ExitCode.conflict,
    );
    expect(exitCodeOf(new InvalidRequestError('x', 400))).toBe(ExitCode.refused);
    expect(exitCodeOf(new InvalidRequestError('x', 404))).toBe(ExitCode.refused);
    expect(exitCodeOf(new StreamNotFoundError('s'))).toBe(ExitCode.refused);
    expect(exitCodeOf(new UnavailableError('x'))).toBe(ExitCode.unreachable);
    expect(exitCodeOf(new UnknownOutcomeError('x'))).toBe(ExitCode.unreachable);
    expect(exitCodeOf(new UsageError('x'))).toBe(ExitCode.usage);
    expect(exitCodeOf(new Error('x'))).toBe(ExitCode.failure);
  });

  it('help is 0 and lists the exit codes; usage mistakes are 2', async () => {
    const help = await esctl('--help');
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/Exit codes:[\s\S]*5 {2}conflict/);
    expect((await esctl('append', '--help')).out).toContain('--expected-revision');
    expect((await esctl()).code).toBe(ExitCode.usage);
    expect((await esctl('frobnicate')).code).toBe(ExitCode.usage);
    expect((await esctl('read')).code).toBe(ExitCode.usage);
    expect((await esctl('read', 's', '--limit', 'lots')).code).toBe(ExitCode.usage);
    expect((await esctl('append', 's', 'T', '-e', 'sometimes')).code).toBe(ExitCode.usage);
    const badJson = await esctl('append', 's', 'T', '{nope', '--json');
    expect(badJson.code).toBe(ExitCode.usage);
    expect(JSON.parse(badJson.err)).toMatchObject({ error: 'usage', exitCode: 2 });
    expect((await esctl('append', 's')).code).toBe(ExitCode.usage);
    expect((await esctl('read', 's', '--url', 'ftp://x')).code).toBe(ExitCode.usage);
    expect((await esctl('read', 's', '--types', 'A')).code).toBe(ExitCode.usage);
  });

  it('no node answering is 4, within --timeout', async () => {
    const url = await refusingUrl();
    const t0 = Date.now();
    const r = await esctl('read', 's', '--url', `${url},${url}`, '--timeout', '300');
    expect(r.code).toBe(ExitCode.unreachable);
    expect(r.err).toContain('ECONNREFUSED');
    expect(Date.now() - t0).toBeLessThan(5_000);
  });
});
