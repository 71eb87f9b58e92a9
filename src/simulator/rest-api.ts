/** Routes the real API's REST surface (everything but changes and status) to its handlers. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendDetail } from './api-body.ts';
import type { SimContext } from './context.ts';
import type { Caller } from './keys.ts';
import { eventsPage, resource, sessionAction, share } from './rest-actions.ts';
import type { SessionAction } from './rest-actions.ts';
import { cancelSession, createSession, getSession, listSessions, quota } from './rest-sessions.ts';

type Handler = (ctx: SimContext, req: IncomingMessage, res: ServerResponse, url: URL, params: string[], caller: Caller) => void | Promise<void>;

const action =
  (name: SessionAction): Handler =>
  (ctx, req, res, _url, [id = ''], caller) =>
    sessionAction(ctx, req, res, id, name, caller);

// Method + path below the base → handler; `params` are the decoded path segments.
const ROUTES: Array<[string, RegExp, Handler]> = [
  ['POST', /^\/sessions$/, (ctx, req, res, _url, _p, caller) => createSession(ctx, req, res, caller)],
  ['GET', /^\/sessions$/, (ctx, req, res, url, _p, caller) => listSessions(ctx, req, res, url, caller)],
  // Before `/sessions/{id}`: `quota` is not a session id.
  ['GET', /^\/sessions\/quota$/, (ctx, _req, res, _url, _p, caller) => quota(ctx, res, caller)],
  ['GET', /^\/sessions\/([^/]+)$/, (ctx, _req, res, _url, [id = ''], caller) => getSession(ctx, res, id, caller)],
  ['DELETE', /^\/sessions\/([^/]+)$/, (ctx, _req, res, _url, [id = ''], caller) => cancelSession(ctx, res, id, caller)],
  ['POST', /^\/sessions\/([^/]+)\/messages$/, action('messages')],
  ['POST', /^\/sessions\/([^/]+)\/tool_results$/, action('tool_results')],
  ['POST', /^\/sessions\/([^/]+)\/pause$/, action('pause')],
  ['POST', /^\/sessions\/([^/]+)\/resume$/, action('resume')],
  ['POST', /^\/sessions\/([^/]+)\/force_answer$/, action('force_answer')],
  ['GET', /^\/sessions\/([^/]+)\/events$/, (ctx, _req, res, url, [id = ''], caller) => eventsPage(ctx, res, url, id, caller)],
  ['POST', /^\/sessions\/([^/]+)\/share$/, (ctx, _req, res, _url, [id = ''], caller) => share(ctx, res, id, true, caller)],
  ['DELETE', /^\/sessions\/([^/]+)\/share$/, (ctx, _req, res, _url, [id = ''], caller) => share(ctx, res, id, false, caller)],
  [
    'GET',
    /^\/sessions\/([^/]+)\/resources\/([^/]+)\/(.+)$/,
    (ctx, _req, res, _url, [id = '', bucket = '', key = ''], caller) => resource(ctx, res, id, bucket, key, caller),
  ],
];

/** True when some REST route has this path (whatever the method): the request is the REST API's, not a 404. */
export function isRestPath(apiPath: string): boolean {
  return ROUTES.some(([, pattern]) => pattern.test(apiPath));
}

/** Serves one REST request of an authenticated caller (`apiPath` decoded): 405 for a known path with another method. */
export function handleRestApi(ctx: SimContext, req: IncomingMessage, res: ServerResponse, url: URL, apiPath: string, caller: Caller): void {
  const candidates = ROUTES.filter(([, pattern]) => pattern.test(apiPath));
  const route = candidates.find(([method]) => method === req.method);
  if (!route) return sendDetail(res, 405, 'Method Not Allowed', { allow: candidates.map(([m]) => m).join(', ') });
  const params = (route[1].exec(apiPath) ?? []).slice(1);
  Promise.resolve(route[2](ctx, req, res, url, params, caller)).catch((error: unknown) => {
    if (!res.headersSent) sendDetail(res, 500, `internal error: ${error instanceof Error ? error.message : String(error)}`);
    else res.destroy();
  });
}
