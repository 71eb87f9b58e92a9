/**
 * `GET|HEAD /v1/stream/sessions/{id}`: the session as a read-only JSON-mode
 * Durable Stream (CONTRACT.md section 3; PROTOCOL.md of
 * durable-streams/durable-streams): catch-up, `live=long-poll` and
 * `live=sse` reads, all served from the session's hub feed (the same loop as
 * every other route). The mapping is in docs/durable-streams.md.
 */
import type { Context, Hono } from 'hono';
import type { AppDeps, AppEnv } from './deps.ts';
import { credentialsOf, type Grant } from './auth.ts';
import { methodNotAllowed } from './methods.ts';
import { requireKnown, UNSETTLED_RETRY_AFTER_SECONDS, waitFor } from './dropin-routes.ts';
import { parseSessionId, singleQuery } from './validate.ts';
import { checkedPosition, currentStatus, hasNews, mayBeBehind, readBatch, readToTail, settle, tailOf, type Batch } from './durable-read.ts';
import {
  cacheControl,
  etagMatches,
  etagOf,
  formatOffset,
  isStatusRecord,
  jsonArrayStream,
  nextCursor,
  parseCursor,
  parseLive,
  parseOffset,
  sseControlEvent,
  sseDataEvent,
  type Position,
} from './durable-offsets.ts';
import { isPublicSession, openAccess } from '../config.ts';
import { accessErrorFrame } from '../hub/frames.ts';
import type { FeedEntry } from '../hub/hub.ts';
import type { Feed } from '../hub/feed.ts';
import { ShuttingDownError, UpstreamUnavailableError } from '../errors.ts';

/** Longest a long-poll waits for news before answering 204 (ms). */
export const LONG_POLL_TIMEOUT_MS = 20_000;
/** An SSE read is closed after this long (ms) so new readers collapse onto fresh requests (PROTOCOL.md 8.2); the client resumes from its last offset. */
export const SSE_CONNECTION_MS = 60_000;
/** How often an SSE read of a session whose loop hears a refusal looks whether it has settled (ms). */
const REFUSAL_CHECK_MS = 1000;
const JSON_TYPE = 'application/json';

/** What every answer of the route carries (PROTOCOL.md 10.7), errors included. */
const SECURITY_HEADERS: Record<string, string> = { 'x-content-type-options': 'nosniff', 'cross-origin-resource-policy': 'cross-origin' };

/** Whether a shared cache may keep this session's fixed ranges: anyone may read it. */
function sessionIsPublic(deps: AppDeps, id: string): boolean {
  return openAccess(deps.config) || isPublicSession(deps.config.publicSessions, id);
}

// A public session is readable by anyone (a shared cache hands it out anyway); others as on every route.
async function authorizeRead(c: Context<AppEnv>, deps: AppDeps, id: string, isPublic: boolean): Promise<Grant | null> {
  if (isPublic && !openAccess(deps.config)) return null;
  return deps.authorize(credentialsOf(c, deps.config.upstreamAuthHeader), [id]);
}

function protocolHeaders(batch: Pick<Batch, 'next' | 'upToDate' | 'closed'>): Record<string, string> {
  const h: Record<string, string> = { 'content-type': JSON_TYPE, 'stream-next-offset': formatOffset(batch.next) };
  if (batch.upToDate) h['stream-up-to-date'] = 'true';
  if (batch.closed) h['stream-closed'] = 'true';
  return h;
}

async function answerRead(c: Context<AppEnv>, deps: AppDeps, entry: FeedEntry, start: Position, startRaw: string, live: 'catch-up' | 'long-poll', isPublic: boolean, cursor: number | undefined, expiresAtMs: number | undefined): Promise<Response> {
  const { feed } = entry;
  const signal = c.req.raw.signal;
  // A catch-up answer from older history than the session's buffer re-reads it from the upstream: one of a few at
  // once, released once the client has read it (or left, or stopped reading for BODY_TIMEOUT_SECONDS).
  const leave = live === 'catch-up' && start.events < feed.baseIndex ? await deps.catchUps.enter(signal) : undefined;
  let handedOver = false;
  try {
    const response = await answerWith(c, deps, entry, start, startRaw, live, isPublic, cursor, expiresAtMs, leave);
    handedOver = leave !== undefined && response.body !== null;
    return response;
  } finally {
    if (!handedOver) leave?.();
  }
}

async function answerWith(c: Context<AppEnv>, deps: AppDeps, entry: FeedEntry, start: Position, startRaw: string, live: 'catch-up' | 'long-poll', isPublic: boolean, cursor: number | undefined, expiresAtMs: number | undefined, leave: (() => void) | undefined): Promise<Response> {
  const { feed } = entry;
  const signal = c.req.raw.signal;
  let batch = await readBatch(deps, entry, start, signal);
  if (live === 'catch-up') batch = await readToTail(deps, entry, batch, signal);
  if (live === 'catch-up' && batch.behind === true) {
    // At the head of a loop that may be behind the upstream (its settle wait ran out, or its last call failed): a
    // catch-up read (the client's `live: false` stops at "up to date") is not told it has everything. With nothing past
    // its offset, neither "up to date" nor an empty answer the client would ask again at once: a 503 it retries. A
    // status alone is nothing either (audit, 7 Dec 2026: a session whose loop had read no event yet, told 429, answered
    // its placeholder status, and the client's live: false stopped with none of its 150 events).
    // Live reads wait at the head as usual (a reader told "not up to date" there falls back to catch-up reads).
    // Retried when the loop asks the upstream again (its backoff, or a 429's Retry-After), not sooner.
    if (batch.messages.every(isStatusRecord)) throw new UpstreamUnavailableError('cannot tell yet whether the stream goes on past this offset (the session is not read up to date)', deps.hub.retryAfterSeconds(entry, UNSETTLED_RETRY_AFTER_SECONDS));
    batch = { ...batch, upToDate: false };
  }
  const liveHeaders: Record<string, string> = live === 'long-poll' ? { 'stream-cursor': nextCursor(cursor, Date.now()) } : {};
  if (live === 'long-poll' && batch.messages.length === 0 && !batch.closed) {
    // News that came while the first read returned is not an update to wait for.
    // Held no longer than the caller's access (a token's exp, a key's verdict): nothing is given past it, and
    // the next request is judged again (as the drop-in long-poll does).
    const waitMs = expiresAtMs === undefined ? LONG_POLL_TIMEOUT_MS : Math.max(0, Math.min(LONG_POLL_TIMEOUT_MS, expiresAtMs - Date.now()));
    // A graceful stop ends the wait at once: the reader gets its 204 (up to date) and asks again, elsewhere.
    if (!hasNews(feed, start)) await waitFor(feed, () => hasNews(feed, start), waitMs, AbortSignal.any([signal, deps.shutdownSignal]));
    batch = await readBatch(deps, entry, start, signal);
    liveHeaders['stream-cursor'] = nextCursor(cursor, Date.now());
  }
  if (live === 'long-poll' && batch.messages.length === 0) {
    // PROTOCOL.md 5.6: the tail (a status part past this instance's, which a reader may bring, is not named back,
    // unless this instance may lag its cluster: the status the reader holds may be one it has yet to apply), up to
    // date; never cached (a cached 204 would hold readers back).
    return c.body(null, 204, { ...protocolHeaders({ ...batch, next: namedNext(deps, feed, batch.next) }), ...liveHeaders, 'cache-control': 'no-store' });
  }
  // Nor by a 200 (audit, 7 Dec 2026: a catch-up from a part 40 s ahead echoed it, cacheable, and the reader would
  // have skipped every status until then; SSE control events as well, below); such an answer is kept by no cache.
  const next = namedNext(deps, feed, batch.next);
  const ahead = next !== batch.next;
  if (ahead) batch = { ...batch, next };
  // PROTOCOL.md 8.1: no ETag for `offset=now`, and never cached: the same URL names a later tail a moment later.
  const fromNow = startRaw === 'now';
  const etag = fromNow ? null : etagOf(feed.sessionId, startRaw, formatOffset(batch.next));
  const headers: Record<string, string> = { ...protocolHeaders(batch), ...liveHeaders, 'cache-control': batch.partial || batch.behind || fromNow || ahead ? 'no-store' : cacheControl(isPublic, batch.fixed) };
  if (etag !== null) headers.etag = etag;
  if (etag !== null && etagMatches(c.req.header('if-none-match'), etag)) return c.body(null, 304, headers);
  // Sent as it is held: a catch-up answer of tens of MB is not copied into one buffer first.
  const outgoing = c.env.outgoing;
  // Bytes written and not yet taken by the connection (HTTP/2: by this request's stream).
  const pendingBytes = () => (outgoing as { stream?: { writableLength: number } }).stream?.writableLength ?? outgoing.writableLength;
  const hooks = leave === undefined ? {} : { onDone: leave, stallMs: deps.config.bodyTimeoutSeconds * 1000, onStall: () => outgoing.destroy(), pendingBytes };
  return c.body(jsonArrayStream(batch.messages, hooks), 200, headers);
}

/**
 * The offset an answer names next: `next` with its status part no later than the feed's current status version
 * (events are never moved; `next` itself when it is not past), unless this instance may lag its cluster (the status
 * the reader holds may be one it has yet to apply).
 */
function namedNext(deps: AppDeps, feed: Feed, next: Position): Position {
  if (next.closed || mayBeBehind(deps)) return next;
  const version = currentStatus(feed)?.version ?? 0;
  return next.status > version ? { ...next, status: version } : next;
}

/**
 * `offset=now` (PROTOCOL.md 6): catch-up answers `[]` at the tail; long-poll and SSE start there. HEAD names it too.
 * A loop that has never read the session up to date (its first calls refused with a 429, or hung, past the settle
 * wait) does not know where the tail is: a 503 the client retries, not its head, which named index 0 and had a
 * reader of "now" get the whole history as new events (an audit, 7 Dec 2026).
 */
async function tailPosition(deps: AppDeps, entry: FeedEntry, signal: AbortSignal): Promise<Position> {
  const { feed } = entry;
  await settle(feed, 'tail', signal);
  if (!feed.ended && !feed.caughtUpOnce) throw new UpstreamUnavailableError('cannot tell yet where the stream\'s tail is (the session is not read up to date)', deps.hub.retryAfterSeconds(entry, UNSETTLED_RETRY_AFTER_SECONDS));
  return tailOf(feed);
}

// The SSE read: data and control events from `start` on, until the end record, the connection's
// time is up, the caller's access runs out, or the caller leaves. Pulled, so a slow reader holds one batch.
function sseBody(deps: AppDeps, entry: FeedEntry, start: Position, cursor: number | undefined, signal: AbortSignal, grant: Grant | undefined, done: () => void, firstBatch?: Batch): ReadableStream<Uint8Array> {
  const expiresAtMs = grant?.expiresAtMs;
  const { feed } = entry;
  const startedAt = Date.now();
  // The SSE streams' bound (src/hub/streams.ts): never silent longer than two thirds of HEARTBEAT_SECONDS, so a
  // late timer still keeps within the contract's 15 s at the default. Until 7 Dec 2026 it waited the whole of it.
  const heartbeatMs = (deps.config.heartbeatSeconds * 1000 * 2) / 3;
  let pos = start;
  let sentControl = false;
  let lastWriteMs = startedAt;
  const waitSignal = AbortSignal.any([signal, deps.shutdownSignal]);
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    done();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          const deadline = Math.min(startedAt + SSE_CONNECTION_MS, expiresAtMs ?? Infinity);
          if (signal.aborted || Date.now() >= deadline || deps.isShuttingDown()) {
            // A token's end is said, as on every stream (contract section 4), so the reader renews it rather than
            // retrying with it; the Durable Streams client skips an event type it does not know. An upstream key's
            // verdict (renewable) is checked again by the reconnect.
            if (!signal.aborted && expiresAtMs !== undefined && Date.now() >= expiresAtMs && grant?.renew === undefined) controller.enqueue(accessErrorFrame('token_expired'));
            finish();
            controller.close();
            return;
          }
          const batch = firstBatch ?? (await readBatch(deps, entry, pos, signal));
          firstBatch = undefined;
          // As every answer names it: a status part past this instance's is not carried on (nor named back).
          const next = namedNext(deps, feed, batch.next);
          const control = () => sseControlEvent(formatOffset(next), nextCursor(cursor, Date.now()), batch.upToDate, batch.closed);
          if (batch.messages.length > 0 || batch.closed) {
            pos = next;
            sentControl = true;
            controller.enqueue(batch.messages.length > 0 ? Buffer.concat([sseDataEvent(batch.messages), control()]) : control());
            lastWriteMs = Date.now();
            if (batch.closed) {
              finish();
              controller.close();
            }
            return;
          }
          if (!sentControl) {
            // From the offset it names: a status part past the tail, not carried on, must not hide the statuses
            // below it for the rest of the connection (a review).
            pos = next;
            sentControl = true;
            lastWriteMs = Date.now();
            controller.enqueue(control());
            return;
          }
          if (hasNews(feed, pos)) continue;
          // The loop hears the session refused (deleted, say) for REFUSAL_SETTLED_MS: the read ends, and the
          // reconnect is answered as a long-poll is (404). Until 7 Dec 2026 it went on to its 60 s cut (audit).
          if (deps.hub.settledRefusalOf(feed) instanceof Error) {
            finish();
            controller.close();
            return;
          }
          const refused = deps.hub.refusalOf(feed) !== null;
          // A graceful stop ends the wait at once too (the loop's head then closes the stream cleanly).
          const changed = await waitFor(feed, () => hasNews(feed, pos), Math.max(1, Math.min(refused ? REFUSAL_CHECK_MS : heartbeatMs, deadline - Date.now())), waitSignal);
          if (!changed && !waitSignal.aborted && Date.now() < deadline) {
            // Refused, not yet for long: looked at again in a moment (a comment goes out at the heartbeat as usual).
            if (refused && Date.now() - lastWriteMs < heartbeatMs) continue;
            lastWriteMs = Date.now();
            controller.enqueue(Buffer.from(': keep-alive\n\n'));
            return;
          }
        }
      } catch (err) {
        deps.log.debug({ session: feed.sessionId, err: (err as Error).message }, 'durable SSE read ended');
        finish();
        controller.close();
      }
    },
    cancel() {
      finish();
    },
  });
}

/**
 * `requireKnown`, except that a refusal not yet settled (`Hub.settledRefusalOf`) is a `503` the client
 * retries: a Durable Streams client, as an EventSource, stops for good on a `404`, and one refused call may be a blip
 * the loop outlives (stream opens wait for it to settle the same way: `Hub.forNewStream`).
 */
function requireSettledKnown(feed: Feed, deps: AppDeps): void {
  if (deps.hub.settledRefusalOf(feed) === 'unsettled') {
    throw new UpstreamUnavailableError(`${feed.upstreamError ?? 'the session was refused'} a moment ago; asking again`, 1);
  }
  requireKnown(feed, deps);
}

/** Registers the route. */
export function registerDurableRoute(app: Hono<AppEnv>, deps: AppDeps): void {
  app.use('/v1/stream/*', async (c, next) => {
    await next();
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(k, v);
  });
  app.get('/v1/stream/sessions/:id', async (c) => {
    const id = parseSessionId(c.req.param('id'));
    const startRaw = singleQuery('offset', c.req.queries('offset'));
    const parsed = parseOffset(startRaw);
    const live = parseLive(singleQuery('live', c.req.queries('live')));
    const cursor = parseCursor(singleQuery('cursor', c.req.queries('cursor')));
    if (deps.isShuttingDown()) throw new ShuttingDownError();
    const isPublic = sessionIsPublic(deps, id);
    const grant = await authorizeRead(c, deps, id, isPublic);
    const head = c.req.method === 'HEAD';
    const startIndex = parsed === 'now' ? 'head' : parsed.events;
    const signal = c.req.raw.signal;
    const slot = live === 'sse' && !head ? deps.limits.streams.reserve(deps.limits.clientKeyOf(c), [id]) : null;
    let entry: FeedEntry;
    try {
      // Without UPSTREAM_API_KEY (AUTH=upstream) the loop runs on the key of a caller the upstream accepted.
      entry = await deps.hub.acquire(id, true, startIndex, grant?.upstreamCredential);
    } catch (err) {
      slot?.release();
      throw err;
    }
    let handedOver = false;
    try {
      requireSettledKnown(entry.feed, deps);
      if (head) {
        // PROTOCOL.md 5.4: metadata only, never cached (a stale tail offset misleads).
        const tail = await tailPosition(deps, entry, signal);
        return c.body(null, 200, { ...protocolHeaders({ next: tail, upToDate: false, closed: tail.closed }), 'cache-control': 'no-store' });
      }
      const start = parsed === 'now' ? await tailPosition(deps, entry, signal) : parsed;
      if (live === 'sse') {
        // Checked before the 200: a bad offset is a 400, not a stream that ends at once.
        await checkedPosition(entry.feed, start, signal, () => mayBeBehind(deps));
        // History behind the buffer is read before the 200 too: a read the upstream fails (or holds, a 429) is a 503
        // with Retry-After, which the client waits out, not an empty stream it takes for SSE that does not work (an
        // audit, 7 Dec 2026: 12 empty 200s in 3.5 s, and the client fell back to long-polls).
        const firstBatch = start.events < entry.feed.baseIndex ? await readBatch(deps, entry, start, signal) : undefined;
        const done = () => {
          slot?.release();
          deps.hub.release(entry);
        };
        handedOver = true;
        const body = sseBody(deps, entry, start, cursor, signal, grant ?? undefined, done, firstBatch);
        return c.body(body, 200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
      }
      if (parsed === 'now' && live === 'catch-up') {
        // PROTOCOL.md 6: `[]` at the tail, up to date, no ETag, not cached.
        const tail = { next: start, upToDate: true, closed: start.closed };
        return c.body('[]', 200, { ...protocolHeaders(tail), 'cache-control': 'no-store' });
      }
      // A URL that carries a credential (`access_token`, needless on a public session) is no shared cache's to keep:
      // the cache would hold the caller's token in its key and logs (auth audit, 7 Dec 2026). Answered private.
      const shared = isPublic && c.req.query('access_token') === undefined;
      return await answerRead(c, deps, entry, start, startRaw ?? '-1', live, shared, cursor, grant?.expiresAtMs);
    } finally {
      if (!handedOver) {
        slot?.release();
        deps.hub.release(entry);
      }
    }
  });
  app.all('/v1/stream/sessions/:id', methodNotAllowed(['GET', 'HEAD']));
}
