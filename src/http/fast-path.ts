/**
 * The hot path: `GET /sessions/{id}/events` is served straight from Node's
 * request, without hono's Request, Context and Response objects, which would
 * otherwise stay reachable for as long as the stream is open (a close
 * listener of the adapter keeps them) and cost every idle stream memory.
 * Every other request goes to hono unchanged. The checks are the same
 * functions hono's middleware and route use: URL length, rate, CORS headers,
 * validation, auth, limits, and the same JSON refusals.
 */
import type { ServerResponse } from 'node:http';
import { decodedSegment, singleQuery } from './validate.ts';
import type { Http2ServerResponse } from 'node:http2';
import type { AppDeps } from './deps.ts';
import type { Credentials } from './auth.ts';
import { corsHeaders, corsOriginList } from './cors.ts';
import { errorAnswer, rejectionReason } from './errors.ts';
import { checkRate, checkUrl } from './limits.ts';
import { rawHeader, splitTarget, type NodeRequest } from './raw-request.ts';
import { checkStreamAsk, startSessionStream } from './stream-open.ts';
import { isHttp1 } from '../hub/writer.ts';
import { redactUrl } from '../log.ts';

/** A Node request listener, for HTTP/1.1 and the HTTP/2 compatibility API alike. */
export type NodeListener = (req: NodeRequest, res: ServerResponse | Http2ServerResponse) => void;

/** `/sessions/{id}/events` with one non-empty path segment as the id. */
const SESSION_STREAM_PATH = /^\/sessions\/([^/]+)\/events$/;

/** Wraps hono's listener: single-session stream opens are served here, everything else by `fallback`. */
export function withStreamFastPath(deps: AppDeps, fallback: NodeListener): NodeListener {
  const origins = corsOriginList(deps.config.corsOrigins);
  return (req, res) => {
    const target = req.url;
    if (req.method !== 'GET' || target === undefined || !target.startsWith('/sessions/')) return fallback(req, res);
    const { path, query } = splitTarget(target);
    const m = SESSION_STREAM_PATH.exec(path);
    if (m === null) return fallback(req, res);
    void serve(deps, req, res, target, m[1]!, query, corsHeaders(origins, rawHeader(req, 'origin')));
  };
}

/** The same credentials `credentialsOf` reads from a hono request. */
function credentialsFrom(req: NodeRequest, query: URLSearchParams, keyHeader: string | undefined): Credentials {
  const credentials: Credentials = { authorization: rawHeader(req, 'authorization'), accessToken: query.get('access_token') ?? undefined, cookie: rawHeader(req, 'cookie') };
  if (keyHeader !== undefined) credentials.keyHeader = rawHeader(req, keyHeader.toLowerCase());
  return credentials;
}

async function serve(deps: AppDeps, req: NodeRequest, res: ServerResponse | Http2ServerResponse, target: string, segment: string, queryString: string, cors: Record<string, string>): Promise<void> {
  const startedMs = performance.now();
  let status = 200;
  try {
    // While stopping, no connection is kept for reuse: a reconnect must reach another instance.
    if (deps.isShuttingDown() && isHttp1(res)) res.shouldKeepAlive = false;
    checkUrl(deps.limits, target);
    const clientKey = deps.limits.clientKeyFrom((name) => rawHeader(req, name), req.socket?.remoteAddress);
    checkRate(deps.limits, clientKey);
    const query = new URLSearchParams(queryString);
    const checked = await checkStreamAsk(
      {
        rawId: decodedSegment(segment),
        lastEventId: rawHeader(req, 'last-event-id'),
        lastEventIdQuery: singleQuery('last_event_id', query.getAll('last_event_id')),
        fromIndex: singleQuery('from_index', query.getAll('from_index')),
        includeEvents: singleQuery('include_events', query.getAll('include_events')),
        includeDetails: singleQuery('include_details', query.getAll('include_details')),
        credentials: credentialsFrom(req, query, deps.config.upstreamAuthHeader),
      },
      deps,
    );
    if (checked === null) {
      req.socket?.destroy();
      return;
    }
    await startSessionStream(checked, clientKey, cors, res, deps);
  } catch (err) {
    deps.stats.rejected[rejectionReason(err)] = (deps.stats.rejected[rejectionReason(err)] ?? 0) + 1;
    const answer = errorAnswer(err, deps.log);
    status = answer.status;
    const body = JSON.stringify(answer.body);
    if (!res.headersSent) {
      const headers = { ...cors, ...answer.headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
      if (isHttp1(res)) res.writeHead(answer.status, headers).end(body);
      else res.writeHead(answer.status, headers).end(body);
    }
  }
  if (deps.log.isLevelEnabled('debug')) deps.log.debug({ method: 'GET', url: redactUrl(target), status, ms: Math.round(performance.now() - startedMs) }, 'request');
}
