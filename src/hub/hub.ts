/**
 * In-process fan-out: one feed and one upstream loop per session and
 * include_details value (single flight), idle grace before a loop stops, and
 * a bounded LRU of idle and finished feeds so late subscribers cost nothing.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { createFeed, type Feed, type FeedLimits } from './feed.ts';
import { runPoller, type PollerState } from '../upstream/poller.ts';
import type { BackoffPolicy } from '../upstream/backoff.ts';
import type { FailureOutcome, UpstreamClient } from '../upstream/client.ts';
import type { UpstreamEvent } from '../upstream/types.ts';
import { SessionNotFoundError, TooManyRequestsError, UpstreamAuthError, UpstreamUnavailableError } from '../errors.ts';
import type { Stats } from '../metrics.ts';

export interface HubOptions {
  client: UpstreamClient;
  log: Logger;
  stats: Stats;
  waitSeconds: number;
  pageSize: number;
  backoff: BackoffPolicy;
  /** How long a loop keeps running with no subscriber (ms). */
  graceMs: number;
  /** How long a lasting 401/403/404 is retried before the stream ends (ms). */
  giveUpMs: number;
  feedLimits: FeedLimits;
  /** Feeds with a loop or a subscriber at once; one more is refused with 429. */
  maxActiveSessions: number;
  /** Idle and finished feeds kept for replay. */
  maxCachedSessions: number;
  /** Bytes of idle and finished feeds kept for replay. */
  maxCachedBytes: number;
  /** How long an idle, unfinished feed stays cached (ms). */
  idleFeedTtlMs: number;
}

/** One feed with its loop and its users (subscribers and waiting long-polls). */
export interface FeedEntry {
  readonly key: string;
  readonly feed: Feed;
  ready: Promise<void>;
  users: number;
  abort: AbortController | null;
  loopState: PollerState;
  graceTimer: NodeJS.Timeout | null;
}

/** Seconds a caller is told to wait after the upstream was unreachable. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

/**
 * How long a transient first-contact failure (5xx, reset, timeout, bad body)
 * answers later subscribers of the same feed from memory (ms); a 429 is
 * remembered for its Retry-After. Each new subscriber would otherwise make
 * its own status call: a hundred clients retrying an open once a second
 * would be a hundred upstream calls a second to a session that is failing.
 */
export const FIRST_CONTACT_FAILURE_MEMORY_MS = 1000;
/** Feeds whose last first-contact failure is remembered at once; past it the oldest is forgotten (it only costs one more call). */
const FAILED_FIRST_CONTACTS_TRACKED = 10_000;

function feedKey(sessionId: string, includeDetails: boolean): string {
  return `${includeDetails ? 'd' : 'n'}:${sessionId}`;
}

/** Maps a failed first contact with the upstream to the error the HTTP layer answers. */
function firstContactError(sessionId: string, outcome: FailureOutcome): Error {
  switch (outcome.kind) {
    case 'not-found':
      return new SessionNotFoundError(sessionId);
    case 'unauthorized':
      return new UpstreamAuthError(outcome.status);
    case 'rate-limited':
      return new UpstreamUnavailableError('rate limited', Math.max(1, Math.ceil((outcome.retryAfterMs ?? UNAVAILABLE_RETRY_AFTER_SECONDS * 1000) / 1000)));
    case 'aborted':
      return new UpstreamUnavailableError('shutting down', UNAVAILABLE_RETRY_AFTER_SECONDS);
    default:
      return new UpstreamUnavailableError(outcome.reason, UNAVAILABLE_RETRY_AFTER_SECONDS);
  }
}

/** Owns every feed and loop of the process. */
export class Hub {
  private readonly opts: HubOptions;
  private readonly active = new Map<string, FeedEntry>();
  private readonly cache: LRUCache<string, FeedEntry>;
  private readonly failedFirstContacts = new LRUCache<string, Error>({ max: FAILED_FIRST_CONTACTS_TRACKED, ttl: FIRST_CONTACT_FAILURE_MEMORY_MS });
  private closed = false;

  constructor(opts: HubOptions) {
    this.opts = opts;
    this.cache = new LRUCache<string, FeedEntry>({
      max: opts.maxCachedSessions,
      maxSize: opts.maxCachedBytes,
      sizeCalculation: (e) => Math.max(1, e.feed.bytes),
    });
  }

  /**
   * Returns the ready feed entry for a session, starting its loop if none
   * runs (single flight: concurrent callers share one start). The caller
   * holds a use of the entry and must `release` it.
   */
  async acquire(sessionId: string, includeDetails: boolean): Promise<FeedEntry> {
    if (this.closed) throw new UpstreamUnavailableError('shutting down', UNAVAILABLE_RETRY_AFTER_SECONDS);
    const key = feedKey(sessionId, includeDetails);
    let entry = this.active.get(key);
    if (!entry) {
      const failed = this.failedFirstContacts.get(key);
      if (failed) throw failed;
      if (this.active.size >= this.opts.maxActiveSessions) {
        throw new TooManyRequestsError(`too many sessions held at once (limit ${this.opts.maxActiveSessions})`, 5);
      }
      const cached = this.cache.get(key);
      if (cached) this.cache.delete(key);
      entry = cached ?? {
        key,
        feed: createFeed(sessionId, includeDetails, 0, this.opts.feedLimits),
        ready: Promise.resolve(),
        users: 0,
        abort: null,
        loopState: 'stopped',
        graceTimer: null,
      };
      this.active.set(key, entry);
      // A finished feed is served from memory; anything else is checked and its loop (re)started.
      if (!entry.feed.ended) entry.ready = this.start(entry);
    }
    entry.users++;
    if (entry.graceTimer) {
      clearTimeout(entry.graceTimer);
      entry.graceTimer = null;
    }
    try {
      await entry.ready;
    } catch (err) {
      this.release(entry);
      throw err;
    }
    return entry;
  }

  /** Gives back a use taken by `acquire`; the loop stops after the grace period without users. */
  release(entry: FeedEntry): void {
    entry.users--;
    if (entry.users > 0 || this.active.get(entry.key) !== entry) return;
    if (entry.feed.ended || entry.abort === null) {
      this.retire(entry);
      return;
    }
    entry.graceTimer = setTimeout(() => {
      entry.graceTimer = null;
      if (entry.users === 0) this.retire(entry);
    }, this.opts.graceMs);
    entry.graceTimer.unref();
  }

  /**
   * Fetches held-out history [from, to) straight from upstream (wait 0), for
   * a subscriber that resumes before the buffer's oldest event.
   */
  async fetchHistory(entry: FeedEntry, from: number, to: number, signal: AbortSignal): Promise<UpstreamEvent[] | FailureOutcome> {
    const { feed } = entry;
    const limit = Math.min(this.opts.pageSize, to - from);
    const r = await this.opts.client.changes(feed.sessionId, { fromIndex: from, limit, includeDetails: feed.includeDetails, waitSeconds: 0 }, signal);
    if (r.kind === 'events') return r.changes.new_events.slice(0, to - from);
    if (r.kind === 'no-change') return [];
    return r;
  }

  /** Counts for /metrics. */
  sessionsByState(): Record<string, number> {
    const out: Record<string, number> = { live: 0, finished: 0, idle: 0 };
    for (const e of this.active.values()) out[e.feed.ended ? 'finished' : 'live']!++;
    for (const e of this.cache.values()) out[e.feed.ended ? 'finished' : 'idle']!++;
    return out;
  }

  /** Loop counts by state for /metrics. */
  loopsByState(): Record<string, number> {
    const out: Record<string, number> = { polling: 0, backoff: 0, draining: 0 };
    for (const e of this.active.values()) if (e.loopState !== 'stopped') out[e.loopState]!++;
    return out;
  }

  /** Number of feeds with a loop or a user. */
  get activeCount(): number {
    return this.active.size;
  }

  /** Stops every loop and timer (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const e of this.active.values()) {
      if (e.graceTimer) clearTimeout(e.graceTimer);
      e.abort?.abort();
    }
    this.active.clear();
    this.cache.clear();
  }

  // First contact (status, authoritative), then the loop in the background.
  private async start(entry: FeedEntry): Promise<void> {
    const { feed } = entry;
    const abort = new AbortController();
    const status = await this.opts.client.status(feed.sessionId, abort.signal);
    if (status.kind !== 'state') {
      // An unknown session is the caller's mistake (404 to them); a refused key or an unreachable upstream is the operator's.
      const level = status.kind === 'not-found' || status.kind === 'aborted' ? 'debug' : status.kind === 'unauthorized' ? 'error' : 'warn';
      this.opts.log[level]({ session: feed.sessionId, endpoint: 'status', outcome: status.kind, reason: 'reason' in status ? status.reason : undefined, httpStatus: 'status' in status ? status.status : undefined }, 'upstream fault on first contact; subscriber refused');
      if (this.active.get(entry.key) === entry) this.active.delete(entry.key);
      const error = firstContactError(feed.sessionId, status);
      // Not 404/401/403: those are answers about the session or the key, and may change the next moment.
      if (status.kind === 'transient' || status.kind === 'bad-body' || status.kind === 'rate-limited') {
        // A Retry-After is honoured up to the cap the loop's own backoff puts on it.
        const retryAfterMs = status.kind === 'rate-limited' ? Math.min(status.retryAfterMs ?? 0, 10 * this.opts.backoff.maxMs) : 0;
        const ttl = Math.max(FIRST_CONTACT_FAILURE_MEMORY_MS, retryAfterMs);
        this.failedFirstContacts.set(entry.key, error, { ttl });
      }
      throw error;
    }
    if (this.closed || this.active.get(entry.key) !== entry) throw new UpstreamUnavailableError('shutting down', UNAVAILABLE_RETRY_AFTER_SECONDS);
    feed.applyState(status.state);
    feed.synced = false;
    entry.abort = abort;
    const log = this.opts.log;
    log.info({ session: feed.sessionId, details: feed.includeDetails, from: feed.nextIndex, finished: status.state.finished_at !== null }, 'loop started');
    const received = feed.nextIndex;
    const startedAt = performance.now();
    void runPoller(
      {
        client: this.opts.client,
        feed,
        waitSeconds: this.opts.waitSeconds,
        pageSize: this.opts.pageSize,
        backoff: this.opts.backoff,
        giveUpMs: this.opts.giveUpMs,
        startFinished: status.state.finished_at !== null,
        log,
        onEvents: (n) => {
          this.opts.stats.eventsReceived += n;
        },
        onState: (s) => {
          entry.loopState = s;
        },
      },
      abort.signal,
    ).then(() => {
      const reason = feed.ended ? 'session over' : this.closed ? 'shutdown' : 'no subscribers';
      log.info({ session: feed.sessionId, details: feed.includeDetails, reason, events: feed.nextIndex - received, durationMs: Math.round(performance.now() - startedAt) }, 'loop stopped');
      if (entry.abort === abort) entry.abort = null;
      if (entry.users === 0 && this.active.get(entry.key) === entry) this.retire(entry);
    });
  }

  // Stops the loop and moves the feed to the LRU (finished feeds forever, others for a while).
  private retire(entry: FeedEntry): void {
    if (entry.graceTimer) clearTimeout(entry.graceTimer);
    entry.graceTimer = null;
    entry.abort?.abort();
    entry.abort = null;
    entry.loopState = 'stopped';
    if (this.active.get(entry.key) === entry) this.active.delete(entry.key);
    if (this.closed) return;
    // Only a session the upstream says is over is kept as finished; a stream
    // ended by a lasting upstream refusal must be asked for again next time.
    if (entry.feed.ended) {
      if (entry.feed.state.finished_at !== null) this.cache.set(entry.key, entry);
    } else if (entry.feed.nextIndex > 0) this.cache.set(entry.key, entry, { ttl: this.opts.idleFeedTtlMs });
  }
}
