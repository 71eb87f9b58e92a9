/**
 * The orchestrator's side of `--memory`: preloads memory-probe.ts into the
 * servers under test, signals them before and after the streams open, and
 * splits the growth per stream (heap after GC, young generation, external,
 * the native rest).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { delay } from './processes.ts';
import type { MemorySampleLine } from './memory-probe.ts';
import type { MemoryBreakdown } from './row.ts';

/** How long a probe may take to answer (a GC of a large heap, a heap snapshot) (ms). */
const SAMPLE_TIMEOUT_MS = 120_000;
/** Poll interval while waiting for a probe's line (ms). */
const POLL_MS = 50;
const KB = 1024;

/** Summed readings of every sampled process. */
export interface MemorySample {
  lines: MemorySampleLine[];
}

function lineCount(file: string): number {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
}

function lastLine(file: string): MemorySampleLine {
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  return JSON.parse(lines[lines.length - 1]!) as MemorySampleLine;
}

/** Takes memory samples of servers started with its node flags and environment. */
export class MemorySampler {
  readonly dir: string;
  private readonly probe: string;
  private readonly snapshots: boolean;

  constructor(dir: string, cwd: string, snapshots: boolean) {
    this.dir = dir;
    this.snapshots = snapshots;
    this.probe = pathToFileURL(resolve(cwd, 'bench/memory-probe.ts')).href;
    mkdirSync(dir, { recursive: true });
  }

  /** Node flags that load the probe. */
  nodeFlags(): string[] {
    return [`--import=${this.probe}`];
  }

  /** Environment that turns the probe on. */
  env(): Record<string, string> {
    return { BENCH_MEMORY_DIR: this.dir, ...(this.snapshots ? { BENCH_HEAP_SNAPSHOT: '1' } : {}) };
  }

  /** Signals every node process of the target and waits for each one's new line. */
  async sample(pids: number[]): Promise<MemorySample> {
    const files = pids.map((pid) => join(this.dir, `${pid}.jsonl`));
    const counts = files.map(lineCount);
    for (const pid of pids) process.kill(pid, 'SIGUSR2');
    const deadline = performance.now() + SAMPLE_TIMEOUT_MS;
    while (files.some((f, i) => lineCount(f) <= counts[i]!)) {
      if (performance.now() > deadline) throw new Error(`memory probe did not answer within ${SAMPLE_TIMEOUT_MS} ms (is it loaded?)`);
      await delay(POLL_MS);
    }
    return { lines: files.map(lastLine) };
  }

  /** The growth from `before` to `after`, per stream, in KB. */
  perStream(before: MemorySample, after: MemorySample, streams: number): MemoryBreakdown {
    const sum = (s: MemorySample, f: (l: MemorySampleLine) => number) => s.lines.reduce((n, l) => n + f(l), 0);
    const delta = (f: (l: MemorySampleLine) => number) => (sum(after, f) - sum(before, f)) / streams / KB;
    const newSpace = (l: MemorySampleLine) => l.before.spaces.new_space?.physical ?? 0;
    const allSpaces = (l: MemorySampleLine) => Object.values(l.before.spaces).reduce((n, s) => n + s.physical, 0);
    const rss = delta((l) => l.before.rss);
    const heapPhysical = delta(allSpaces);
    const external = delta((l) => l.before.external);
    return {
      rss,
      heapUsedAfterGc: delta((l) => l.afterGc.heapUsed),
      heapTotal: delta((l) => l.before.heapTotal),
      newSpacePhysical: delta(newSpace),
      oldSpacesPhysical: heapPhysical - delta(newSpace),
      external,
      otherNative: rss - heapPhysical - external,
    };
  }
}
