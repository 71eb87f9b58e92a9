/**
 * The upstream's verdicts on (caller credential, session) pairs (AUTH=upstream):
 * one `GET …/sessions/{id}/status` with that credential per pair, shared by
 * concurrent askers, kept for the cache lifetime (a refusal for at most
 * REFUSAL_MAX_MS, so a key granted a moment later is not shut out long; a
 * failed check for UNAVAILABLE_KEPT_MS, or the upstream's Retry-After). Kept
 * under the credential's digest: no credential value is held here.
 */
import { LRUCache } from 'lru-cache';
import type { UpstreamClient } from '../upstream/client.ts';
import type { UpstreamCredential } from '../upstream/credential.ts';
import type { Stats } from '../metrics.ts';

/** Pairs whose verdict is kept at once; past it the least recently used is forgotten (it costs one more check). */
export const VERDICT_CACHE_MAX_ENTRIES = 100_000;
/** Longest a refusal is kept (ms): a key given access upstream gets in within this. */
export const REFUSAL_MAX_MS = 5000;
/** Seconds a caller is told to wait when the upstream could not give a verdict and said nothing itself. */
export const CHECK_RETRY_AFTER_SECONDS = 5;
/**
 * How long a failed check is kept (ms), or the upstream's Retry-After when it
 * asked for longer (at most UNAVAILABLE_MAX_MS): checks of one pair during an
 * outage (held streams asking again, callers retrying) cost at most one
 * upstream call per this interval.
 */
export const UNAVAILABLE_KEPT_MS = 1000;
export const UNAVAILABLE_MAX_MS = 60_000;
/** Expired verdicts are swept this often (ms) while any is held. */
export const VERDICT_PURGE_INTERVAL_MS = 10_000;

/** What the upstream said of a pair, until `expiresAtMs`. */
export type Verdict = { kind: 'accepted'; expiresAtMs: number } | { kind: 'refused'; status: 401 | 403 | 404; expiresAtMs: number };

/** No verdict because the upstream failed (429, 5xx, unreachable): never a refusal, kept only briefly. */
export interface Unavailable {
  kind: 'unavailable';
  reason: string;
  retryAfterSeconds: number;
  retryAfterFromUpstream: boolean;
  expiresAtMs: number;
}

/** A verdict, or none. */
export type CheckResult = Verdict | Unavailable;

export interface VerdictCacheOptions {
  client: UpstreamClient;
  /** How long an acceptance is kept (ms), AUTH_UPSTREAM_CACHE_SECONDS. */
  ttlMs: number;
  stats: Stats;
  /** VERDICT_PURGE_INTERVAL_MS unless given (tests). */
  purgeIntervalMs?: number;
}

/** Asks the upstream about pairs, once per pair per lifetime. */
export class VerdictCache {
  private readonly opts: VerdictCacheOptions;
  private readonly verdicts = new LRUCache<string, CheckResult>({ max: VERDICT_CACHE_MAX_ENTRIES });
  private readonly inFlight = new Map<string, Promise<CheckResult>>();
  private purger: NodeJS.Timeout | null = null;

  constructor(opts: VerdictCacheOptions) {
    this.opts = opts;
  }

  /** The verdict on `credential` reading `sessionId`: from memory while it lasts, else from one shared upstream call. */
  check(credential: UpstreamCredential, sessionId: string): Promise<CheckResult> {
    const key = `${credential.digest}:${sessionId}`;
    const { stats } = this.opts;
    const held = this.verdicts.get(key);
    // Judged by its own expiry (not the LRU's clock): a renewal at expiry must never be answered the same expiry again.
    if (held !== undefined && held.expiresAtMs > Date.now()) {
      stats.upstreamAuthCacheHits++;
      return Promise.resolve(held);
    }
    let pending = this.inFlight.get(key);
    if (pending !== undefined) {
      stats.upstreamAuthCacheHits++;
      return pending;
    }
    pending = this.ask(key, credential, sessionId).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, pending);
    return pending;
  }

  // A sweep every purge interval while the cache holds anything; none once it is empty (nothing keeps the process up).
  private purgeLater(): void {
    if (this.purger !== null) return;
    this.purger = setInterval(() => {
      this.verdicts.purgeStale();
      if (this.verdicts.size > 0) return;
      clearInterval(this.purger!);
      this.purger = null;
    }, this.opts.purgeIntervalMs ?? VERDICT_PURGE_INTERVAL_MS);
    this.purger.unref();
  }

  /** Pairs held now (tests, metrics). */
  get size(): number {
    return this.verdicts.size;
  }

  private async ask(key: string, credential: UpstreamCredential, sessionId: string): Promise<CheckResult> {
    const { client, ttlMs, stats } = this.opts;
    const r = await client.status(sessionId, undefined, credential);
    const now = Date.now();
    let result: CheckResult;
    if (r.kind === 'state') result = { kind: 'accepted', expiresAtMs: now + ttlMs };
    else if (r.kind === 'unauthorized') result = { kind: 'refused', status: r.status === 403 ? 403 : 401, expiresAtMs: now + Math.min(ttlMs, REFUSAL_MAX_MS) };
    else if (r.kind === 'not-found') result = { kind: 'refused', status: 404, expiresAtMs: now + Math.min(ttlMs, REFUSAL_MAX_MS) };
    else {
      const retryAfterFromUpstream = r.kind === 'rate-limited' && r.retryAfterMs !== undefined;
      const retryAfterSeconds = retryAfterFromUpstream ? Math.max(1, Math.ceil(r.retryAfterMs! / 1000)) : CHECK_RETRY_AFTER_SECONDS;
      const keptMs = retryAfterFromUpstream ? Math.min(UNAVAILABLE_MAX_MS, Math.max(UNAVAILABLE_KEPT_MS, r.retryAfterMs!)) : UNAVAILABLE_KEPT_MS;
      result = { kind: 'unavailable', reason: 'reason' in r ? r.reason : r.kind, retryAfterSeconds, retryAfterFromUpstream, expiresAtMs: now + keptMs };
    }
    const outcome = result.kind === 'refused' ? String(result.status) : result.kind;
    stats.upstreamAuthChecks[outcome] = (stats.upstreamAuthChecks[outcome] ?? 0) + 1;
    // Each verdict lives its own lifetime in the cache too, and expired ones are dropped now and then (also on an
    // instance gone idle): a flood of one-off keys (each refused, kept 5 s) no longer stays in memory until the LRU
    // bound pushes it out.
    this.verdicts.set(key, result, { ttl: Math.max(1, result.expiresAtMs - now) });
    this.purgeLater();
    return result;
  }
}
