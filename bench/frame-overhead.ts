/**
 * What a held event frame costs beyond its bytes: 200,000 frames of small events (eventFrame, as a feed holds them
 * for replay) kept in one array, the process's RSS before and after, per frame, against the estimate the feed's byte
 * budget counts (HELD_OVERHEAD_BYTES). The Buffer and ArrayBuffer objects, the backing store's record and malloc's
 * own bookkeeping come to several hundred bytes a frame; an estimate below it lets many small frames outgrow
 * SESSION_MAX_BYTES and CACHE_MAX_BYTES in RSS.
 *
 * One size per process (a second measurement in the same process reuses the first one's freed memory):
 *
 *   for n in 20 100 400 2000; do node --expose-gc bench/frame-overhead.ts $n; done
 */
import { eventFrame } from '../src/hub/frames.ts';
import { HELD_OVERHEAD_BYTES } from '../src/hub/feed.ts';

const FRAMES = 200_000;

function measure(textBytes: number): { frameBytes: number; rssPerFrame: number; overhead: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  const held: unknown[] = [];
  gc();
  gc();
  const before = process.memoryUsage().rss;
  let frameBytes = 0;
  const event = { type: 'chat', data: { text: 'x'.repeat(textBytes) }, timestamp: '2026-12-06T09:00:00Z' };
  for (let i = 0; i < FRAMES; i++) {
    const frame = eventFrame(i, event);
    frameBytes += frame.length;
    held.push(frame);
    // The strings each frame was made from are garbage: collected as they come, not counted as the frames' memory.
    if (i % 10_000 === 0) gc();
  }
  gc();
  gc();
  const rssPerFrame = (process.memoryUsage().rss - before) / held.length;
  const perFrame = frameBytes / held.length;
  return { frameBytes: Math.round(perFrame), rssPerFrame: Math.round(rssPerFrame), overhead: Math.round(rssPerFrame - perFrame) };
}

const textBytes = Number(process.argv[2] ?? 100);
if (!Number.isInteger(textBytes) || textBytes < 0 || process.argv.length > 3) throw new Error('usage: node --expose-gc bench/frame-overhead.ts [event text bytes]');
console.log(JSON.stringify({ textBytes, ...measure(textBytes), estimate: HELD_OVERHEAD_BYTES }));
