/**
 * The drop-in endpoints: `GET /sessions/{id}/changes` and `/status` with the
 * upstream's own query, codes and bodies, answered from the shared loop and
 * its buffer, at the root and under the path of UPSTREAM_URL (`/api/v2/...`),
 * so a client or SDK written for the upstream changes only its base URL.
 */
import type { Context, Hono } from 'hono';
import type { AppDeps, AppEnv } from './deps.ts';
import { credentialsOf } from './auth.ts';
import { methodNotAllowed } from './methods.ts';
import { parseIncludeEvents, parseIndex, parseLimit, parseSessionId, parseWaitSeconds, singleQuery } from './validate.ts';
import type { Feed } from '../hub/feed.ts';
import { historyFailureSettled, type FeedEntry } from '../hub/hub.ts';
import { changesBody, isKnown, statusDropInBody, statusSaysOver, type Snapshot } from '../upstream/snapshot.ts';
import type { UpstreamEvent } from '../upstream/types.ts';
import type { UpstreamCredential } from '../upstream/credential.ts';
import { sleep } from '../upstream/backoff.ts';
import { BadRequestError, SessionNotFoundError, ShuttingDownError, UpstreamAuthError, UpstreamUnavailableError } from '../errors.ts';

/** Most events one drop-in answer carries. */
export const MAX_CHANGES_LIMIT = 1000;
/** The changes call's own query parameters (the API's, and `include_details`, its older name for `include_events`). */
const CHANGES_PARAMS = ['from_index', 'limit', 'include_events', 'include_details', 'wait_for_seconds'] as const;
/** Default `limit` when the caller gives none. */
export const DEFAULT_CHANGES_LIMIT = 100;
/**
 * Longest a drop-in caller may wait (s), the real API's own cap (its OpenAPI
 * description: `maximum: 25`); longer asks are clipped, so a client whose
 * timeout is set for the upstream is never held past it.
 */
export const MAX_CHANGES_WAIT_SECONDS = 25;
/**
 * Longest a `wait_for_seconds=0` caller is held while the loop is still
 * catching up or draining (ms): "nothing new" must not be answered before the
 * loop knows it (a draining SDK would stop short), nor hang a caller.
 */
export const UNSETTLED_WAIT_MS = 10_000;
/** Seconds a caller is told to wait when the loop has not settled within that bound (not read up to date, or draining). */
export const UNSETTLED_RETRY_AFTER_SECONDS = 2;
/** Longest a `/status` caller waits for that refresh (ms) before the held answer is sent. */
export const STATUS_REFRESH_WAIT_MS = 5000;
/** Longest a `/changes` caller waits for it (ms), within its own wait: a hanging `/status` costs it at most this. */
export const CHANGES_REFRESH_WAIT_MS = 1000;
/** Seconds a caller is told to wait while the upstream has not answered the loop yet. */
const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;
/** Reads of history that may come back empty before a 503 (the events exist: the loop read them). */
export const HISTORY_EMPTY_ATTEMPTS = 3;
/** Pause before asking again for history that came back empty, times the attempt (ms). */
const HISTORY_EMPTY_RETRY_MS = 200;

/** True while the session is known to be over but its last events are still being drained. */
export function draining(feed: Feed): boolean {
  const body = feed.snapshot.statusBody;
  return !feed.ended && body !== null && statusSaysOver(body);
}

/**
 * What a drop-in `/status` tells: the end once pollcast holds the session's last events. While its loop reads them
 * (it heard the end from `/status`), the status the session had before, when pollcast saw it going on: a caller
 * then asks `changes` again rather than stop short of them. The SDK stops at a terminal status without reading
 * `changes` again: an audit (7 Dec 2026) saw it stop at 6 of 18 events after a hung upstream call had left pollcast
 * behind, since `/status`, asked afresh, said the end before the loop had read it. A session over before pollcast
 * saw it going on is told as it is (a late reader of a finished session is not told it runs); so is the end once
 * the loop's calls fail (the drain may not come soon: a review saw `running` told for the 30 s of an outage) or
 * once UNSETTLED_WAIT_MS have gone by since the end was heard (what a `changes` call waits for a drain at most).
 */
export function statusToTell(feed: Feed): Snapshot {
  const held = draining(feed) && feed.goingOnSnapshot !== null && !feed.failing && Date.now() - feed.overSinceMs < UNSETTLED_WAIT_MS;
  return held ? feed.goingOnSnapshot! : feed.snapshot;
}

/**
 * Resolves true when `until` holds (at once, or after an update of the feed) or the feed ended, false when the wait
 * runs out or the caller leaves; always detaches itself.
 */
export function waitFor(feed: Feed, until: () => boolean, waitMs: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    // Aborted already (shutdown begun while the caller was on its way): no wait, and no abort event to come.
    if (signal.aborted) return resolve(false);
    // True already: no wait for the next update (until 7 Dec 2026 a drop-in call on a loop already failing waited
    // for its next failure, 8 s under a 429, an SDK audit found).
    if (feed.ended || until()) return resolve(true);
    let done = false;
    const finish = (changed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      feed.watchers.delete(watcher);
      signal.removeEventListener('abort', onAbort);
      resolve(changed);
    };
    const watcher = () => {
      if (feed.ended || until()) finish(true);
    };
    const onAbort = () => finish(false);
    const timer = setTimeout(() => finish(false), waitMs);
    feed.watchers.add(watcher);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** One page of held-out history, its failures mapped to the errors the caller sees. */
export async function readHistory(deps: AppDeps, entry: FeedEntry, from: number, to: number, signal: AbortSignal): Promise<UpstreamEvent[]> {
  for (let attempt = 1; ; attempt++) {
    const r = await deps.hub.fetchHistory(entry, from, to, signal);
    if (Array.isArray(r) && r.length > 0) return r;
    if (!Array.isArray(r)) {
      const now = Date.now();
      // Asked again when the hub's hold of the failure ends (a 429's Retry-After): no sooner, it would get the same.
      const retryAfter = r.failing === undefined ? UNAVAILABLE_RETRY_AFTER_SECONDS : Math.max(1, Math.ceil((r.failing.retryAtMs - now) / 1000));
      if (r.kind === 'not-found' && !historyFailureSettled(r.failing)) {
        throw new UpstreamUnavailableError('the sessions API answered 404 for this history a moment ago; asking it again', retryAfter);
      }
      if (r.kind === 'not-found') throw new SessionNotFoundError(entry.feed.sessionId);
      if (r.kind === 'unauthorized') throw new UpstreamAuthError(r.status);
      // Told the hold's end: its readers cost the upstream nothing meanwhile (until 7 Dec 2026 at least 5 s, past a 1 s hold).
      throw new UpstreamUnavailableError(r.kind, retryAfter);
    }
    // None of events the loop has read (an upstream behind itself, a replica that lags): asked again, then a 503,
    // never an empty page, which a poller draining until one would take for the end.
    if (attempt >= HISTORY_EMPTY_ATTEMPTS || !(await sleep(HISTORY_EMPTY_RETRY_MS * attempt, signal))) {
      if (deps.shutdownSignal.aborted) throw new ShuttingDownError();
      throw new UpstreamUnavailableError('the sessions API returned none of the events asked for', UNAVAILABLE_RETRY_AFTER_SECONDS);
    }
  }
}

/**
 * Refuses what the upstream itself would refuse now: `404` once the loop
 * hears that the session is gone (it keeps retrying for
 * UPSTREAM_GIVE_UP_SECONDS, but a poller must not be told "running"
 * meanwhile), `502` while the upstream refuses the operator's key (the hub's
 * `refusalOf`), and `503` while the loop has no answer yet.
 */
export function requireKnown(feed: Feed, deps: AppDeps): void {
  const refused = deps.hub.refusalOf(feed);
  if (refused !== null) throw refused;
  if (!isKnown(feed.snapshot)) throw new UpstreamUnavailableError(feed.upstreamError ?? 'no answer yet', UNAVAILABLE_RETRY_AFTER_SECONDS);
}

/**
 * A drop-in HEAD: the status its GET would answer (404 for a session the upstream does not know, 503 while it
 * cannot say), with no body; the session's status-only loop (shared, as GET /status's) makes the first contact.
 */
async function headOfSession(c: Context<AppEnv>, deps: AppDeps, id: string, credential: UpstreamCredential | undefined): Promise<Response> {
  const entry = await deps.hub.acquireAny(id, credential);
  try {
    requireKnown(entry.feed, deps);
  } finally {
    deps.hub.release(entry);
  }
  return c.body(null, 200, { 'content-type': 'application/json' });
}

/**
 * A held status older than STATUS_FRESH_SECONDS (and no news since `newsAtMs`) is asked again first (shared: at most one
 * upstream call per interval for the loop), waiting at most `waitMs`; a refusal it brings is answered as such.
 */
async function refreshIfStale(deps: AppDeps, entry: FeedEntry, newsAtMs = 0, waitMs = STATUS_REFRESH_WAIT_MS): Promise<void> {
  if (entry.feed.ended || Date.now() - Math.max(entry.feed.snapshot.statusAtMs, newsAtMs) <= deps.config.statusFreshSeconds * 1000) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([deps.hub.refreshStatus(entry), new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
  clearTimeout(timer);
  requireKnown(entry.feed, deps);
}

// "Nothing new", the way the upstream says it: a bare 204, or (simplified upstreams) a 200 with no events.
function nothingNew(c: Context<AppEnv>, feed: Feed): Response {
  return feed.emptyStyle === '200' ? c.json(changesBody(feed.snapshot, []), 200) : c.body(null, 204);
}

async function answerChanges(c: Context<AppEnv>, deps: AppDeps, entry: FeedEntry, from: number, limit: number, waitSeconds: number): Promise<Response> {
  const { feed } = entry;
  // Shutdown ends every wait at once: the caller is told to retry (elsewhere), not left until its connection is cut.
  const signal = AbortSignal.any([c.req.raw.signal, deps.shutdownSignal]);
  // Every wait below shares one bound: the caller's own wait, or the unsettled-loop bound when that is longer.
  const deadline = performance.now() + Math.max(waitSeconds * 1000, UNSETTLED_WAIT_MS);
  requireKnown(feed, deps);
  // The session may have ended (or paused) upstream with no event since the loop last asked (the real API's
  // long-poll does not answer a change of status), which the upstream's answer would say at once: asked as /status
  // asks it, waited for at most CHANGES_REFRESH_WAIT_MS, which counts in the caller's own wait. Events a moment ago
  // say as much as a /status answer would (a busy session costs no /status calls here).
  const refreshStarted = performance.now();
  await refreshIfStale(deps, entry, feed.lastEventsAtMs, CHANGES_REFRESH_WAIT_MS);
  const waitLeftMs = Math.max(0, waitSeconds * 1000 - (performance.now() - refreshStarted));
  let statusChanged = false;
  if (from >= feed.nextIndex && !feed.ended) {
    if (waitSeconds === 0) {
      // "Nothing new" is only true once the loop has caught up, and, for a session that is over, drained.
      // (Within the call's one bound, which the refresh above counts in.) A loop whose calls fail is not waited for,
      // nor one that starts failing during the wait: its backoff may be long (a 429's Retry-After), and the caller is
      // told so at once below (until 7 Dec 2026 a loop whose first call got a 429 held such a call the whole 10 s, an
      // SDK audit found, where the API answers at once).
      if (draining(feed) || (!feed.synced && !feed.failing)) await waitFor(feed, () => feed.nextIndex > from || feed.failing || (feed.synced && !draining(feed)), Math.max(0, deadline - performance.now()), signal);
    } else {
      // Metrics alone move with every step; only a new status or error is news without events, and only
      // from an upstream whose own long-poll answers a change of status (a simplified one): the real API
      // answers 204, and its final state comes with the end.
      const statusKey = () => `${feed.snapshot.status}|${feed.snapshot.error}`;
      const before = statusKey();
      const wakeOnStatus = feed.emptyStyle === '200';
      await waitFor(feed, () => feed.nextIndex > from || deps.hub.refusalOf(feed) !== null || (wakeOnStatus && statusKey() !== before), waitLeftMs, signal);
      statusChanged = wakeOnStatus && statusKey() !== before;
    }
    // A refusal heard during the wait is answered as the upstream answers it (the wake and the answer are one rule, the hub's).
    if (from >= feed.nextIndex) requireKnown(feed, deps);
  }
  // The loop heard the end from /status and is draining it: the upstream's changes answers now carry the end's
  // finished_at and answer with the terminal status. Answered once the drain has them (bounded), never the status
  // without them; a no-wait call whose drain's calls fail, at once (the 503 below), not at the bound. (A caller that
  // waits is let wait: a blip of the drain usually ends within it, and the end comes with the answer.)
  if (draining(feed)) await waitFor(feed, () => !draining(feed) || (waitSeconds === 0 && feed.failing), Math.max(0, deadline - performance.now()), signal);
  // Cut by shutdown while draining: the terminal status would go without its last events.
  if (deps.shutdownSignal.aborted && draining(feed)) throw new ShuttingDownError();
  // Checked after any wait too: the buffer may have dropped `from` meanwhile (a burst past its bounds).
  if (from < feed.baseIndex) {
    // Older than what the buffer holds: read it again from upstream (kept for the next caller when it fits).
    deps.stats.replayFromUpstream++;
    // The caller's own signal: a history read already under way at shutdown still answers with its events.
    const events = await readHistory(deps, entry, from, Math.min(feed.baseIndex, from + limit), c.req.raw.signal);
    // The page goes on from the buffer when the history read reached it (as the upstream's page would), and
    // stops where it did otherwise (the upstream capped it, or the buffer moved on meanwhile: never a gap).
    // (A new array: the history page is shared with concurrent readers and may be kept by the hub.)
    const reached = from + events.length;
    const page = reached >= feed.baseIndex && reached < from + limit ? [...events, ...feed.eventsBetween(reached, from + limit)] : events;
    return c.json(changesBody(feed.snapshot, page), 200);
  }
  if (from < feed.nextIndex) {
    deps.stats.replayFromBuffer++;
    return c.json(changesBody(feed.snapshot, feed.eventsBetween(from, from + limit)), 200);
  }
  // A long-poll woken by a change of status (simplified upstreams) answers with the new state and no events.
  if (statusChanged && !feed.ended) return c.json(changesBody(feed.snapshot, []), 200);
  // Cut short by shutdown, "nothing new" would not be known: 503, retry after a second.
  if (deps.shutdownSignal.aborted) throw new ShuttingDownError();
  // Nor is it while the loop's calls fail (any wait: the upstream may hold events it cannot read), while it has not
  // read up to date (any wait: its upstream call hanging; until 7 Dec 2026 a call with a wait got 204 there, an audit
  // found), or still drains an end (any wait) once the bound is over: a 204 would stop a client draining the end short
  // of the last events.
  const unsettled = feed.ended
    ? null
    : draining(feed)
      ? 'the end is being read'
      : feed.failing
        ? "the upstream is failing pollcast's calls for this session"
        : !feed.synced
          ? 'the session is not read up to date'
          : null;
  // A failing loop's caller is told to come back when the loop asks the upstream again (its backoff, or a 429's Retry-After).
  if (unsettled !== null) throw new UpstreamUnavailableError(`cannot tell yet whether there is anything new (${unsettled})`, deps.hub.retryAfterSeconds(entry, UNSETTLED_RETRY_AFTER_SECONDS));
  return nothingNew(c, feed);
}

/**
 * A long-poll ends by the time its grant does (rounded up to the second, so a
 * grant about to run out never makes a caller spin): a key revoked upstream
 * gets nothing past its verdict, and the next call is checked again.
 */
function waitWithin(waitSeconds: number, expiresAtMs: number | undefined): number {
  if (expiresAtMs === undefined || waitSeconds === 0) return waitSeconds;
  return Math.max(1, Math.min(waitSeconds, Math.ceil((expiresAtMs - Date.now()) / 1000)));
}

/** Registers the drop-in `changes` and `status` routes at `prefix` (the path of UPSTREAM_URL, or ''). */
function registerAt(app: Hono<AppEnv>, deps: AppDeps, prefix: string): void {
  // A long-poll's answer and a live status are true once: never kept by a cache between the caller and pollcast.
  for (const path of [`${prefix}/sessions/:id/changes`, `${prefix}/sessions/:id/status`]) {
    app.use(path, async (c, next) => {
      await next();
      c.res.headers.set('cache-control', 'no-store');
    });
  }
  app.get(`${prefix}/sessions/:id/changes`, async (c) => {
    const id = parseSessionId(c.req.param('id'));
    // As the upstream (FastAPI) answers them: a parameter given with no value is malformed, not absent.
    for (const name of CHANGES_PARAMS) if (c.req.queries(name)?.includes('')) throw new BadRequestError(`${name} must not be empty`);
    const fromRaw = singleQuery('from_index', c.req.queries('from_index'));
    const from = fromRaw === undefined ? 0 : parseIndex('from_index', fromRaw);
    const limit = parseLimit(singleQuery('limit', c.req.queries('limit')), DEFAULT_CHANGES_LIMIT, MAX_CHANGES_LIMIT);
    const includeEvents = parseIncludeEvents(singleQuery('include_events', c.req.queries('include_events')), singleQuery('include_details', c.req.queries('include_details')));
    const waitSeconds = parseWaitSeconds(singleQuery('wait_for_seconds', c.req.queries('wait_for_seconds')), MAX_CHANGES_WAIT_SECONDS);
    if (deps.isShuttingDown()) throw new ShuttingDownError();
    const grant = await deps.authorize(credentialsOf(c, deps.config.upstreamAuthHeader), [id]);
    // hono answers HEAD with the GET handler: GET's status, without a wait or event details.
    if (c.req.method === 'HEAD') return headOfSession(c, deps, id, grant.upstreamCredential);
    const entry = await deps.hub.acquire(id, includeEvents, from, grant.upstreamCredential);
    try {
      return await answerChanges(c, deps, entry, from, limit, waitWithin(waitSeconds, grant.expiresAtMs));
    } finally {
      deps.hub.release(entry);
    }
  });
  app.get(`${prefix}/sessions/:id/status`, async (c) => {
    const id = parseSessionId(c.req.param('id'));
    if (deps.isShuttingDown()) throw new ShuttingDownError();
    const grant = await deps.authorize(credentialsOf(c, deps.config.upstreamAuthHeader), [id]);
    if (c.req.method === 'HEAD') return headOfSession(c, deps, id, grant.upstreamCredential);
    const entry = await deps.hub.acquireAny(id, grant.upstreamCredential);
    try {
      requireKnown(entry.feed, deps);
      await refreshIfStale(deps, entry);
      return c.json(statusDropInBody(statusToTell(entry.feed)), 200);
    } finally {
      deps.hub.release(entry);
    }
  });
  // Under the API's path with forwarding on, other methods are the upstream's to answer (the pass-through
  // route, registered after this one); elsewhere pollcast answers them itself.
  if (prefix !== '' && prefix === deps.upstreamPath && deps.forward !== undefined) return;
  app.all(`${prefix}/sessions/:id/changes`, methodNotAllowed(['GET', 'HEAD']));
  app.all(`${prefix}/sessions/:id/status`, methodNotAllowed(['GET', 'HEAD']));
}

/** Registers the drop-ins at the root and, when UPSTREAM_URL has a path, under it too. */
export function registerDropInRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  registerAt(app, deps, '');
  if (deps.upstreamPath !== '') registerAt(app, deps, deps.upstreamPath);
}
