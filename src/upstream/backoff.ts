/** Retry delays: exponential with full jitter, capped, honouring Retry-After. */

export interface BackoffPolicy {
  /** First retry delay before jitter (ms). */
  baseMs: number;
  /** Largest delay ever returned (ms). */
  maxMs: number;
}

/** 0.5 s doubling to 30 s: never more than two requests a second per session, even on a fault storm. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 30_000 };

/** Smallest delay between two failed attempts (ms), whatever the jitter drew. */
export const MIN_RETRY_DELAY_MS = 250;

/**
 * Delay before retry number `attempt` (1-based). Jitter is "equal jitter"
 * (half fixed, half random) so a fault storm never collapses to hot-looping.
 * A server's Retry-After wins when it asks for longer.
 */
export function backoffDelayMs(
  attempt: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  const jittered = exp / 2 + random() * (exp / 2);
  const delay = Math.max(MIN_RETRY_DELAY_MS, Math.round(jittered));
  if (retryAfterMs !== undefined && retryAfterMs > delay) return Math.min(retryAfterMs, 10 * policy.maxMs);
  return delay;
}

/** Resolves after `ms`, or at once (false) when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Sustained requests per second one loop may make after answers that came back
 * empty or failed (contract section 5: "a few a second"); a call that follows an
 * answer that brought events is not counted, so pushing is never batched.
 */
export const LOOP_REQUESTS_PER_SECOND = 4;
/** Counted requests a loop may make back to back before the rate applies. */
export const LOOP_REQUEST_BURST = 8;

/**
 * A token bucket that spaces a loop's counted requests (those after an empty
 * or failed answer, and `/status` calls) so that an upstream answering
 * instantly (a 204 storm, an empty 200 storm) can never make it hot-loop.
 * `take` resolves false when `signal` aborts while waiting.
 */
export function createRateGate(ratePerSecond = LOOP_REQUESTS_PER_SECOND, burst = LOOP_REQUEST_BURST, now: () => number = () => performance.now()) {
  let tokens = burst;
  let last = now();
  return {
    async take(signal: AbortSignal): Promise<boolean> {
      const t = now();
      tokens = Math.min(burst, tokens + ((t - last) / 1000) * ratePerSecond);
      last = t;
      if (tokens >= 1) {
        tokens -= 1;
        return true;
      }
      const waitMs = Math.ceil(((1 - tokens) / ratePerSecond) * 1000);
      const ok = await sleep(waitMs, signal);
      tokens = 0;
      last = now();
      return ok;
    },
  };
}
