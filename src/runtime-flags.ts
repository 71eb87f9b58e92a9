/**
 * The Node flags pollcast runs with (`npm start`, the Dockerfile, the
 * benchmark): a young generation capped at 16 MB per semi-space. pollcast
 * holds thousands of long-lived idle connections; Node's default lets the
 * young generation grow far larger during a burst of opens and keep that
 * memory resident, which measured 17.6 against 14.8 KB of RSS per idle
 * stream (bench/RESULTS.md). The cost is more frequent minor collections
 * under heavy allocation, which the benchmark's CPU figures include.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16'];
