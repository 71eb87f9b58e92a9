import { setFlagsFromString } from 'node:v8';

/**
 * The Node flags pollcast runs with (`npm start`, the Dockerfile, the
 * benchmark): a young generation capped at 16 MB per semi-space. pollcast
 * holds thousands of long-lived idle connections; Node's default lets the
 * young generation grow far larger during a burst of stream opens and keep that
 * memory resident, which measured 17.6 against 14.8 KB of RSS per idle
 * stream (bench/RESULTS.md). The cost is more frequent minor collections
 * under heavy allocation, which the benchmark's CPU figures include.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16'];

/**
 * V8 flags pollcast sets on itself as it starts (node refuses them in
 * NODE_OPTIONS, so however it is started they hold): WebAssembly stays on
 * V8's baseline compiler. The one WebAssembly pollcast runs is the HTTP/1.1
 * parser of undici (its upstream calls); V8 optimised its main function
 * within the first upstream calls, taking ~54 ms and ~23 MB of compiler
 * memory, of which ~10 MB stayed resident in the process (measured,
 * bench/RESULTS.md, issue 21, tenth round). The parser reads headers and
 * chunk sizes only, a few hundred bytes per upstream answer, so its speed
 * does not show in the benchmark's CPU figures.
 */
export const V8_RUNTIME_FLAGS: readonly string[] = ['--no-wasm-tier-up', '--no-wasm-dynamic-tiering'];

/** Sets V8_RUNTIME_FLAGS; call before the first upstream call compiles the parser. */
export function applyRuntimeFlags(): void {
  for (const flag of V8_RUNTIME_FLAGS) setFlagsFromString(flag);
}
