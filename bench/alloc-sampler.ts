/**
 * Preloaded into a server under test to find what it allocates
 * (`node bench/run.ts --node-flags=--import=./bench/alloc-sampler.ts`): V8's
 * sampling heap profiler runs from ALLOC_START_MS to ALLOC_START_MS +
 * ALLOC_DURATION_MS after start and writes `$TMPDIR/alloc-<pid>.json`.
 * ALLOC_KEEP=promoted keeps only objects a major GC collected (they outlived
 * young-generation collections: what makes scavenges slow); ALLOC_KEEP=all
 * keeps every sampled allocation (garbage per stream open). Summarise with
 * `node bench/alloc-summary.ts <file>`.
 */
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const startMs = Number(process.env.ALLOC_START_MS ?? 6000);
const durationMs = Number(process.env.ALLOC_DURATION_MS ?? 9000);
const all = process.env.ALLOC_KEEP === 'all';
const session = new Session();
session.connect();
setTimeout(async () => {
  await session.post('HeapProfiler.startSampling', { samplingInterval: 2048, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: all });
  setTimeout(async () => {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(join(tmpdir(), `alloc-${process.pid}.json`), JSON.stringify(profile));
  }, durationMs).unref();
}, startMs).unref();
