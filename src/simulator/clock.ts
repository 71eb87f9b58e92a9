/**
 * Wall-clock milliseconds with sub-millisecond precision that agree across the
 * processes of one machine: the simulator stamps events with them
 * (`emitted_at_ms`) and the benchmark's clients read them in other processes.
 * `performance.timeOrigin` alone is off by up to milliseconds per process
 * (measured 9 ms apart in two processes on this machine, 6 Dec 2026), which
 * made latencies negative (counted as 0.01 ms) in whole benchmark runs. The
 * offset is taken at the instants `Date.now()` ticks to the next millisecond.
 */
const offsetMs = calibrate();

function calibrate(): number {
  // Date.now() ticks each millisecond; at a tick seen as it happens, Date.now() - performance.now() is the offset. A
  // tick seen late (the loop was paused: it moved by more than 1) gives too small a value, so the largest over
  // several one-millisecond ticks is taken: about 10 ms of spinning, once per process.
  let best = -Infinity;
  let last = Date.now();
  for (let ticks = 0, spun = performance.now(); ticks < 10 && performance.now() - spun < 50; ) {
    const now = Date.now();
    if (now === last) continue;
    const offset = now - performance.now();
    if (now - last === 1) {
      best = Math.max(best, offset);
      ticks++;
    }
    last = now;
  }
  return best === -Infinity ? performance.timeOrigin : best;
}

/** Wall-clock time (ms since the epoch) with sub-millisecond precision. */
export function wallClockMs(): number {
  return offsetMs + performance.now();
}
