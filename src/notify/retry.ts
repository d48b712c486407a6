/**
 * Retrying a delivery: bounded attempts with exponential, jittered backoff (0.5 s, 1 s, 2 s, ...
 * capped), each attempt under its own timeout, every attempt written to the delivery log.
 * Timers are unref'd and every wait ends at once when the notifier closes, so a dead peer never
 * keeps the process alive or delays shutdown.
 */

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  readonly baseMs: number;
  readonly maxMs: number;
  /** Per attempt. */
  readonly timeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseMs: 500, maxMs: 30_000, timeoutMs: 10_000 };

/** The outcome of one attempt. */
export type AttemptResult =
  | { readonly ok: true; readonly status?: number | undefined }
  | {
      readonly ok: false;
      /** False for failures another attempt cannot fix (a 4xx, an unknown channel). */
      readonly retry: boolean;
      readonly error: string;
      readonly status?: number | undefined;
      /** The peer asked to wait this long (Retry-After). */
      readonly retryAfterMs?: number | undefined;
    };

/**
 * Delay before attempt `n + 1` after `n` failed attempts: base·2^(n-1), capped, times a jitter
 * in [0.75, 1.25) so that many deliveries failing together do not retry in lockstep.
 */
export function backoffMs(failed: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, failed - 1));
  return Math.min(policy.maxMs, Math.round(exp * (0.75 + random() * 0.5)));
}

/** Resolves after `ms`, or at once when `signal` aborts; never keeps the process alive. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
  });
}

/** `Retry-After` in seconds or as an HTTP date, in milliseconds; undefined when absent or odd. */
export function retryAfterMs(header: string | null, now: number = Date.now()): number | undefined {
  if (!header) return undefined;
  if (/^\d{1,6}$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
