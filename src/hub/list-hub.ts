/**
 * Every session list watched in the process: one upstream list poll per
 * distinct (credential scope, filter) however many viewers, every poll
 * interval while anyone watches, stopped after a short grace when nobody
 * does. Live statuses of sessions whose loop runs come from the hub, read
 * only: a list never starts a loop.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { ListFeed, type ListFilter, type LiveStatus } from './list-feed.ts';
import type { FailureOutcome, UpstreamClient } from '../upstream/client.ts';
import type { UpstreamCredential } from '../upstream/credential.ts';
import { readSessionList, type ListOutcome } from '../upstream/list-client.ts';
import type { ListSource } from './list-source.ts';
import { BadRequestError, ForbiddenError, TooManyRequestsError, UnauthorizedError, UpstreamAuthError, UpstreamUnavailableError } from '../errors.ts';

/** Where a list reads the live status of sessions whose loop runs (the Hub). */
export interface LiveStatusSource {
  peekLive(sessionId: string): LiveStatus | undefined;
  onStatusChange(listener: (sessionId: string) => void): () => void;
  /** The session's status changed upstream by what a list shows: its loops ask `/status` now. */
  refreshLive(sessionId: string): void;
}

export interface ListHubOptions {
  client: UpstreamClient;
  live: LiveStatusSource;
  log: Logger;
  /** Time between the starts of two polls of one list (ms). */
  pollMs: number;
  /** Sessions read per poll at most (pages of 100). */
  maxSessions: number;
  /** How long a list keeps polling with no viewer (ms). */
  graceMs: number;
  /** Changes kept per list for resuming viewers. */
  maxLogEntries: number;
  /** Where the listings come from: polled here (localListSource), or once per cluster. */
  source: ListSource;
  /** Distinct lists polled at once: each costs an upstream call per interval, so one more is refused (429). */
  maxLists: number;
  /** Lists one holder (a client key) may have started and still keep polled; 0: no such limit. */
  maxListsPerHolder: number;
  /** A holder with no per-holder limit (the host's own clients at the default), if any. */
  sparedHolder?: string | undefined;
}

/** How long the upstream's refusal of a list's first poll answers further viewers of that list (ms): the contract's bound on a kept refusal. */
export const LIST_REFUSAL_KEPT_MS = 5000;
/** Refusals kept at most (a flood of refused keys cannot grow it further). */
const LIST_REFUSALS_MAX = 10_000;
/** Sessions remembered as refreshed within the poll interval at most. */
const LIST_REFRESHED_MAX = 10_000;

/** Seconds a viewer refused for the list limit is told to wait. */
export const LIST_LIMIT_RETRY_AFTER_SECONDS = 10;
/** Longest wait at close for the lists' supplies to stop (ms): a lease let go, or left to run out if Redis is slow. */
export const LIST_STOP_WAIT_MS = 2000;
/** Longest pause between polls of a failing list (ms): a recovering upstream shows within it. */
export const LIST_MAX_BACKOFF_MS = 30_000;

/** One list with its viewers and its poll. */
export interface ListEntry {
  readonly feed: ListFeed;
  readonly credential: UpstreamCredential | undefined;
  users: number;
  /** Viewers by holder (client key). */
  readonly viewers: Map<string, number>;
  /** The holder this list counts against: who started it, or, once they left, one who still views it. */
  chargedTo: string;
  graceTimer: NodeJS.Timeout | null;
  abort: AbortController;
  failures: number;
  /** Resolves once its supply stopped (in cluster mode: its lease let go). */
  stopped: Promise<void>;
}

/** The error a viewer gets when the upstream refused the list's first poll. */
function refusal(outcome: FailureOutcome, credential: UpstreamCredential | undefined): Error | null {
  // The viewer's filters refused (a 400 or 422 naming them): the viewer's to fix, named as the upstream named them
  // (list-client.ts), not a stream that retries what will never be answered.
  if (outcome.kind === 'transient' && outcome.filterRefused === true) return new BadRequestError(outcome.reason.replace(/^list: /, ''));
  if (outcome.kind !== 'unauthorized') return null;
  // The caller's own key refused: theirs to fix (401/403 as the upstream said); the operator's key: a 502.
  if (credential === undefined) return new UpstreamAuthError(outcome.status);
  return outcome.status === 403 ? new ForbiddenError('the upstream refused this key the session list') : new UnauthorizedError('the upstream refused this key');
}

function describe(outcome: FailureOutcome): string {
  switch (outcome.kind) {
    case 'transient': return outcome.reason.startsWith('list') ? outcome.reason : `list: ${outcome.reason}`;
    case 'rate-limited': return 'list: upstream rate limit (429)';
    case 'unauthorized': return `list: upstream refused the key (${outcome.status})`;
    case 'not-found': return 'list: upstream has no session list (404)';
    case 'bad-body': return outcome.reason;
    case 'too-large': return `list: page larger than ${outcome.maxBytes} bytes`;
    case 'aborted': return 'list: aborted';
  }
}

/** Owns every list poll of the process. */
export class ListHub {
  private readonly opts: ListHubOptions;
  private readonly lists = new Map<string, ListEntry>();
  private readonly stopListening: () => void;
  private closed = false;
  /** Sessions whose loops a listing asked to refresh their status lately (see `take`). */
  private readonly refreshed: LRUCache<string, true>;
  /** Lists whose first poll the upstream refused (by list key), answered without a new poll for a while. */
  // Purged on time: lru-cache lets an expired entry go only when something touches it, and a refused key is seldom
  // asked again (a memory audit found 23 refusals held past their 5 s on a quiet server).
  private readonly refusals = new LRUCache<string, Error>({ max: LIST_REFUSALS_MAX, ttl: LIST_REFUSAL_KEPT_MS, ttlAutopurge: true });
  /** Upstream list calls made (each page one), for tests and metrics. */
  calls = 0;

  /** Refusals held, for tests: each lets go LIST_REFUSAL_KEPT_MS after it was kept. */
  get keptRefusals(): number {
    return this.refusals.size;
  }

  constructor(opts: ListHubOptions) {
    this.opts = opts;
    this.refreshed = new LRUCache<string, true>({ max: LIST_REFRESHED_MAX, ttl: Math.max(1, opts.pollMs) });
    this.stopListening = opts.live.onStatusChange((id) => {
      // Called from inside a session loop's update: a list's trouble must never reach that loop.
      try {
        for (const entry of this.lists.values()) if (entry.feed.has(id)) entry.feed.applyLive(id, opts.live.peekLive(id));
      } catch (err) {
        opts.log.error({ err, session: id }, 'session list could not take a live status');
      }
    });
  }

  /** Lists watched now. */
  get size(): number {
    return this.lists.size;
  }

  /**
   * The list of `filter` as `credential` sees it (undefined: the operator's
   * key), its poll started if none runs; resolves once its first poll
   * answered. Throws when the upstream refused the key. The caller holds a
   * use and must `release` it with the same `holder` (the viewer's client
   * key): a list counts against the holder that made it polled.
   */
  async acquire(filter: ListFilter, credential: UpstreamCredential | undefined, holder: string): Promise<ListEntry> {
    if (this.closed) throw new UpstreamUnavailableError('shutting down', LIST_LIMIT_RETRY_AFTER_SECONDS);
    // The digest stands for the key: the key itself is never a map key, nor logged.
    const key = `${credential === undefined ? 'operator' : credential.digest}|${filter.key}`;
    let entry = this.lists.get(key);
    const kept = entry === undefined ? this.refusals.get(key) : undefined;
    if (kept) throw kept;
    if (!entry) {
      if (this.lists.size >= this.opts.maxLists) throw new TooManyRequestsError(`too many session lists watched at once (limit ${this.opts.maxLists}); watch one that is already watched, or later`, LIST_LIMIT_RETRY_AFTER_SECONDS, 'session_lists');
      const perHolder = this.opts.maxListsPerHolder;
      if (perHolder > 0 && holder !== this.opts.sparedHolder && this.chargedTo(holder) >= perHolder) {
        throw new TooManyRequestsError(`too many distinct session lists from this client (limit ${perHolder}); watch one that is already watched, or later`, LIST_LIMIT_RETRY_AFTER_SECONDS, 'session_lists_per_ip');
      }
      entry = { feed: new ListFeed(key, filter, this.opts.maxLogEntries), credential, users: 0, viewers: new Map(), chargedTo: holder, graceTimer: null, abort: new AbortController(), failures: 0, stopped: Promise.resolve() };
      this.charge(holder, 1);
      this.lists.set(key, entry);
      this.start(entry);
    }
    entry.users++;
    entry.viewers.set(holder, (entry.viewers.get(holder) ?? 0) + 1);
    // A list its charged client no longer views (it left, the list kept in its grace) counts against this viewer now.
    if (!entry.viewers.has(entry.chargedTo)) this.moveCharge(entry, holder);
    if (entry.graceTimer) {
      clearTimeout(entry.graceTimer);
      entry.graceTimer = null;
    }
    await entry.feed.firstPoll;
    const refused = entry.feed.listed ? null : this.firstRefusal.get(entry);
    if (refused) {
      this.release(entry, holder);
      throw refused;
    }
    return entry;
  }

  /** Gives back `holder`'s use; the poll stops after the grace period without viewers. */
  release(entry: ListEntry, holder: string): void {
    entry.users--;
    const left = (entry.viewers.get(holder) ?? 0) - 1;
    if (left > 0) entry.viewers.set(holder, left);
    else entry.viewers.delete(holder);
    // Its starter gone, a list others still view counts against one of them (a dropped list counts against nobody).
    const next = entry.viewers.keys().next();
    if (left <= 0 && entry.chargedTo === holder && !next.done && this.lists.get(entry.feed.key) === entry) this.moveCharge(entry, next.value);
    if (entry.users > 0 || this.lists.get(entry.feed.key) !== entry) return;
    entry.graceTimer = setTimeout(() => {
      entry.graceTimer = null;
      if (entry.users === 0) this.drop(entry);
    }, this.opts.graceMs);
    entry.graceTimer.unref();
  }

  /**
   * Stops every poll (idempotent); resolves once they stopped, within `LIST_STOP_WAIT_MS`: in cluster mode each
   * lets its lease go first, so another instance polls at once rather than when the lease runs out.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopListening();
    this.refusals.clear();
    const stopping = [...this.lists.values()].map((entry) => {
      this.drop(entry);
      return entry.stopped;
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(stopping), new Promise<void>((resolve) => (timer = setTimeout(resolve, LIST_STOP_WAIT_MS)))]);
    clearTimeout(timer);
  }

  private readonly firstRefusal = new WeakMap<ListEntry, Error>();
  /** Lists polled now by the holder they count against. */
  private readonly charges = new Map<string, number>();

  /** Lists counted against one holder now (polled, with or without viewers). */
  chargedTo(holder: string): number {
    return this.charges.get(holder) ?? 0;
  }

  private charge(holder: string, by: number): void {
    const n = this.chargedTo(holder) + by;
    if (n <= 0) this.charges.delete(holder);
    else this.charges.set(holder, n);
  }

  /** A polled list counts against `holder` from now on. */
  private moveCharge(entry: ListEntry, holder: string): void {
    this.charge(entry.chargedTo, -1);
    entry.chargedTo = holder;
    this.charge(holder, 1);
  }

  private drop(entry: ListEntry): void {
    if (entry.graceTimer) clearTimeout(entry.graceTimer);
    entry.graceTimer = null;
    entry.abort.abort();
    if (this.lists.get(entry.feed.key) !== entry) return;
    this.lists.delete(entry.feed.key);
    this.charge(entry.chargedTo, -1);
  }

  // Starts supplying the list: polled here, or in cluster mode wherever its lease is.
  private start(entry: ListEntry): void {
    const { feed } = entry;
    const signal = entry.abort.signal;
    // Stopped (shutdown) before the first answer: whoever waits for it must not wait forever.
    signal.addEventListener('abort', () => feed.listed || feed.failed('list: stopped'), { once: true });
    entry.stopped = this.opts.source.run(
      {
        key: feed.key,
        poll: async (pollSignal) => {
          const outcome = await readSessionList(this.opts.client, feed.filter.params, this.opts.maxSessions, entry.credential, pollSignal).catch((err: unknown) => {
            this.opts.log.error({ err, list: feed.filter.logKey }, 'session list poll failed unexpectedly');
            return { kind: 'transient', reason: 'list: unexpected error' } as const;
          });
          this.calls += outcome.kind === 'listing' ? outcome.listing.calls : 1;
          return outcome;
        },
        nextDelayMs: (outcome) => {
          if (outcome.kind === 'listing') return this.opts.pollMs;
          const retryAfterMs = outcome.kind === 'rate-limited' ? (outcome.retryAfterMs ?? 0) : 0;
          return Math.max(retryAfterMs, Math.min(this.opts.pollMs * 2 ** Math.min(entry.failures - 1, 6), Math.max(this.opts.pollMs, LIST_MAX_BACKOFF_MS)));
        },
        onOutcome: (outcome) => this.take(entry, outcome),
      },
      signal,
    ).catch((err: unknown) => this.opts.log.error({ err, list: feed.filter.logKey }, 'session list supply stopped unexpectedly'));
  }

  // One outcome of the list, wherever it was polled.
  private take(entry: ListEntry, outcome: ListOutcome): void {
    const { feed } = entry;
    if (entry.abort.signal.aborted || outcome.kind === 'aborted') return;
    if (outcome.kind === 'listing') {
      entry.failures = 0;
      try {
        for (const id of feed.applyListing(outcome.listing, (id) => this.opts.live.peekLive(id))) {
          // Once per session and poll interval, however many lists show the change.
          if (this.refreshed.has(id)) continue;
          this.refreshed.set(id, true);
          this.opts.live.refreshLive(id);
        }
      } catch (err) {
        this.opts.log.error({ err, list: feed.filter.logKey }, 'session list could not take a listing');
      }
      return;
    }
    entry.failures++;
    const refused = feed.listed ? null : refusal(outcome, entry.credential);
    if (refused) {
      // Nobody may read a list the upstream refused: its viewers are turned away and the poll stops.
      this.firstRefusal.set(entry, refused);
      this.refusals.set(feed.key, refused);
      this.opts.log.warn({ list: feed.filter.logKey, scope: entry.credential ? 'caller key' : 'operator key', outcome: outcome.kind }, 'upstream refused the session list');
      this.drop(entry);
      feed.failed(describe(outcome));
      return;
    }
    if (outcome.kind === 'unauthorized' && entry.credential !== undefined) {
      // A caller's key the upstream no longer takes: its viewers may not go on reading what it listed.
      this.opts.log.info({ list: feed.filter.logKey, status: outcome.status }, 'upstream refused a caller key its session list was read with; viewers ended');
      this.drop(entry);
      feed.refused('access_revoked');
      return;
    }
    this.opts.log.warn({ list: feed.filter.logKey, outcome: outcome.kind }, 'session list poll failed; retrying');
    feed.failed(describe(outcome));
  }
}
