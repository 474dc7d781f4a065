import * as fs from 'node:fs';
import type { Command } from 'commander';
import { ClientLogger, EventStoreClient } from '@app/client';
import { UsageError } from './exit-codes';
import { Io, Output } from './output';

export const defaultUrl = 'http://127.0.0.1:2113';
export const defaultProjectorUrl = 'http://127.0.0.1:2150';
/** How long one command keeps retrying a request (connection errors, no leader) before exit code 4. */
export const timeoutMsDefault = 30_000;
/** Bound of one attempt. */
const attemptMsMax = 10_000;

/** The global options, as commander parses them. */
export interface GlobalOptions {
  url: string[];
  token?: string;
  caFile?: string;
  json?: boolean;
  projectorUrl: string;
  timeout?: number;
  verbose?: boolean;
}

/** Runs a command's body with a Context made from the global options; the clients are closed afterwards. */
export type Runner = (cmd: Command, body: (ctx: Context) => Promise<void>) => Promise<void>;

/** What a command works with: its output and lazily made clients (closed when the command ends). */
export class Context {
  readonly out: Output;
  readonly urls: string[];
  private readonly clients: EventStoreClient[] = [];
  private ca: Buffer | undefined;

  constructor(
    readonly opts: GlobalOptions,
    readonly io: Io,
  ) {
    this.out = new Output(io, opts.json === true);
    this.urls = opts.url.length > 0 ? opts.url : [defaultUrl];
    for (const u of [...this.urls, opts.projectorUrl]) checkUrl(u);
  }

  get json(): boolean {
    return this.out.json;
  }

  /** The total time a command keeps trying, `--timeout` or the command's own default. */
  timeoutMs(commandDefault = timeoutMsDefault): number {
    return this.opts.timeout ?? commandDefault;
  }

  /** A client of the cluster (`--url`). `attemptMs`: bound of one attempt (long for `cluster add`). */
  cluster(opts: { timeoutMs?: number; attemptMs?: number } = {}): EventStoreClient {
    return this.client(this.urls, opts);
  }

  /** A client of the projector (`--projector-url`): its routes answer errors the way the nodes do. */
  projector(): EventStoreClient {
    return this.client([this.opts.projectorUrl], {});
  }

  /** A client of one node only, with one short attempt (for `cluster status` of every member). */
  node(url: string, timeoutMs: number): EventStoreClient {
    return this.client([url], { timeoutMs, attemptMs: timeoutMs, attempts: 1 });
  }

  close(): void {
    for (const c of this.clients.splice(0)) c.close();
  }

  private client(
    urls: string[],
    o: { timeoutMs?: number; attemptMs?: number; attempts?: number },
  ): EventStoreClient {
    const total = o.timeoutMs ?? this.timeoutMs();
    const c = new EventStoreClient({
      urls,
      token: this.opts.token || undefined,
      tls: this.opts.caFile ? { ca: this.caCertificates(this.opts.caFile) } : undefined,
      requestTimeoutMs: Math.max(1, o.attemptMs ?? Math.min(attemptMsMax, total)),
      retry: { attempts: o.attempts ?? 1000, initialDelayMs: 100, maxDelayMs: 1_000, totalTimeoutMs: total },
      logger: this.logger(),
    });
    this.clients.push(c);
    return c;
  }

  private caCertificates(file: string): Buffer {
    if (this.ca) return this.ca;
    try {
      this.ca = fs.readFileSync(file);
    } catch (err) {
      throw new UsageError(
        `--ca-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    if (!this.ca.includes('-----BEGIN CERTIFICATE-----'))
      throw new UsageError(`--ca-file ${file}: no PEM certificate in it`);
    return this.ca;
  }

  private logger(): ClientLogger {
    if (!this.opts.verbose) return { warn: () => undefined };
    const err = this.io.stderr;
    return { warn: (m) => err.write(`esctl: ${m}\n`), debug: (m) => err.write(`esctl: ${m}\n`) };
  }
}

function checkUrl(u: string): void {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new UsageError(`not a URL: ${u}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`not an http(s) URL: ${u}`);
}
