import type { RetryOptions } from './types';

/** Attempts of one call, the first one included. */
export const retryAttemptsDefault = 10;
/** Bound of the first backoff wait, in ms; it doubles per failure up to the cap. */
export const retryInitialDelayMsDefault = 100;
/** Cap of one backoff wait, in ms. */
export const retryMaxDelayMsDefault = 2_000;
/** Bound of one call across all attempts and waits, in ms. */
export const retryTotalTimeoutMsDefault = 30_000;
/** Exponent cap so 2^n stays a finite, exact number. */
const backoffExponentMax = 30;

export type RetryPolicy = Required<RetryOptions>;

export function retryPolicy(r: RetryOptions = {}): RetryPolicy {
  const p: RetryPolicy = {
    attempts: r.attempts ?? retryAttemptsDefault,
    initialDelayMs: r.initialDelayMs ?? retryInitialDelayMsDefault,
    maxDelayMs: r.maxDelayMs ?? retryMaxDelayMsDefault,
    totalTimeoutMs: r.totalTimeoutMs ?? retryTotalTimeoutMsDefault,
  };
  if (!Number.isInteger(p.attempts) || p.attempts < 1)
    throw new RangeError('retry.attempts must be an integer >= 1');
  for (const k of ['initialDelayMs', 'maxDelayMs', 'totalTimeoutMs'] as const)
    if (!Number.isFinite(p[k]) || p[k] < 0) throw new RangeError(`retry.${k} must be a finite number >= 0`);
  return p;
}

/**
 * Full jitter: a random wait in [0, min(cap, initial * 2^failures)) ms. `failures` counts from 0 (the wait
 * after the first failed attempt).
 */
export function backoffDelayMs(p: RetryPolicy, failures: number, random: () => number = Math.random): number {
  const bound = Math.min(p.maxDelayMs, p.initialDelayMs * 2 ** Math.min(failures, backoffExponentMax));
  return Math.floor(random() * bound);
}

/** Retry-After (seconds, or an HTTP date) in ms; null when absent or unreadable. */
export function retryAfterMs(header: string | string[] | undefined, now = Date.now()): number | null {
  const v = Array.isArray(header) ? header[0] : header;
  if (v === undefined || v.trim() === '') return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** Resolves after `ms`, or early (with false) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
