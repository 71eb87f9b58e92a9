/**
 * Preloaded into a server under test by `bench/run.ts --memory`
 * (`node --import bench/memory-probe.ts …`): on SIGUSR2 it appends one line to
 * `$BENCH_MEMORY_DIR/<pid>.jsonl` with `process.memoryUsage()` and the V8 heap
 * spaces, before and after a full GC, and with `BENCH_HEAP_SNAPSHOT=1` also
 * writes a heap snapshot after the GC (`bench/heap-summary.ts` compares two).
 * Nothing here runs unless the orchestrator signals, so the server's own
 * behaviour is unchanged between samples.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapSpaceStatistics, setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** One reading of the process's memory (bytes). */
export interface MemoryReading {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** Physical size of each V8 heap space, by name. */
  spaces: Record<string, { used: number; physical: number }>;
}

/** One line of the probe's file. */
export interface MemorySampleLine {
  before: MemoryReading;
  afterGc: MemoryReading;
  snapshot: string | null;
}

/** The process's memory now: `process.memoryUsage()` and the V8 heap spaces. */
export function readMemory(): MemoryReading {
  const m = process.memoryUsage();
  const spaces: MemoryReading['spaces'] = {};
  for (const s of getHeapSpaceStatistics()) spaces[s.space_name] = { used: s.space_used_size, physical: s.physical_space_size };
  return { rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, spaces };
}

/** Which server a preloaded probe runs in (the naive server's entry file is named baseline), for its file names. */
export function probedServer(): 'baseline' | 'pollcast' {
  return process.argv[1]?.includes('baseline') ? 'baseline' : 'pollcast';
}

const dir = process.env.BENCH_MEMORY_DIR;
if (dir) {
  // --expose-gc set after start exposes gc() to new contexts only; the server's own code never sees it.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let n = 0;
  process.on('SIGUSR2', () => {
    const before = readMemory();
    gc();
    const afterGc = readMemory();
    const snapshot = process.env.BENCH_HEAP_SNAPSHOT === '1' ? writeHeapSnapshot(join(dir, `${process.pid}-${++n}.heapsnapshot`)) : null;
    const line: MemorySampleLine = { before, afterGc, snapshot };
    appendFileSync(join(dir, `${process.pid}.jsonl`), `${JSON.stringify(line)}\n`);
  });
}
