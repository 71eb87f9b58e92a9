/** `GET /sessions/{id}/events`: the SSE stream (CONTRACT.md section 3). */
import type { Context, Hono } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { OutgoingHttpHeaders } from 'node:http';
import type { AppDeps, AppEnv } from './deps.ts';
import { methodNotAllowed } from './methods.ts';
import { parseIncludeEvents, parseSessionId, parseStartIndex } from './validate.ts';
import { responseGone, streamHeaders } from '../hub/writer.ts';
import type { FeedEntry } from '../hub/hub.ts';

/** Seconds a client refused for a stream limit is told to wait (defined with the limits). */
export { STREAM_LIMIT_RETRY_AFTER_SECONDS } from './limits.ts';

/** Headers set by middleware (CORS) that must travel with a head the route writes itself. */
export function middlewareHeaders(c: Context<AppEnv>, deps: AppDeps): OutgoingHttpHeaders {
  const extra: OutgoingHttpHeaders = {};
  // Only read c.res when CORS is on: building it costs memory on every stream (measured in bench/).
  if (deps.config.corsOrigins === undefined) return extra;
  c.res.headers.forEach((value, name) => {
    if (name !== 'content-type') extra[name] = value;
  });
  // hono's cors adds Vary after the handler returns, too late for a head written here.
  const allowOrigin = extra['access-control-allow-origin'];
  if (allowOrigin !== undefined && allowOrigin !== '*') extra.vary = 'Origin';
  return extra;
}

/** Registers the stream route. */
export function registerEventsRoute(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get('/sessions/:id/events', async (c) => {
    const id = parseSessionId(c.req.param('id'));
    const start = parseStartIndex(c.req.header('last-event-id'), c.req.query('from_index'));
    const includeEvents = parseIncludeEvents(c.req.query('include_events'), c.req.query('include_details'));
    if (deps.isShuttingDown()) {
      // EventSource gives up for good on a 503 but retries a dropped
      // connection (with Last-Event-ID): drop it so the browser reconnects
      // to another instance, or to this one once restarted.
      c.env.incoming.socket.destroy();
      return RESPONSE_ALREADY_SENT;
    }
    const grant = await deps.authorize(c, [id]);
    // hono answers HEAD with the GET handler: a HEAD must not open a stream, hold a slot or start a loop.
    if (c.req.method === 'HEAD') return c.body(null, 200, { ...(middlewareHeaders(c, deps) as Record<string, string>), ...(streamHeaders(c.env.outgoing) as Record<string, string>) });
    // Reserved before the first upstream await, so concurrent opens cannot overshoot a limit;
    // given back exactly once: on any failure below, or when the stream closes.
    const releaseSlot = deps.limits.streams.reserve(deps.limits.clientKeyOf(c), [id]);
    let entry: FeedEntry;
    try {
      entry = await deps.hub.acquire(id, includeEvents, start);
    } catch (err) {
      releaseSlot();
      throw err;
    }
    const res = c.env.outgoing;
    if (responseGone(res) || deps.isShuttingDown()) {
      releaseSlot();
      deps.hub.release(entry);
      return RESPONSE_ALREADY_SENT;
    }
    try {
      deps.streams.start(entry, res, start, { extraHeaders: middlewareHeaders(c, deps), onClosed: releaseSlot, expiresAtMs: grant.expiresAtMs });
    } catch (err) {
      releaseSlot();
      throw err;
    }
    return RESPONSE_ALREADY_SENT;
  });
  app.all('/sessions/:id/events', methodNotAllowed(['GET', 'HEAD']));
}
