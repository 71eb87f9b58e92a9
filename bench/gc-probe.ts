/**
 * Preloaded into both servers for a look at their garbage collector
 * (`BENCH_GC_DIR=/tmp/gc node bench/run.ts --only payload --node-flags=--import=./bench/gc-probe.ts`):
 * every second it writes `$BENCH_GC_DIR/<target>-<pid>.json` with the count,
 * total and longest pause of each kind of collection so far, and every pause
 * over 3 ms with its time since the process started. For what each young
 * collection kept and promoted, run with `--node-flags=--trace-gc-nvp` instead.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { probedServer } from './memory-probe.ts';

/** Pauses longer than this are listed one by one (ms). */
const LONG_PAUSE_MS = 3;

const KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'young',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'full',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental marking',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
};

const dir = process.env.BENCH_GC_DIR;
if (dir) {
  const target = probedServer();
  const kinds: Record<string, { count: number; ms: number; longestMs: number }> = {};
  const long: [atMs: number, kind: string, ms: number][] = [];
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const detail = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail;
      const kind = KINDS[detail?.kind ?? -1] ?? 'other';
      const k = (kinds[kind] ??= { count: 0, ms: 0, longestMs: 0 });
      k.count++;
      k.ms += entry.duration;
      k.longestMs = Math.max(k.longestMs, entry.duration);
      if (entry.duration > LONG_PAUSE_MS) long.push([Math.round(entry.startTime), kind, Number(entry.duration.toFixed(1))]);
    }
  }).observe({ entryTypes: ['gc'] });
  setInterval(() => {
    writeFileSync(join(dir, `${target}-${process.pid}.json`), JSON.stringify({ upMs: Math.round(performance.now()), kinds, long }));
  }, 1000).unref();
}
