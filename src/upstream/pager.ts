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

/** Most probes `findHead` makes before it settles for what it found (2 × 52 covers any safe index). */
const HEAD_PROBES_MAX = 110;

/**
 * The number of events a session has, found by probing single indices
 * without details (`limit=1&include_events=false`, wait 0): doubling steps
 * from `known` (an index known to exist, or -1), then a binary search. A
 * reader that needs no history (status only) starts there instead of reading
 * every page: about 2 × log2(count) small calls, whatever the history.
 */
export async function findHead(client: UpstreamClient, sessionId: string, known: number, signal?: AbortSignal): Promise<number | FailureOutcome> {
  let probes = 0;
  const exists = async (index: number): Promise<boolean | FailureOutcome> => {
    probes++;
    const r = await client.changes(sessionId, { fromIndex: index, limit: 1, includeEvents: false, waitSeconds: 0 }, signal);
    if (r.kind === 'events') return r.changes.new_events.length > 0;
    if (r.kind === 'no-change') return false;
    if (r.kind === 'too-large') return true;
    return r;
  };
  let lo = known;
  let step = Math.max(1, known + 1);
  let hi = -1;
  while (hi === -1) {
    if (probes >= HEAD_PROBES_MAX) return lo + 1;
    const at = Math.min(Number.MAX_SAFE_INTEGER, lo + step);
    const e = await exists(at);
    if (typeof e !== 'boolean') return e;
    if (e) lo = at;
    else hi = at;
    step *= 2;
  }
  while (hi - lo > 1 && probes < HEAD_PROBES_MAX) {
    const mid = Math.floor((lo + hi) / 2);
    const e = await exists(mid);
    if (typeof e !== 'boolean') return e;
    if (e) lo = mid;
    else hi = mid;
  }
  return lo + 1;
}
