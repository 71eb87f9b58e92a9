/**
 * Where a server's CPU samples go, from `perf script` output of a `perf record -g` of its process (run with
 * `--perf-basic-prof` so JIT frames are named): each sample is counted once, in the first category any of its
 * frames matches, in this order. `loop` is the per-event work outside the fan-out and the upstream's HTTP client
 * (the loop, parsing, the feed, frames); `fanout` the writes to subscribers. The shares are of one process's own
 * samples, so they hold up better across a noisy machine's runs than CPU time does (bench/RESULTS.md, issue 21).
 *
 *   node bench/perf-categories.ts perf.txt [perf2.txt …]
 */
import { readFileSync } from 'node:fs';

const CATEGORIES: ReadonlyArray<readonly [string, RegExp]> = [
  ['fanout', /onChunk|'_send |res\.write|_http_outgoing|'uncork|writevGeneric|subscriber\.js|writer\.js|baseline\.mjs:(6[0-9]|7[0-9])/],
  ['upstream-http', /undici|_http_client|_http_agent|llhttp|wasm|parserOnIncoming/],
  ['loop', /poller\.js|feed\.js|hub\.js|pager\.js|client\.js|caller-client|baseline\.mjs|frames\.js|parse\.js/],
  ['gc', /Scavenger|Heap::|GarbageCollect|MarkCompact|Sweeper|ConcurrentMarking/],
  ['epoll', /epoll_pwait/],
  ['read', /onStreamRead|uv__read|tcp_recvmsg/],
];

/** Samples per category (and 'other') of one `perf script` text: stacks separated by blank lines, a header line each. */
export function categorise(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const block of text.split('\n\n')) {
    const frames = block.split('\n').slice(1);
    if (frames.length === 0) continue;
    let name = 'other';
    for (const [category, pattern] of CATEGORIES) {
      if (frames.some((f) => pattern.test(f))) {
        name = category;
        break;
      }
    }
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

for (const file of process.argv.slice(2)) {
  const counts = categorise(readFileSync(file, 'utf8'));
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const rows = [...counts].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v} (${((100 * v) / total).toFixed(1)} %)`);
  const ratio = (counts.get('loop') ?? 0) / (counts.get('fanout') ?? 1);
  console.log(`${file}: ${total} samples; ${rows.join(', ')}; loop/fanout ${ratio.toFixed(2)}`);
}
