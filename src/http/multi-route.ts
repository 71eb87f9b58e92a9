/**
 * `GET /events?session=a&session=b` (also `?sessions=a,b`) and `POST /events`
 * with `{"sessions": [...]}`: several sessions on one SSE stream, with the
 * single stream's guarantees per session, served from the same shared loops.
 */
import type { Context, Hono } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { AppDeps, AppEnv } from './deps.ts';
import { credentialsOf, streamAccess } from './auth.ts';
import { middlewareHeaders } from './events-route.ts';
import { methodNotAllowed } from './methods.ts';
import { checkRate } from './limits.ts';
import { grantOrUnjudged, isUnjudged } from './stream-open.ts';
import { holdAndClaim, type HeldStream } from './stream-hold.ts';
import type { Grant } from './auth.ts';
import { idsFromBody, idsFromQuery, openIds, parseMuxRequest, type MuxRequest } from './multi-request.ts';
import { ENDED } from '../hub/cursor.ts';
import type { FeedEntry } from '../hub/hub.ts';
import type { LaneSpec } from '../hub/mux-subscriber.ts';
import { dropOpen, responseGone, STREAM_HEAD_ANSWER_HEADERS } from '../hub/writer.ts';
import { ForbiddenError, SessionNotFoundError, UpstreamAuthError } from '../errors.ts';
import type { UpstreamCredential } from '../upstream/credential.ts';
import { credentialFromCookie } from './auth-token.ts';
import { corsOriginList, originMaySendCookie } from './cors.ts';
import { tokenAuthConfigured } from '../config.ts';

/**
 * The lanes of a request: every open session acquired at once (single flight per session, like single streams).
 * `statusOnly` (a HEAD): any loop of each session will do, as for an overview.
 */
async function acquireLanes(deps: AppDeps, req: MuxRequest, credential: UpstreamCredential | undefined, statusOnly = false): Promise<LaneSpec[]> {
  const reading = req.ids.map((id, i) => ({ id, value: req.values[i]! }));
  const results = await Promise.allSettled(
    reading.map(({ id, value }) => {
      if (value === ENDED) return Promise.resolve(null);
      // An overview reads status and end only: any loop of the session will do.
      const acquiring = req.mode === 'overview' || statusOnly ? deps.hub.acquireAny(id, credential) : deps.hub.acquire(id, req.includeEvents, value - 1, credential);
      return acquiring.then((entry) => deps.hub.forNewStream(entry));
    }),
  );
  const acquired = results.flatMap((r) => (r.status === 'fulfilled' && r.value !== null ? [r.value] : []));
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  const notFound = failures.filter((e) => e instanceof SessionNotFoundError).length;
  const fatal = failures.find((e) => e instanceof UpstreamAuthError) ?? failures.find((e) => !(e instanceof SessionNotFoundError));
  // One session the upstream does not know ends alone (like a single stream's session that proves
  // not to exist); a refused key, a limit or a shutdown concerns the whole stream.
  if (fatal !== undefined || (notFound > 0 && notFound === openIds(req).length)) {
    for (const entry of acquired) deps.hub.release(entry);
    throw fatal ?? new SessionNotFoundError(openIds(req));
  }
  return reading.map(({ id, value }, i) => {
    const r = results[i]!;
    const entry: FeedEntry | null = r.status === 'fulfilled' ? r.value : null;
    return { sessionId: id, value, entry };
  });
}

async function openStream(c: Context<AppEnv>, deps: AppDeps, rawIds: readonly string[]): Promise<Response> {
  const req = parseMuxRequest(c, rawIds, deps.config.maxSessionsPerStream);
  if (deps.isShuttingDown()) {
    // As for single streams: a dropped connection makes EventSource retry (elsewhere); a 503 would stop it.
    c.env.incoming.socket.destroy();
    return RESPONSE_ALREADY_SENT;
  }
  const credentials = credentialsOf(c, deps.config.upstreamAuthHeader);
  if (c.req.method === 'POST' && tokenAuthConfigured(deps.config) && credentialFromCookie(credentials, deps.config.authCookieName)) {
    if (!originMaySendCookie(corsOriginList(deps.config.corsOrigins), c.req.header('origin'), new URL(c.req.url).origin)) {
      throw new ForbiddenError('a cookie-borne token may only be POSTed from this origin or one listed in CORS_ORIGINS');
    }
  }
  // Each session may cost an upstream call, as a single stream open does: a check of the caller's key
  // (AUTH=upstream, one per session, made by the authorizer below) or a loop start. The rate limit counts
  // sessions, not requests (the middleware took one token already), so a list cannot multiply upstream calls.
  checkRate(deps.limits, deps.limits.clientKeyOf(c), req.ids.length - 1);
  const asked = await grantOrUnjudged(deps, credentials, req.ids, c.req.method !== 'HEAD');
  const reading = openIds(req);
  // Every session's `end` was delivered already: 204 tells EventSource to stop reconnecting.
  if (reading.length === 0) return c.body(null, 204);
  // A HEAD answers the status the GET would open with (404 when no session exists upstream), from each session's
  // first contact (a status-only loop, shared), and opens nothing. A key not judged yet is not judged for a HEAD.
  if (c.req.method === 'HEAD') {
    if (!isUnjudged(asked)) for (const lane of await acquireLanes(deps, req, asked.upstreamCredential, true)) if (lane.entry) deps.hub.release(lane.entry);
    return c.body(null, 200, STREAM_HEAD_ANSWER_HEADERS);
  }
  // One stream for the client, one slot for each session it reads; reserved before the first await.
  // A key not judged yet counts against no session's limit until it is accepted (holdAndClaim).
  const slot = deps.limits.streams.reserve(deps.limits.clientKeyOf(c), isUnjudged(asked) ? [] : reading);
  const res = c.env.outgoing;
  let grant: Grant;
  let held: HeldStream | undefined;
  if (isUnjudged(asked)) {
    // The upstream cannot judge the key yet (AUTH=upstream): a stream all the same, reading nothing until it does.
    const judged = await holdAndClaim(res, { ids: reading, multi: true, extraHeaders: middlewareHeaders(c, deps), ...asked }, slot, deps);
    if (judged === null) return RESPONSE_ALREADY_SENT;
    ({ held, grant } = judged);
  } else grant = asked;
  let lanes: LaneSpec[];
  try {
    lanes = await acquireLanes(deps, req, grant.upstreamCredential);
  } catch (err) {
    slot.release();
    if (held) {
      held.abandon(err, deps.isShuttingDown());
      return RESPONSE_ALREADY_SENT;
    }
    // Shutdown began while the open waited for its first upstream answers: dropped, not refused with a 503.
    if (deps.isShuttingDown()) {
      dropOpen(res);
      return RESPONSE_ALREADY_SENT;
    }
    throw err;
  }
  const releaseAll = () => {
    slot.release();
    for (const lane of lanes) if (lane.entry) deps.hub.release(lane.entry);
  };
  if (responseGone(res) || deps.isShuttingDown() || held?.closed) {
    releaseAll();
    held?.close(deps.isShuttingDown() ? 'shutdown' : 'client');
    return RESPONSE_ALREADY_SENT;
  }
  if (held) deps.streams.handOver(held);
  try {
    deps.streams.startMany(lanes, req.key, req.mode, res, { extraHeaders: middlewareHeaders(c, deps), slot, access: streamAccess(grant), continues: held !== undefined });
  } catch (err) {
    releaseAll();
    // The head is out: no refusal can be answered any more.
    if (held) {
      deps.log.error({ err, sessions: reading.length }, 'a held stream could not go on');
      dropOpen(res);
      return RESPONSE_ALREADY_SENT;
    }
    throw err;
  }
  return RESPONSE_ALREADY_SENT;
}

/** Registers `GET`, `HEAD` and `POST /events`. */
export function registerMultiEventsRoute(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get('/events', (c) => openStream(c, deps, idsFromQuery(c)));
  app.post('/events', async (c) => openStream(c, deps, await idsFromBody(c, deps.config.bodyTimeoutSeconds)));
  app.all('/events', methodNotAllowed(['GET', 'HEAD', 'POST']));
}
