/**
 * The one polling wait of the repository's tests and benchmarks (`@app/consensus/testing`).
 */

export interface WaitOptions {
  /** Gives up after this long (default 60 s: elections and catch-up under CPU load take a while). */
  timeoutMs?: number;
  /** Pause between checks (default 100 ms). */
  intervalMs?: number;
  /**
   * The pause grows by `intervalMs` every 20 checks, up to 1 s (default true: long waits poll less).
   * Benchmarks that time what they wait for turn it off.
   */
  backoff?: boolean;
}

const checksPerStep = 20;
const intervalMaxMs = 1000;

/**
 * Polls `check` until it returns a value other than undefined or false, and returns that value. A check
 * that throws counts as not yet; the timeout's message names `what`, the number of checks and the last
 * error.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  opts: WaitOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const intervalMs = opts.intervalMs ?? 100;
  const backoff = opts.backoff ?? true;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  for (let attempt = 0; ; attempt++) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError ? `; last error: ${(lastError as Error).message ?? String(lastError)}` : '';
      throw new Error(`timed out after ${timeoutMs} ms (${attempt + 1} checks) waiting for ${what}${why}`);
    }
    const pause = backoff
      ? Math.min(intervalMs * (1 + Math.floor(attempt / checksPerStep)), Math.max(intervalMs, intervalMaxMs))
      : intervalMs;
    await new Promise((r) => setTimeout(r, pause));
  }
}
