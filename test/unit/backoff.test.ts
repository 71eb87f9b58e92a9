/** Retry delays and the loop's request rate gate. */
import { describe, expect, it, vi } from 'vitest';
import { backoffDelayMs, createRateGate, MIN_RETRY_DELAY_MS } from '../../src/upstream/backoff.ts';
import { parseRetryAfterMs } from '../../src/upstream/parse.ts';

describe('backoffDelayMs', () => {
  const policy = { baseMs: 500, maxMs: 30_000 };
  it('grows exponentially with jitter between half and all of the step, capped', () => {
    expect(backoffDelayMs(1, policy, undefined, () => 0)).toBe(250);
    expect(backoffDelayMs(1, policy, undefined, () => 1)).toBe(500);
    expect(backoffDelayMs(4, policy, undefined, () => 0)).toBe(2000);
    expect(backoffDelayMs(4, policy, undefined, () => 0.999)).toBeLessThanOrEqual(4000);
    expect(backoffDelayMs(50, policy, undefined, () => 1)).toBe(30_000);
  });
  it('never drops below the minimum, so a fault storm cannot hot-loop', () => {
    for (let a = 1; a < 10; a++) expect(backoffDelayMs(a, { baseMs: 1, maxMs: 2 }, undefined, Math.random)).toBeGreaterThanOrEqual(MIN_RETRY_DELAY_MS);
  });
  it('honours a longer Retry-After', () => {
    expect(backoffDelayMs(1, policy, 7000, () => 0)).toBe(7000);
    expect(backoffDelayMs(8, policy, 100, () => 1)).toBeGreaterThan(100);
  });
});

describe('parseRetryAfterMs', () => {
  it('reads delta-seconds and HTTP dates', () => {
    expect(parseRetryAfterMs('3')).toBe(3000);
    expect(parseRetryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(parseRetryAfterMs('soon')).toBeUndefined();
    expect(parseRetryAfterMs(undefined)).toBeUndefined();
  });
});

describe('createRateGate', () => {
  it('lets a burst through, then spaces requests at the rate', async () => {
    vi.useFakeTimers();
    try {
      let now = 0;
      const gate = createRateGate(4, 2, () => now);
      const signal = new AbortController().signal;
      expect(await gate.take(signal)).toBe(true);
      expect(await gate.take(signal)).toBe(true);
      let third = false;
      const p = gate.take(signal).then((ok) => (third = ok));
      await vi.advanceTimersByTimeAsync(200);
      expect(third).toBe(false);
      now = 250;
      await vi.advanceTimersByTimeAsync(60);
      await p;
      expect(third).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
  it('stops waiting when aborted', async () => {
    const gate = createRateGate(0.001, 1);
    const ac = new AbortController();
    expect(await gate.take(ac.signal)).toBe(true);
    const p = gate.take(ac.signal);
    ac.abort();
    expect(await p).toBe(false);
  });
});
