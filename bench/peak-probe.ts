/**
 * Preloaded into both servers for a look at what their peak RSS is made of
 * (`node bench/run.ts --only payload --node-flags=--import=./bench/peak-probe.ts`,
 * with `BENCH_PEAK_DIR` set): every 100 ms it reads the process's memory and
 * keeps the reading with the largest RSS in `$BENCH_PEAK_DIR/<target>-<pid>.json`.
 * With `BENCH_PEAK_SNAPSHOT_MB=N` it also writes one heap snapshot of pollcast
 * the first time its RSS passes N MB (`node bench/heap-summary.ts <snapshot>`
 * groups it). Unlike `--memory` it never collects garbage itself, so the peak
 * is the one the run reaches; the snapshot's own collection and pause do
 * disturb the run that takes it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { probedServer, readMemory } from './memory-probe.ts';

/** How often the memory is read (ms). */
const SAMPLE_MS = 100;

const dir = process.env.BENCH_PEAK_DIR;
if (dir) {
  const target = probedServer();
  let snapshotAtBytes = target === 'pollcast' && process.env.BENCH_PEAK_SNAPSHOT_MB ? Number(process.env.BENCH_PEAK_SNAPSHOT_MB) * 1024 * 1024 : Infinity;
  let peak = 0;
  setInterval(() => {
    const reading = readMemory();
    if (reading.rss > snapshotAtBytes) {
      snapshotAtBytes = Infinity;
      writeHeapSnapshot(join(dir, `${target}-${process.pid}.heapsnapshot`));
    }
    if (reading.rss <= peak) return;
    peak = reading.rss;
    writeFileSync(join(dir, `${target}-${process.pid}.json`), JSON.stringify(reading));
  }, SAMPLE_MS).unref();
}
