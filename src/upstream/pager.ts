/**
 * Changes calls that never stall on size. The real API's observation events
 * carry screenshots, so a page of a hundred events can pass the body cap: such
 * an answer is asked again at once with half the limit, down to one event, and
 * a single event larger than the cap becomes a placeholder (its type and
 * timestamp read without details) so the stream goes on past it.
 */
import type { ChangesOutcome, ChangesQuery, FailureOutcome, UpstreamClient } from './client.ts';
import type { ChangesTop, UpstreamEvent } from './types.ts';

/** Why a placeholder carries no data (the `omitted` field of its event). */
export const OMITTED_TOO_LARGE = 'too_large';

/** The events a page limit asks for, shrunk by oversized answers and grown back by small ones. */
export class PageLimit {
  readonly max: number;
  current: number;

  constructor(max: number) {
    this.max = max;
    this.current = max;
  }

  /** Halves the limit; false when it is already one event. */
  shrink(): boolean {
    if (this.current <= 1) return false;
    this.current = Math.max(1, Math.floor(this.current / 2));
    return true;
  }

  /** After an answer of `bytes`: a page well under the cap may ask for twice as many next time. */
  observe(bytes: number, maxBytes: number): void {
    if (this.current < this.max && bytes < maxBytes / 4) this.current = Math.min(this.max, this.current * 2);
  }
}

/** A page, a nothing-new, a failure, or one event that could not be relayed. */
export type PageOutcome =
  | Exclude<ChangesOutcome, { kind: 'too-large' }>
  | { kind: 'oversized'; event: UpstreamEvent; index: number; top: ChangesTop | null; maxBytes: number };

/** Query of a page call; the limit comes from the PageLimit. */
export type PageQuery = Omit<ChangesQuery, 'limit'>;

/**
 * One changes call at `limit.current`; an answer over the cap is asked again
 * with wait 0 and half the limit (the first call may have been a long-poll
 * whose events are now there), until it fits or one event is left.
 */
export async function fetchPage(client: UpstreamClient, sessionId: string, query: PageQuery, limit: PageLimit, signal?: AbortSignal): Promise<PageOutcome> {
  let wait = query.waitSeconds;
  for (;;) {
    const r = await client.changes(sessionId, { ...query, waitSeconds: wait, limit: limit.current }, signal);
    if (r.kind !== 'too-large') return r;
    wait = 0;
    if (!limit.shrink()) return placeholder(client, sessionId, query.fromIndex, r.maxBytes, signal);
  }
}

// The event's type and timestamp come from a call without details; if even that fails for size, they stay unknown.
async function placeholder(client: UpstreamClient, sessionId: string, index: number, maxBytes: number, signal?: AbortSignal): Promise<PageOutcome> {
  const r = await client.changes(sessionId, { fromIndex: index, limit: 1, includeEvents: false, waitSeconds: 0 }, signal);
  if (r.kind === 'events' && r.changes.new_events.length > 0) {
    const { type, timestamp } = r.changes.new_events[0]!;
    return { kind: 'oversized', index, event: { type, data: null, timestamp, omitted: OMITTED_TOO_LARGE }, top: r.changes.top, maxBytes };
  }
  if (r.kind === 'events' || r.kind === 'no-change' || r.kind === 'too-large') {
    return { kind: 'oversized', index, event: { type: 'unknown', data: null, timestamp: '', omitted: OMITTED_TOO_LARGE }, top: null, maxBytes };
  }
  return r;
}
