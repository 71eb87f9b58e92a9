/**
 * What a kept event frame holds alive: 100 quiet sessions' frames (20 each), each made between a busy session's
 * frames that are let go soon after, as on a busy instance. Prints the bytes of the frames kept and the bytes of the
 * ArrayBuffers they keep alive, for pollcast's frames (eventFrame) and for the same bytes cut from Node's shared
 * pool (Buffer.from, as frames were made before 6 Dec 2026).
 *
 *   node --expose-gc bench/pool-pinning.ts
 */
import { eventFrame } from '../src/hub/frames.ts';
import type { UpstreamEvent } from '../src/upstream/types.ts';

function run(make: (index: number, event: UpstreamEvent) => Buffer): { frameKB: number; blocks: number; blockKB: number } {
  const quiet: Buffer[] = [];
  let busy: Buffer[] = [];
  for (let round = 0; round < 20; round++) {
    for (let q = 0; q < 100; q++) {
      for (let b = 0; b < 5; b++) busy.push(make(b, { type: 't', data: { b, text: 'y'.repeat(400) }, timestamp: 'ts' }));
      quiet.push(make(round, { type: 't', data: { q, round, text: 'x'.repeat(300) }, timestamp: 'ts' }));
    }
    busy = busy.slice(-50);
  }
  const kept = [...quiet, ...busy];
  const blocks = new Set(kept.map((f) => f.buffer));
  const kb = (n: number) => Math.round(n / 1024);
  return { frameKB: kb(kept.reduce((n, f) => n + f.length, 0)), blocks: blocks.size, blockKB: kb([...blocks].reduce((n, b) => n + b.byteLength, 0)) };
}

const pooled = (index: number, event: UpstreamEvent) => Buffer.from((eventFrame(index, event) as Buffer).toString('utf8'), 'utf8');
console.log(JSON.stringify({ pollcast: run((i, e) => eventFrame(i, e) as Buffer), pooled: run(pooled) }));
