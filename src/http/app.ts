/** The hono app: routes, CORS, request logs and the one error handler. */
import { Hono } from 'hono';
import { parseSessionId } from './validate.ts';
import { cors } from 'hono/cors';
import { registerReadyzRoute } from './readyz-route.ts';
import type { AppDeps, AppEnv } from './deps.ts';
import { errorResponse, rejectionReason } from './errors.ts';
import { CORS_EXPOSE_HEADERS, corsOriginList, isListedOrigin } from './cors.ts';
import { registerEventsRoute } from './events-route.ts';
import { registerListRoute } from './list-route.ts';
import { registerMultiEventsRoute } from './multi-route.ts';
import { registerDropInRoutes } from './dropin-routes.ts';
import { registerDurableRoute } from './durable-route.ts';
import { registerDemoRoutes } from './demo-routes.ts';
import { registerForwardRoute } from './forward-route.ts';
import { registerLimits } from './limits.ts';
import { redactUrl } from '../log.ts';
import { isHttp1 } from '../hub/writer.ts';

/** `allowed` (a header list) with each well-formed header name of `asked` (a preflight's) it lacks, 100 names at most. */
function withAskedHeaders(allowed: string, asked: string | undefined): string {
  const names = allowed.split(',').map((h) => h.trim());
  const have = new Set(names.map((h) => h.toLowerCase()));
  for (const name of (asked ?? '').split(',').map((h) => h.trim())) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/.test(name) || have.has(name.toLowerCase())) continue;
    have.add(name.toLowerCase());
    names.push(name);
  }
  return names.slice(0, 100).join(',');
}

/** Builds the app. */
export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const origins = corsOriginList(deps.config.corsOrigins);
  if (origins !== undefined) {
    // AUTH=upstream: a fetch-based client may send its key in UPSTREAM_AUTH_HEADER, as to the upstream.
    const keyHeader = deps.config.auth === 'upstream' && deps.config.upstreamAuthHeader ? [deps.config.upstreamAuthHeader] : [];
    // POST and Content-Type: `POST /events` takes its session list as JSON.
    // With the pass-through, a browser may also steer sessions (DELETE) and create them with an Idempotency-Key.
    const forwarding = deps.forward !== undefined;
    const allowMethods = forwarding ? ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] : ['GET', 'HEAD', 'POST', 'OPTIONS'];
    const allowHeaders = ['Authorization', 'Last-Event-ID', 'Cache-Control', 'Content-Type', 'If-None-Match', ...(forwarding ? ['Idempotency-Key'] : []), ...keyHeader];
    // Credentials for listed origins only: hono's `credentials` option would send them to any origin.
    app.use('*', async (c, next) => {
      await next();
      if (isListedOrigin(origins, c.req.header('origin'))) c.res.headers.set('access-control-allow-credentials', 'true');
      // The API's own clients send headers pollcast cannot list (the official SDK's X-HCompany-Client-Name,
      // -Version, …, on forwarded calls and drop-ins alike): a preflight's asked-for headers are allowed beside
      // pollcast's own, as the upstream would judge them. The origin list stays the boundary.
      const allowed = c.res.headers.get('access-control-allow-headers');
      if (c.req.method === 'OPTIONS' && allowed !== null && c.res.headers.has('access-control-allow-origin')) {
        c.res.headers.set('access-control-allow-headers', withAskedHeaders(allowed, c.req.header('access-control-request-headers')));
        if (!/access-control-request-headers/i.test(c.res.headers.get('vary') ?? '')) c.res.headers.append('vary', 'Access-Control-Request-Headers');
      }
    });
    app.use('*', cors({ origin: origins === '*' ? '*' : origins, allowMethods, allowHeaders, exposeHeaders: CORS_EXPOSE_HEADERS, maxAge: 600 }));
  }
  app.use('*', async (c, next) => {
    // While stopping, no connection is kept for reuse: a reconnecting client
    // must open a new one, which reaches another instance (or the restarted one).
    // (HTTP/2 connections are closed with GOAWAY by the server instead.)
    const outgoing = c.env?.outgoing;
    if (deps.isShuttingDown() && outgoing && isHttp1(outgoing)) outgoing.shouldKeepAlive = false;
    const started = performance.now();
    await next();
    // Answered while stopping (a long-poll that began before): its connection is not kept either.
    if (deps.isShuttingDown() && outgoing && isHttp1(outgoing)) outgoing.shouldKeepAlive = false;
    // No cache keeps a refusal of pollcast's own (a 404 or 405 is cacheable by default, RFC 9110 section 15.1); the
    // errors mapping says so already, the not-found and method answers, /healthz and /readyz here. An answer a route
    // wrote itself (a forwarded upstream error) is left as it came.
    if (c.res.status >= 400 && !outgoing?.headersSent && !c.res.headers.has('cache-control')) c.res.headers.set('cache-control', 'no-store');
    if (c.req.path === '/healthz' || c.req.path === '/readyz' || c.req.path === '/metrics') return;
    // A route that wrote its answer itself (a forwarded call, a stream) left hono's response at its default 200.
    const status = outgoing?.headersSent ? outgoing.statusCode : c.res.status;
    deps.log.debug({ method: c.req.method, url: redactUrl(c.req.url.replace(/^https?:\/\/[^/]+/, '')), status, ms: Math.round(performance.now() - started) }, 'request');
  });
  // After CORS (a browser can read the refusal) and the request log (refusals are logged).
  registerLimits(app, deps.limits, deps.upstreamPath);
  app.get('/healthz', (c) => (deps.isShuttingDown() ? c.json({ status: 'shutting down' }, 503) : c.json({ status: 'ok', streams: deps.limits.streams.total, sessions: deps.hub.activeCount })));
  registerReadyzRoute(app, deps);
  app.get('/metrics', async (c) => c.text(await deps.metrics.registry.metrics(), 200, { 'content-type': deps.metrics.registry.contentType }));
  registerListRoute(app, deps);
  registerEventsRoute(app, deps);
  registerMultiEventsRoute(app, deps);
  registerDropInRoutes(app, deps);
  registerDurableRoute(app, deps);
  registerDemoRoutes(app, deps.config.upstreamUrl === undefined);
  // Last: only what no route above answers is forwarded.
  registerForwardRoute(app, deps);
  app.notFound((c) => {
    // An empty id leaves the session routes unmatched: it is a bad id (400), not a missing route.
    if (/(?:^|\/)sessions\/\/(?:events|changes|status)$/.test(c.req.path)) parseSessionId('');
    // The path as the log has it: a client may have put a token in it (`;access_token=…`).
    return c.json({ error: `no route for ${c.req.method} ${redactUrl(c.req.path).slice(0, 200)}`, code: 'not_found' }, 404);
  });
  app.onError((err, c) => {
    // pollcast_requests_rejected_total{reason}: every refusal passes here (or the stream fast path), labelled by its stable code.
    const reason = rejectionReason(err);
    deps.stats.rejected[reason] = (deps.stats.rejected[reason] ?? 0) + 1;
    return errorResponse(c, err, deps.log);
  });
  return app;
}
