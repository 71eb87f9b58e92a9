/** A loop's sink of its own (no hub, no feed): what unit tests of the Poller write into. */
import type { LoopSink, LoopUpdate } from '../../src/upstream/sink.ts';
import { UNKNOWN_SNAPSHOT } from '../../src/upstream/snapshot.ts';

/** A sink for session `sessionId` starting at index 0, with the updates it was given, in order. */
export function memorySink(sessionId: string): { sink: LoopSink; updates: LoopUpdate[] } {
  const updates: LoopUpdate[] = [];
  let next = 0;
  const sink = {
    sessionId,
    includeEvents: true,
    get nextIndex() {
      return next;
    },
    baseIndex: 0,
    snapshot: UNKNOWN_SNAPSHOT,
    publish(u: LoopUpdate) {
      updates.push(u);
      next = Math.max(next, u.fromIndex + u.events.length);
      return true;
    },
    rebase(i: number) {
      next = i;
    },
  } as unknown as LoopSink;
  return { sink, updates };
}
