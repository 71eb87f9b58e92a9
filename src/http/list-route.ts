/**
 * `GET /sessions/events`: the upstream's session list as a live SSE stream
 * (CONTRACT.md section 3), scoped to what the caller may see: its own key's
 * list (AUTH=upstream), or the operator key's list limited to a token's
 * sessions claim.
 */
import type { Context, Hono } from 'hono';
import { EMPTY_LAST_EVENT_ID, singleQuery } from './validate.ts';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { AppDeps, AppEnv } from './deps.ts';
import { credentialsOf, streamAccess, type GrantScope } from './auth.ts';
import { middlewareHeaders } from './events-route.ts';
import { methodNotAllowed } from './methods.ts';
import { parseListFilter, wholeList } from './list-query.ts';
import { parseListCursor, type ListCursor } from '../hub/list-feed.ts';
import { startListStream } from '../hub/list-stream.ts';
import { responseGone, STREAM_HEAD_ANSWER_HEADERS } from '../hub/writer.ts';
import type { UpstreamCredential } from '../upstream/credential.ts';
import { BadRequestError } from '../errors.ts';

/** Where the poll's credential and the viewer's limits come from, by the grant's scope. */
function scopeOf(scope: GrantScope): { credential: UpstreamCredential | undefined; allow: ReadonlySet<string> | undefined } {
  if (scope.kind === 'upstream') return { credential: scope.credential, allow: undefined };
  if (scope.kind === 'sessions') return { credential: undefined, allow: scope.ids };
  return { credential: undefined, allow: undefined };
}

/** The resume point: the `Last-Event-ID` header, else the `last_event_id` query parameter; 400 when malformed. */
function resumeOf(c: Context<AppEnv>): ListCursor | undefined {
  const header = c.req.header('last-event-id');
  const raw = header !== undefined && header.trim() !== '' ? header : singleQuery('last_event_id', c.req.queries('last_event_id'));
  if (raw === undefined) return undefined;
  if (raw === '') throw new BadRequestError(EMPTY_LAST_EVENT_ID);
  const cursor = parseListCursor(raw);
  if (cursor === null) throw new BadRequestError('last event id is not one of this list stream\'s ids (<epoch>.<version>)');
  return cursor;
}

async function openListStream(c: Context<AppEnv>, deps: AppDeps): Promise<Response> {
  const filter = parseListFilter(new URL(c.req.url).searchParams);
  const resume = resumeOf(c);
  if (deps.isShuttingDown()) {
    // As for the other streams: a dropped connection makes EventSource retry (elsewhere); a 503 would stop it.
    c.env.incoming.socket.destroy();
    return RESPONSE_ALREADY_SENT;
  }
  const grant = await deps.authorize(credentialsOf(c, deps.config.upstreamAuthHeader), []);
  const { credential, allow } = scopeOf(grant.scope);
  const holder = deps.limits.clientKeyOf(c);
  const listFilter = allow === undefined ? filter : wholeList(filter);
  // A HEAD answers the status the GET would open with (401 for a key the upstream refuses: the list's first poll,
  // shared with its viewers), and opens no stream.
  if (c.req.method === 'HEAD') {
    deps.lists.release(await deps.lists.acquire(listFilter, credential, holder), holder);
    return c.body(null, 200, STREAM_HEAD_ANSWER_HEADERS);
  }
  const slot = deps.limits.streams.reserve(holder, []);
  let entry;
  try {
    entry = await deps.lists.acquire(listFilter, credential, holder);
  } catch (err) {
    slot.release();
    throw err;
  }
  const res = c.env.outgoing;
  if (responseGone(res) || deps.isShuttingDown()) {
    slot.release();
    deps.lists.release(entry, holder);
    return RESPONSE_ALREADY_SENT;
  }
  startListStream(res, {
    entry,
    holder,
    listHub: deps.lists,
    streams: deps.streams,
    log: deps.log,
    maxQueueBytes: deps.config.subscriberMaxQueueBytes,
    retryMs: deps.config.sseRetryMs,
    resume,
    allow,
    extraHeaders: middlewareHeaders(c, deps),
    slot,
    access: streamAccess(grant),
  });
  return RESPONSE_ALREADY_SENT;
}

/** Registers `GET /sessions/events` (before `/sessions/:id/…`, whose pattern it must not fall into). */
export function registerListRoute(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get('/sessions/events', (c) => openListStream(c, deps));
  app.all('/sessions/events', methodNotAllowed(['GET', 'HEAD']));
}
