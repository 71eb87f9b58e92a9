/**
 * Counters kept as plain numbers on the hot path (no prom-client call per
 * delivered frame) and exposed through a prom-client registry on collect.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Hot-path counters; incremented with `+=`, read by the registry. */
export class Stats {
  streamsOpened = 0;
  streamsClosed: Record<string, number> = {};
  eventsReceived = 0;
  oversizedEvents = 0;
  framesDelivered = 0;
  upstreamRequests = 0;
  replayFromBuffer = 0;
  replayFromUpstream = 0;
  slowDropped = 0;
  rejected: Record<string, number> = {};
  /** Cluster mode: session leases this instance holds now (a gauge kept as a number). */
  leasesHeld = 0;
  /** Cluster mode: leases taken after the previous leader's lease expired instead of being released. */
  leaseTakeovers = 0;
  /** Cluster mode: failed Redis commands, by operation. */
  redisErrors: Record<string, number> = {};
  /** Cluster mode: events a reader found missing from the shared log and filled in, by source (log, upstream). */
  gapFills: Record<string, number> = {};
  /** AUTH=upstream: key checks made with the upstream, by outcome (accepted, 401, 403, 404, unavailable). */
  upstreamAuthChecks: Record<string, number> = {};
  /** AUTH=upstream: key checks answered from the verdict cache or joined to one in flight (no upstream call). */
  upstreamAuthCacheHits = 0;
  /** AUTH=upstream: streams opened while the upstream could not judge the key, held until it did (src/http/stream-hold.ts). */
  streamsHeld = 0;
  /** AUTH=upstream: requests and open streams refused on the upstream's verdict, by status (401, 403, 404). */
  upstreamAuthRefusals: Record<string, number> = {};
  /** Requests forwarded to the upstream, by `${method}|${status class}`. */
  forwarded: Record<string, number> = {};
  /** Forwarded requests that got no (whole) answer, by reason (connect, timeout, reset, body, aborted, too_large). */
  forwardErrors: Record<string, number> = {};
}

/** What the registry reads from the running hub on each scrape. */
export interface HubGauges {
  openStreams(): number;
  sessionsByState(): Record<string, number>;
  loopsByState(): Record<string, number>;
  replayBytes(): number;
}

/** Every metric name pollcast exports (kept in one list so docs can be checked against it). */
export const METRIC_NAMES = [
  'pollcast_open_streams',
  'pollcast_streams_opened_total',
  'pollcast_streams_closed_total',
  'pollcast_streams_held_total',
  'pollcast_sessions',
  'pollcast_loops',
  'pollcast_replay_buffer_bytes',
  'pollcast_upstream_requests_total',
  'pollcast_upstream_request_duration_seconds',
  'pollcast_events_received_total',
  'pollcast_oversized_events_total',
  'pollcast_frames_delivered_total',
  'pollcast_replays_total',
  'pollcast_slow_subscribers_dropped_total',
  'pollcast_requests_rejected_total',
  'pollcast_frames_per_upstream_request',
  'pollcast_redis_leases_held',
  'pollcast_redis_lease_takeovers_total',
  'pollcast_redis_errors_total',
  'pollcast_redis_command_duration_seconds',
  'pollcast_redis_gap_fills_total',
  'pollcast_upstream_auth_checks_total',
  'pollcast_upstream_auth_cache_hits_total',
  'pollcast_upstream_auth_refusals_total',
  'pollcast_forwarded_requests_total',
  'pollcast_forward_errors_total',
] as const;

/** The registry behind `/metrics`, plus the hooks the upstream client calls. */
export interface Metrics {
  registry: Registry;
  stats: Stats;
  observeUpstream(endpoint: string, outcome: string, seconds: number): void;
  /** Round-trip time of one Redis command (cluster mode; blocking reads excluded). */
  observeRedis(op: string, seconds: number): void;
}

function setCounter(counter: Counter<string>, value: number, labels?: Record<string, string>): void {
  // Counters are mirrored from Stats at scrape time; remove-then-inc sets the exact value.
  if (labels) {
    counter.remove(labels);
    counter.inc(labels, value);
  } else {
    counter.reset();
    counter.inc(value);
  }
}

/** Creates the registry (one per server, so tests can run many servers in one process). */
export function createMetrics(gauges: () => HubGauges | undefined, withProcessMetrics = true): Metrics {
  const registry = new Registry();
  const stats = new Stats();
  if (withProcessMetrics) {
    // The event-loop delay histogram keeps prom-client's 10 ms sampling: it records each sample's whole
    // interval, so a coarser one would shift every `nodejs_eventloop_lag_*` value (and the alerts built on
    // them) by the difference. Its timer costs an idle instance ~0.8 % of a core (bench/RESULTS.md, issue 21).
    // prom-client's names already start `process_` or `nodejs_`: `pollcast_process_cpu_user_seconds_total`,
    // `pollcast_nodejs_eventloop_lag_seconds` (until 6 Dec 2026 the prefix was `pollcast_process_`, which wrote
    // `pollcast_process_process_…` and `pollcast_process_nodejs_…`).
    collectDefaultMetrics({ register: registry, prefix: 'pollcast_' });
  }
  const upstreamTotal = new Counter({ name: 'pollcast_upstream_requests_total', help: 'Upstream requests by endpoint and outcome.', labelNames: ['endpoint', 'outcome'], registers: [registry] });
  const upstreamSeconds = new Histogram({
    name: 'pollcast_upstream_request_duration_seconds',
    help: 'Upstream request latency (long-polls included, so the wait shows up here).',
    labelNames: ['endpoint', 'outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 40],
    registers: [registry],
  });
  new Gauge({ name: 'pollcast_open_streams', help: 'SSE streams open now.', registers: [registry], collect() { this.set(gauges()?.openStreams() ?? 0); } });
  new Counter({ name: 'pollcast_streams_opened_total', help: 'SSE streams opened.', registers: [registry], collect() { setCounter(this, stats.streamsOpened); } });
  new Counter({
    name: 'pollcast_streams_held_total', help: 'AUTH=upstream: streams opened while the upstream could not judge the caller\'s key, held (reading nothing) until it did.', registers: [registry],
    collect() { setCounter(this, stats.streamsHeld); },
  });
  new Counter({
    name: 'pollcast_streams_closed_total', help: 'SSE streams closed, by reason (end, client, slow, shutdown, upstream, error, expired, revoked).', labelNames: ['reason'], registers: [registry],
    collect() { for (const [reason, n] of Object.entries(stats.streamsClosed)) setCounter(this, n, { reason }); },
  });
  new Gauge({
    name: 'pollcast_sessions', help: 'Sessions held, by state (live, finished, idle).', labelNames: ['state'], registers: [registry],
    collect() { this.reset(); for (const [state, n] of Object.entries(gauges()?.sessionsByState() ?? {})) this.set({ state }, n); },
  });
  new Gauge({
    name: 'pollcast_loops', help: 'Upstream loops, by state (polling, backoff, draining).', labelNames: ['state'], registers: [registry],
    collect() { this.reset(); for (const [state, n] of Object.entries(gauges()?.loopsByState() ?? {})) this.set({ state }, n); },
  });
  new Gauge({
    name: 'pollcast_replay_buffer_bytes', help: 'Bytes of event frames kept for replay by the sessions with a loop or a reader (unfinished ones share REPLAY_MAX_BYTES; each keeps at most SESSION_MAX_BYTES).', registers: [registry],
    collect() { this.set(gauges()?.replayBytes() ?? 0); },
  });
  new Counter({ name: 'pollcast_events_received_total', help: 'Session events received from upstream.', registers: [registry], collect() { setCounter(this, stats.eventsReceived); } });
  new Counter({ name: 'pollcast_oversized_events_total', help: 'Upstream events larger than UPSTREAM_MAX_BODY_BYTES, relayed as placeholders without their data.', registers: [registry], collect() { setCounter(this, stats.oversizedEvents); } });
  new Counter({ name: 'pollcast_frames_delivered_total', help: 'Event frames written to subscribers (one per event per subscriber).', registers: [registry], collect() { setCounter(this, stats.framesDelivered); } });
  new Counter({
    name: 'pollcast_replays_total', help: 'Replays on subscribe, by source: buffer (no upstream call) or upstream (fetched again).', labelNames: ['source'], registers: [registry],
    collect() { setCounter(this, stats.replayFromBuffer, { source: 'buffer' }); setCounter(this, stats.replayFromUpstream, { source: 'upstream' }); },
  });
  new Counter({ name: 'pollcast_slow_subscribers_dropped_total', help: 'Subscribers disconnected because they fell behind.', registers: [registry], collect() { setCounter(this, stats.slowDropped); } });
  new Counter({
    name: 'pollcast_requests_rejected_total', help: 'Requests refused before streaming, by reason.', labelNames: ['reason'], registers: [registry],
    collect() { for (const [reason, n] of Object.entries(stats.rejected)) setCounter(this, n, { reason }); },
  });
  new Gauge({
    name: 'pollcast_frames_per_upstream_request', help: 'Event frames delivered per upstream request: the fan-out saving.', registers: [registry],
    collect() { this.set(stats.upstreamRequests === 0 ? 0 : stats.framesDelivered / stats.upstreamRequests); },
  });
  new Gauge({ name: 'pollcast_redis_leases_held', help: 'Cluster mode: session leases (upstream loops) this instance holds.', registers: [registry], collect() { this.set(stats.leasesHeld); } });
  new Counter({ name: 'pollcast_redis_lease_takeovers_total', help: 'Cluster mode: leases taken after the previous leader vanished (its lease expired instead of being released).', registers: [registry], collect() { setCounter(this, stats.leaseTakeovers); } });
  new Counter({
    name: 'pollcast_redis_errors_total', help: 'Cluster mode: failed Redis commands, by operation.', labelNames: ['op'], registers: [registry],
    collect() { for (const [op, n] of Object.entries(stats.redisErrors)) setCounter(this, n, { op }); },
  });
  const redisSeconds = new Histogram({
    name: 'pollcast_redis_command_duration_seconds',
    help: 'Cluster mode: Redis round-trip time by operation (blocking reads excluded).',
    labelNames: ['op'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  new Counter({
    name: 'pollcast_redis_gap_fills_total', help: 'Cluster mode: events missing from the shared log that a reader filled in, by source (log, upstream).', labelNames: ['source'], registers: [registry],
    collect() { for (const [source, n] of Object.entries(stats.gapFills)) setCounter(this, n, { source }); },
  });
  new Counter({
    name: 'pollcast_upstream_auth_checks_total', help: 'AUTH=upstream: checks of a caller key made with the upstream, by outcome (accepted, 401, 403, 404, unavailable).', labelNames: ['outcome'], registers: [registry],
    collect() { for (const [outcome, n] of Object.entries(stats.upstreamAuthChecks)) setCounter(this, n, { outcome }); },
  });
  new Counter({ name: 'pollcast_upstream_auth_cache_hits_total', help: 'AUTH=upstream: key checks answered from the verdict cache or shared with one in flight (no upstream call).', registers: [registry], collect() { setCounter(this, stats.upstreamAuthCacheHits); } });
  new Counter({
    name: 'pollcast_upstream_auth_refusals_total', help: 'AUTH=upstream: requests and open streams refused on the upstream\'s verdict, by status (401, 403, 404).', labelNames: ['status'], registers: [registry],
    collect() { for (const [status, n] of Object.entries(stats.upstreamAuthRefusals)) setCounter(this, n, { status }); },
  });
  new Counter({
    name: 'pollcast_forwarded_requests_total', help: 'Requests forwarded to the upstream (pass-through), by method and the upstream\'s status class.', labelNames: ['method', 'status'], registers: [registry],
    collect() {
      for (const [key, n] of Object.entries(stats.forwarded)) {
        const [method = '', status = ''] = key.split('|');
        setCounter(this, n, { method, status });
      }
    },
  });
  new Counter({
    name: 'pollcast_forward_errors_total', help: 'Forwarded requests without a whole answer, by reason (connect, timeout, reset, body, aborted, too_large).', labelNames: ['reason'], registers: [registry],
    collect() { for (const [reason, n] of Object.entries(stats.forwardErrors)) setCounter(this, n, { reason }); },
  });
  return {
    registry,
    stats,
    observeRedis(op, seconds) {
      redisSeconds.observe({ op }, seconds);
    },
    observeUpstream(endpoint, outcome, seconds) {
      stats.upstreamRequests++;
      upstreamTotal.inc({ endpoint, outcome });
      upstreamSeconds.observe({ endpoint, outcome }, seconds);
    },
  };
}
