/** `GET /sessions/{id}/events`: the SSE stream (CONTRACT.md section 3). */
import type { Context, Hono } from 'hono';
import { singleQuery } from './validate.ts';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { OutgoingHttpHeaders } from 'node:http';
import type { AppDeps, AppEnv } from './deps.ts';
import { credentialsOf } from './auth.ts';
import { methodNotAllowed } from './methods.ts';
import { checkStreamAsk, isUnjudged, startSessionStream, type StreamAsk } from './stream-open.ts';
import { corsHeaders, corsOriginList } from './cors.ts';
import { STREAM_HEAD_ANSWER_HEADERS } from '../hub/writer.ts';

/** Seconds a client refused for a stream limit is told to wait (defined with the limits). */
export { STREAM_LIMIT_RETRY_AFTER_SECONDS } from './limits.ts';

/**
 * The CORS headers of a stream head the route writes itself (hono's cors
 * middleware only reaches Responses): the same function the fast path uses.
 */
export function middlewareHeaders(c: Context<AppEnv>, deps: AppDeps): OutgoingHttpHeaders {
  return corsHeaders(corsOriginList(deps.config.corsOrigins), c.req.header('origin'));
}

/** Registers the stream route (HEAD, and the GETs the fast path leaves to hono: HTTP/2, unusual targets). */
export function registerEventsRoute(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get('/sessions/:id/events', async (c) => {
    const ask: StreamAsk = {
      rawId: c.req.param('id'),
      lastEventId: c.req.header('last-event-id'),
      lastEventIdQuery: singleQuery('last_event_id', c.req.queries('last_event_id')),
      fromIndex: singleQuery('from_index', c.req.queries('from_index')),
      includeEvents: singleQuery('include_events', c.req.queries('include_events')),
      includeDetails: singleQuery('include_details', c.req.queries('include_details')),
      credentials: credentialsOf(c, deps.config.upstreamAuthHeader),
      head: c.req.method === 'HEAD',
    };
    const checked = await checkStreamAsk(ask, deps);
    if (checked === null) {
      c.env.incoming.socket.destroy();
      return RESPONSE_ALREADY_SENT;
    }
    // hono answers HEAD with the GET handler: a HEAD opens no stream and holds no slot. It answers the status the
    // GET would open with: the session's first contact (its status-only loop, shared) refuses one the upstream does
    // not know. A key not judged yet is not judged for a HEAD. A Response: hono's cors middleware adds CORS headers.
    if (c.req.method === 'HEAD') {
      // forNewStream: as a GET, a refusal that has lasted (a session deleted while its loop runs) is the answer.
      if (!isUnjudged(checked.grant)) deps.hub.release(deps.hub.forNewStream(await deps.hub.acquireAny(checked.id, checked.grant.upstreamCredential)));
      return c.body(null, 200, STREAM_HEAD_ANSWER_HEADERS);
    }
    await startSessionStream(checked, deps.limits.clientKeyOf(c), middlewareHeaders(c, deps), c.env.outgoing, deps);
    return RESPONSE_ALREADY_SENT;
  });
  app.all('/sessions/:id/events', methodNotAllowed(['GET', 'HEAD']));
}
