/**
 * `GET /sessions/{id}/changes`: the drop-in long-poll endpoint, answered from
 * the shared loop's buffer with the upstream's own shape and codes.
 */
import type { Context, Hono } from 'hono';
import type { AppEnv, AppDeps } from './app.ts';
import { parseIncludeDetails, parseIndex, parseLimit, parseSessionId, parseWaitSeconds } from './validate.ts';
import type { Chunk, Feed, FeedListener } from '../hub/feed.ts';
import type { FeedEntry } from '../hub/hub.ts';
import { SessionNotFoundError, ShuttingDownError, UpstreamAuthError, UpstreamUnavailableError } from '../errors.ts';
import type { UpstreamEvent } from '../upstream/types.ts';

/** Most events one drop-in answer carries. */
export const MAX_CHANGES_LIMIT = 1000;
/** Default `limit` when the caller gives none. */
export const DEFAULT_CHANGES_LIMIT = 100;
/** Longest a drop-in caller may wait (s); longer asks are clipped. */
export const MAX_CHANGES_WAIT_SECONDS = 60;

function body(feed: Feed, events: UpstreamEvent[]) {
  const s = feed.state;
  return { status: s.status, started_at: s.started_at, finished_at: s.finished_at, error: s.error, answer: s.answer, metrics: s.metrics, new_events: events };
}

// Resolves when the feed passes `from`, its status changes, it ends, the wait
// runs out, or the caller leaves; always detaches itself.
function waitForChange(feed: Feed, from: number, waitMs: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (changed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      feed.listeners.delete(listener);
      signal.removeEventListener('abort', onAbort);
      resolve(changed);
    };
    const listener: FeedListener = {
      onChunk: (chunk: Chunk) => {
        if (chunk.status !== null || feed.nextIndex > from) finish(true);
      },
      onEnd: () => finish(true),
    };
    const onAbort = () => finish(false);
    const timer = setTimeout(() => finish(false), waitMs);
    feed.listeners.add(listener);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

// One wait-0 changes call straight to the upstream, its failures mapped to the errors the caller sees.
async function readUpstream(deps: AppDeps, entry: FeedEntry, from: number, to: number, signal: AbortSignal): Promise<UpstreamEvent[]> {
  const r = await deps.hub.fetchHistory(entry, from, to, signal);
  if (Array.isArray(r)) return r;
  if (r.kind === 'not-found') throw new SessionNotFoundError(entry.feed.sessionId);
  if (r.kind === 'unauthorized') throw new UpstreamAuthError(r.status);
  throw new UpstreamUnavailableError(r.kind, 5);
}

async function answer(c: Context<AppEnv>, deps: AppDeps, entry: FeedEntry, from: number, limit: number, waitSeconds: number): Promise<Response> {
  const { feed } = entry;
  if (from < feed.baseIndex) {
    // Older than what the buffer holds: read it again from upstream.
    deps.stats.replayFromUpstream++;
    return c.json(body(feed, await readUpstream(deps, entry, from, Math.min(feed.baseIndex, from + limit), c.req.raw.signal)), 200);
  }
  if (from < feed.nextIndex || feed.ended) {
    deps.stats.replayFromBuffer++;
    return c.json(body(feed, feed.eventsBetween(from, from + limit)), 200);
  }
  if (waitSeconds === 0 && !feed.synced) {
    // The loop has not caught up yet, so "nothing new" is not known: ask the
    // upstream directly, as the caller's own wait_for_seconds=0 allows.
    const events = await readUpstream(deps, entry, from, from + limit, c.req.raw.signal);
    return events.length > 0 ? c.json(body(feed, events), 200) : c.body(null, 204);
  }
  if (waitSeconds > 0 && (await waitForChange(feed, from, waitSeconds * 1000, c.req.raw.signal))) {
    return c.json(body(feed, feed.eventsBetween(from, from + limit)), 200);
  }
  return c.body(null, 204);
}

/** Registers the drop-in long-poll route. */
export function registerChangesRoute(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get('/sessions/:id/changes', async (c) => {
    const id = parseSessionId(c.req.param('id'));
    const fromRaw = c.req.query('from_index');
    const from = fromRaw === undefined || fromRaw === '' ? 0 : parseIndex('from_index', fromRaw);
    const limit = parseLimit(c.req.query('limit'), DEFAULT_CHANGES_LIMIT, MAX_CHANGES_LIMIT);
    const includeDetails = parseIncludeDetails(c.req.query('include_details'));
    const waitSeconds = parseWaitSeconds(c.req.query('wait_for_seconds'), MAX_CHANGES_WAIT_SECONDS);
    if (deps.isShuttingDown()) throw new ShuttingDownError();
    await deps.authorize(c, id);
    const entry = await deps.hub.acquire(id, includeDetails);
    try {
      return await answer(c, deps, entry, from, limit, waitSeconds);
    } finally {
      deps.hub.release(entry);
    }
  });
}
