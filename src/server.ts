/** Wires config → upstream client → hub → streams → hono app → HTTP server, and stops it all gracefully. */
import { getRequestListener } from '@hono/node-server';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { passthroughOn, type Config } from './config.ts';
import { Hub } from './hub/hub.ts';
import { Streams } from './hub/streams.ts';
import { ListHub } from './hub/list-hub.ts';
import { releasedConnections } from './hub/parser-release.ts';
import { localListSource, type ListSource } from './hub/list-source.ts';
import { createApp } from './http/app.ts';
import type { AppDeps } from './http/deps.ts';
import { withStreamFastPath, type NodeListener } from './http/fast-path.ts';
import { adapterErrorResponse, installClientErrorHandler, installConnectRefusal, installContinueCheck, installExpectationRefusal, withHostRequired } from './http/client-error.ts';
import { MAX_EVENTS_BODY_BYTES } from './http/multi-request.ts';
import { serveH2c, type H2c } from './http/h2c.ts';
import { InFlight } from './http/in-flight.ts';
import { CatchUpGate } from './http/catch-up-gate.ts';
import { createLimits, sparedClientKey } from './http/limits.ts';
import type { Authorizer } from './http/auth.ts';
import { createAuthorizer, createVerifier, subscriberTokenCheck } from './http/authorizer.ts';
import { redactUrl } from './log.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { READY_PROBE_WAIT_MS, ReadinessProbe } from './readiness.ts';
import { DEFAULT_BACKOFF } from './upstream/backoff.ts';
import { createUpstreamClient, type UpstreamClient } from './upstream/client.ts';
import { createForwarder } from './upstream/forwarder.ts';
import { createMemoryTransport, type LoopSettings } from './transport/memory.ts';
import type { Transport } from './hub/transport.ts';
import type { Simulator } from './simulator/index.ts';

/** Changes kept per session list for viewers that reconnect; one further behind gets a fresh snapshot. */
const SESSION_LIST_LOG_ENTRIES = 1000;
/** Part of SHUTDOWN_TIMEOUT_SECONDS kept for what follows the streams' last flush (ms). */
const SHUTDOWN_RESERVE_MS = 2500;
/** How long drop-in long-polls may still run once the streams are flushed (ms). */
const LONG_POLL_CUT_MS = 1500;
/** Part of SHUTDOWN_TIMEOUT_SECONDS kept, past the forwarded calls let finish, for what follows (ms). */
const FORWARD_CUT_RESERVE_MS = 1000;

/**
 * The path of UPSTREAM_URL (`/api/v2`), under which the drop-ins are served
 * too; '' when it has none, or when it holds characters a route pattern
 * would read as parameters (then only the root drop-ins are served).
 */
function mountablePath(upstreamUrl: string, log: Logger): string {
  const path = new URL(upstreamUrl).pathname.replace(/\/+$/, '');
  if (path === '' || /^(\/[A-Za-z0-9._~-]+)+$/.test(path)) return path;
  log.warn({ path }, 'UPSTREAM_URL path has characters a route cannot hold; drop-ins are served at the root only');
  return '';
}

/** The warning that UPSTREAM_URL answers 404 for routes is repeated at most this often (ms). */
export const ROUTE_WARN_INTERVAL_MS = 60_000;

/** REDIS_URL as it may be logged: scheme, host and port only (the URL often carries the password). */
function redactedRedisUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}`;
}

/** A running pollcast. */
export interface PollcastServer {
  /** Base URL it listens on, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly port: number;
  readonly hub: Hub;
  /** The session lists watched now. */
  readonly lists: ListHub;
  readonly streams: Streams;
  readonly metrics: Metrics;
  /** The built-in simulator when no UPSTREAM_URL was given. */
  readonly simulator: Simulator | undefined;
  /** The cleartext HTTP/2 side (on by default), or undefined with H2C=false. */
  readonly h2c: H2c | undefined;
  /** TCP connections open now, HTTP/1.1 and HTTP/2 alike. */
  connections(): Promise<number>;
  /** Graceful stop: refuse new work, end streams (clients reconnect elsewhere), stop loops (idempotent). */
  close(): Promise<void>;
}

export interface StartOptions {
  log: Logger;
  /** Collect process metrics (off in tests that start many servers). */
  processMetrics?: boolean;
}

/** Starts pollcast with `config`; resolves once it listens. */
export async function startPollcast(config: Config, options: StartOptions): Promise<PollcastServer> {
  const { log } = options;
  let simulator: Simulator | undefined;
  let upstreamUrl = config.upstreamUrl;
  if (upstreamUrl === undefined) {
    // Loaded only in demo mode (and the Redis client only in cluster mode): neither weighs on a plain deployment's memory.
    const { createSimulator } = await import('./simulator/index.ts');
    simulator = await createSimulator({ demo: true, api: 'real', port: 0, host: '127.0.0.1' });
    upstreamUrl = simulator.url;
    log.info({ upstream: upstreamUrl }, 'DEMO MODE: UPSTREAM_URL is not set, so the built-in simulated sessions API is used (sessions demo-1, demo-2, …)');
  }
  let hub: Hub | undefined;
  let streams: Streams | undefined;
  const metrics = createMetrics(() => (hub && streams ? { openStreams: () => limits.streams.total, sessionsByState: () => hub!.sessionsByState(), loopsByState: () => hub!.loopsByState(), replayBytes: () => hub!.replayBytes() } : undefined), options.processMetrics ?? true);
  let routeNotFound: (path: string) => void = () => {};
  const client: UpstreamClient = createUpstreamClient({
    baseUrl: upstreamUrl,
    apiKey: config.upstreamApiKey,
    authHeader: config.upstreamAuthHeader,
    timeoutMarginMs: config.upstreamTimeoutMarginSeconds * 1000,
    maxBodyBytes: config.upstreamMaxBodyBytes,
    observe: metrics.observeUpstream,
    onRouteNotFound: (path) => routeNotFound(path),
  });
  const stats = metrics.stats;
  const loopSettings: LoopSettings = {
    client,
    log,
    waitSeconds: config.upstreamWaitSeconds,
    pageSize: config.upstreamPageSize,
    maxBodyBytes: config.upstreamMaxBodyBytes,
    backoff: DEFAULT_BACKOFF,
    giveUpMs: config.upstreamGiveUpSeconds * 1000,
    statusFreshMs: config.statusFreshSeconds * 1000,
    onEvents: (n) => (stats.eventsReceived += n),
    onOversized: () => stats.oversizedEvents++,
  };
  const redisTransport = config.redisUrl
    ? (await import('./transport/redis.ts')).createRedisTransport({
        ...loopSettings,
        url: config.redisUrl,
        keyPrefix: config.redisKeyPrefix,
        leaseMs: config.redisLeaseSeconds * 1000,
        maxEntries: config.redisLogMaxEntries,
        retentionMs: config.redisRetentionSeconds * 1000,
        stats,
        observeRedis: metrics.observeRedis,
        loopOnCallerCredentials: config.auth === 'upstream' && config.upstreamApiKey === undefined,
      })
    : undefined;
  const transport: Transport = redisTransport ?? createMemoryTransport(loopSettings);
  // Session lists: polled once per cluster through Redis in cluster mode, else here.
  const listSource: ListSource = redisTransport?.listSource(config.sessionListPollSeconds * 1000) ?? localListSource;
  if (config.redisUrl) log.info({ redis: redactedRedisUrl(config.redisUrl), leaseSeconds: config.redisLeaseSeconds }, 'cluster mode: sessions are shared through Redis');
  hub = new Hub({
    transport,
    log,
    stats,
    graceMs: config.idleGraceSeconds * 1000,
    feedLimits: { maxEvents: config.sessionMaxEvents, maxBytes: config.sessionMaxBytes },
    replayMaxBytes: config.replayMaxBytes,
    maxActiveSessions: config.maxSessions,
    maxCachedSessions: config.cacheMaxSessions,
    maxCachedBytes: config.cacheMaxBytes,
    idleFeedTtlMs: config.idleCacheSeconds * 1000,
    // Without the operator's key, a loop runs on a caller's key the upstream accepted (AUTH=upstream).
    loopOnCallerCredentials: config.auth === 'upstream' && config.upstreamApiKey === undefined,
    historyPageSize: config.upstreamPageSize,
  });
  const lists = new ListHub({
    client,
    live: hub,
    log,
    pollMs: config.sessionListPollSeconds * 1000,
    maxSessions: config.sessionListMaxSessions,
    graceMs: config.sessionListGraceSeconds * 1000,
    maxLogEntries: SESSION_LIST_LOG_ENTRIES,
    maxLists: config.sessionListMaxLists,
    maxListsPerHolder: config.sessionListMaxListsPerIp,
    sparedHolder: sparedClientKey(config, config.loopbackListsLimited),
    source: listSource,
  });
  streams = new Streams({ hub, log, stats: metrics.stats, retryMs: config.sseRetryMs, heartbeatMs: config.heartbeatSeconds * 1000, maxQueueBytes: config.subscriberMaxQueueBytes });
  // The built-in demo stays open; a real upstream needs a token or a key unless AUTH=none (config enforces it).
  const verifier = createVerifier(config, log);
  const authorize: Authorizer = createAuthorizer(config, { client, stats: metrics.stats }, verifier);
  let shuttingDown = false;
  const shutdown = new AbortController();
  const limits = createLimits(config);
  const upstreamPath = mountablePath(upstreamUrl, log);
  // The probe's own client: its calls are not the sessions' (kept out of pollcast_upstream_*).
  const probeClient = createUpstreamClient({ baseUrl: upstreamUrl, apiKey: config.upstreamApiKey, authHeader: config.upstreamAuthHeader, onRouteNotFound: (path) => routeNotFound(path) });
  const readiness = new ReadinessProbe({ client: probeClient, hasKey: config.upstreamApiKey !== undefined, log, isShuttingDown: () => shuttingDown, ...(transport.storeState ? { redisState: () => transport.storeState!() } : {}) });
  let routeWarnedAt = -Infinity;
  routeNotFound = (path) => {
    readiness.routeNotFound();
    // Loud, but once a minute: every session of a misconfigured deployment hits it.
    if (performance.now() - routeWarnedAt < ROUTE_WARN_INTERVAL_MS) return;
    routeWarnedAt = performance.now();
    log.warn({ upstream: redactUrl(upstreamUrl!), path }, 'the sessions API answered 404 for a route, not a session: UPSTREAM_URL probably lacks the API\'s path (e.g. https://api.example.com/api/v2); every session looks "not found" until it is fixed');
  };
  // Said at start (not ready, and why) rather than first noticed by a subscriber; a hanging API delays the start
  // by at most READY_PROBE_WAIT_MS (the probe goes on in the background).
  await Promise.race([readiness.probe(), new Promise<void>((resolve) => setTimeout(resolve, READY_PROBE_WAIT_MS).unref())]);
  if (config.upstreamUrl && !config.upstreamApiKey) {
    // With AUTH=upstream that is the intended setup: loops run on keys the upstream accepted from callers.
    if (config.auth === 'upstream') log.info('no UPSTREAM_API_KEY: each loop runs on a key the upstream accepted from its readers (AUTH=upstream)');
    else log.warn('UPSTREAM_URL is set but UPSTREAM_API_KEY is not: pollcast calls the sessions API without a key of its own');
  }
  // The pass-through has its own pool, with no credential: UPSTREAM_API_KEY never rides on a forwarded request.
  const forward = upstreamPath !== '' && passthroughOn(config) ? createForwarder(new URL(upstreamUrl).origin) : undefined;
  const isSubscriberToken = subscriberTokenCheck(verifier);
  const forwardsInFlight = new InFlight();
  const clusterMayLag = transport.mayLag ? () => transport.mayLag!() : undefined;
  const deps: AppDeps = { config, hub, lists, streams, stats: metrics.stats, metrics, log, authorize, limits, isShuttingDown: () => shuttingDown, shutdownSignal: shutdown.signal, upstreamPath, forward, forwardsInFlight, catchUps: new CatchUpGate(), clusterMayLag, isSubscriberToken, readiness };
  const app = createApp(deps);
  // Real Response objects: hono may clone the marker response of a hand-written stream, and only
  // the non-cached path of the adapter honours RESPONSE_ALREADY_SENT on a clone.
  // Refusals made before any route still count in pollcast_requests_rejected_total, under their code.
  const countRefusal = (code: string) => (stats.rejected[code] = (stats.rejected[code] ?? 0) + 1);
  const honoListener = getRequestListener(app.fetch, { hostname: config.host, overrideGlobalObjects: false, errorHandler: adapterErrorResponse(countRefusal) }) as NodeListener;
  // Single-session stream opens skip hono's per-request objects (memory per idle stream); the rest is hono's.
  const listener = withStreamFastPath(deps, honoListener);
  const http = createServer({ maxHeaderSize: config.maxHeaderBytes, requireHostHeader: false }, withHostRequired(listener as (req: IncomingMessage, res: ServerResponse) => void, countRefusal));
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.port, config.host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  installClientErrorHandler(http, countRefusal);
  installConnectRefusal(http);
  installExpectationRefusal(http, countRefusal);
  // The body the request's route takes: a multi-session POST /events, or a forwarded one.
  installContinueCheck(http, (path) => (path === '/events' ? MAX_EVENTS_BODY_BYTES : config.passthroughMaxBodyBytes));
  // SSE streams stay open for hours; only idle keep-alive sockets time out.
  http.requestTimeout = 0;
  http.headersTimeout = 20_000;
  http.keepAliveTimeout = 5_000;
  // Installed before the first connection can arrive (we are still in the listen callback's continuation).
  const h2c = config.h2c ? serveH2c(http, { listener, maxHeaderBytes: config.maxHeaderBytes, maxQueueBytes: config.subscriberMaxQueueBytes, firstBytesTimeoutMs: http.headersTimeout, log, countRefusal }) : undefined;
  const addr = http.address() as AddressInfo;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${addr.port}`;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      const stopBegan = performance.now();
      shuttingDown = true;
      shutdown.abort();
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      // HTTP/2 clients open their next stream (a reconnect) on a new connection, i.e. elsewhere.
      h2c?.goAway();
      hub!.close();
      // Its cluster leases are let go before Redis is closed below.
      const listsStopped = lists.close();
      // Ended streams keep their sockets until their last bytes are out (a slow reader may still be
      // taking them), within the shutdown budget; only then are idle connections closed.
      await streams!.close(Math.max(0, config.shutdownTimeoutSeconds * 1000 - SHUTDOWN_RESERVE_MS));
      http.closeIdleConnections();
      h2c?.closeIdle();
      // What still holds a connection gets cut once the rest has had a moment to finish (drop-in long-polls
      // are answered at once; a forwarded call under way is let finish within the budget, less a reserve
      // for what follows: its caller could not tell whether a cut write took effect).
      let cut = false;
      const cutAll = () => {
        if (cut) return;
        cut = true;
        http.closeAllConnections();
        for (const socket of releasedConnections(http)) socket.destroy();
        h2c?.destroyAll();
      };
      const forwardsBy = stopBegan + config.shutdownTimeoutSeconds * 1000 - FORWARD_CUT_RESERVE_MS;
      let forwardsTimer: NodeJS.Timeout | undefined;
      const deadline = setTimeout(() => {
        if (forwardsInFlight.size === 0) return cutAll();
        forwardsTimer = setTimeout(cutAll, Math.max(0, forwardsBy - performance.now()));
        void forwardsInFlight.idle().then(() => setImmediate(cutAll));
      }, Math.min(LONG_POLL_CUT_MS, config.shutdownTimeoutSeconds * 250));
      await closed;
      clearTimeout(deadline);
      clearTimeout(forwardsTimer);
      await listsStopped;
      await transport.close();
      await client.close();
      await forward?.close();
      await probeClient.close();
      await simulator?.close();
    })();
    return closing;
  };
  const connections = () => new Promise<number>((resolve) => http.getConnections((err, n) => resolve(err ? 0 : n)));
  return { url, port: addr.port, hub, lists, streams, metrics, simulator, h2c, connections, close };
}
