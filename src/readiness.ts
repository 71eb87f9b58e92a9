/**
 * Readiness (`GET /readyz`), apart from liveness (`/healthz`): can this
 * instance serve sessions now? It asks the sessions API about a session that
 * does not exist (a 404 naming no session means the API answers, with this
 * key, on the right path), at most once per `READY_PROBE_MAX_AGE_MS`, and
 * reports the cluster store's state when there is one. Not ready: the API is
 * unreachable, refuses the key, or has no such route (UPSTREAM_URL without
 * the API's path), or the process is stopping. Redis being away is reported
 * but does not make an instance unready: sessions are served around it.
 */
import type { Logger } from 'pino';
import type { UpstreamClient } from './upstream/client.ts';

/** A probe answer younger than this is reused (ms): a readiness poller costs the API at most one call per interval. */
export const READY_PROBE_MAX_AGE_MS = 5000;
/** Longest a `/readyz` waits for a fresh probe (ms); past it the last known state is answered. */
export const READY_PROBE_WAIT_MS = 3000;
/** The session id the probe asks about (valid, and never a real one). */
export const READY_PROBE_SESSION = 'pollcast-readiness-probe';

/** The sessions API's state as the last probe saw it. */
export type UpstreamState = 'unknown' | 'ok' | 'unreachable' | 'key refused' | 'route not found';

/** What `/readyz` answers. */
export interface Readiness {
  ready: boolean;
  upstream: { state: UpstreamState; detail?: string };
  redis?: { state: string };
}

export interface ReadinessOptions {
  client: UpstreamClient;
  /** Whether pollcast has a key of its own (UPSTREAM_API_KEY): without one a 401/403 proves the API answers, nothing more. */
  hasKey: boolean;
  log: Logger;
  /** The cluster store's state ('ok', 'unreachable', ...), or undefined in single-process mode. */
  redisState?: () => string;
  isShuttingDown: () => boolean;
}

/** Keeps the last probe and answers readiness. */
export class ReadinessProbe {
  private readonly opts: ReadinessOptions;
  private state: UpstreamState = 'unknown';
  private detail: string | undefined;
  private probedAt = -Infinity;
  private probing: Promise<void> | null = null;
  /** Set by the client when a 404 named no session (a missing route), and cleared by the next probe. */
  private routeMissing = false;

  constructor(opts: ReadinessOptions) {
    this.opts = opts;
  }

  /** The client saw a 404 for a route (not a session). */
  routeNotFound(): void {
    this.routeMissing = true;
  }

  /** Probes the API once; logs a warning when it is not usable (used at start). */
  async probe(): Promise<UpstreamState> {
    this.probing ??= this.run().finally(() => (this.probing = null));
    await this.probing;
    return this.state;
  }

  /** The readiness answer, with a fresh probe when the last is old (bounded wait). */
  async check(): Promise<Readiness> {
    if (performance.now() - this.probedAt > READY_PROBE_MAX_AGE_MS) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.probe(), new Promise<void>((resolve) => (timer = setTimeout(resolve, READY_PROBE_WAIT_MS)))]);
      clearTimeout(timer);
    }
    const redis = this.opts.redisState?.();
    return {
      ready: !this.opts.isShuttingDown() && this.state === 'ok',
      upstream: { state: this.state, ...(this.detail ? { detail: this.detail } : {}) },
      ...(redis !== undefined ? { redis: { state: redis } } : {}),
    };
  }

  private async run(): Promise<void> {
    this.routeMissing = false;
    const r = await this.opts.client.status(READY_PROBE_SESSION, AbortSignal.timeout(READY_PROBE_WAIT_MS * 3));
    const before = this.state;
    this.probedAt = performance.now();
    this.detail = undefined;
    if (r.kind === 'not-found' && this.routeMissing) this.state = 'route not found';
    else if (r.kind === 'not-found' || r.kind === 'state') this.state = 'ok';
    else if (r.kind === 'unauthorized' && !this.opts.hasKey) {
      this.state = 'ok';
      this.detail = `answers ${r.status} without a key (no UPSTREAM_API_KEY to check)`;
    } else if (r.kind === 'unauthorized') this.state = 'key refused';
    else if (r.kind === 'aborted') return;
    else {
      this.state = 'unreachable';
      this.detail = 'reason' in r ? r.reason : r.kind;
    }
    if (this.state === before || (this.state === 'ok' && before === 'unknown')) return;
    const { log } = this.opts;
    if (this.state === 'ok') log.info('sessions API reachable again: ready');
    else if (this.state === 'unreachable') log.warn({ reason: this.detail }, 'sessions API unreachable: not ready; streams show upstream_error until it answers');
    else if (this.state === 'key refused') log.error('sessions API refuses pollcast\'s key (401/403): not ready; check UPSTREAM_API_KEY');
    else log.warn('sessions API answers 404 for its own routes: not ready; UPSTREAM_URL probably lacks the API\'s path (e.g. https://api.example.com/api/v2)');
  }
}
