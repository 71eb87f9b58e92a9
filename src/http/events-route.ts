/** `GET /sessions/{id}/events`: the SSE stream (CONTRACT.md section 3). */
import type { Hono } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { OutgoingHttpHeaders } from 'node:http';
import type { AppEnv, AppDeps } from './app.ts';
import { parseIncludeDetails, parseSessionId, parseStartIndex } from './validate.ts';
import { ShuttingDownError, TooManyRequestsError } from '../errors.ts';

/** Seconds a client refused for the stream limit is told to wait. */
export const STREAM_LIMIT_RETRY_AFTER_SECONDS = 5;

/** Registers the stream route. */
export function registerEventsRoute(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get('/sessions/:id/events', async (c) => {
    const id = parseSessionId(c.req.param('id'));
    const start = parseStartIndex(c.req.header('last-event-id'), c.req.query('from_index'));
    const includeDetails = parseIncludeDetails(c.req.query('include_details'));
    if (deps.isShuttingDown()) throw new ShuttingDownError();
    await deps.authorize(c, id);
    if (deps.streams.size >= deps.config.maxStreams) {
      throw new TooManyRequestsError(`too many open streams (limit ${deps.config.maxStreams})`, STREAM_LIMIT_RETRY_AFTER_SECONDS);
    }
    const entry = await deps.hub.acquire(id, includeDetails);
    const res = c.env.outgoing;
    if (res.destroyed || deps.isShuttingDown()) {
      deps.hub.release(entry);
      return RESPONSE_ALREADY_SENT;
    }
    // Headers set by middleware (CORS) travel with the stream's own head.
    const extra: OutgoingHttpHeaders = {};
    c.res.headers.forEach((value, name) => {
      if (name !== 'content-type') extra[name] = value;
    });
    deps.streams.start(entry, res, start, extra);
    return RESPONSE_ALREADY_SENT;
  });
}
