/**
 * In-process fan-out: one feed per session and include_events value (single
 * flight), supplied by the transport (a loop here, or in cluster mode
 * wherever the session's lease is), idle grace before a loop stops, and a
 * bounded LRU of idle and finished feeds so late subscribers cost nothing.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { createFeed, type Feed, type FeedLimits } from './feed.ts';
import { eventFrame, type Frame } from './frames.ts';
import { HistoryPages, RUN_GAP_MS, type HistoryFailing, type PageReader } from './history-pages.ts';
import type { Supply, Transport } from './transport.ts';
import type { FailureOutcome } from '../upstream/client.ts';
import type { FirstContact, PollerState } from '../upstream/poller.ts';
import type { SessionMetrics, UpstreamEvent } from '../upstream/types.ts';
import { isKnown } from '../upstream/snapshot.ts';
import type { UpstreamCredential } from '../upstream/credential.ts';
import { refusalStatus } from '../upstream/refusal.ts';
import { SessionNotFoundError, TooManyRequestsError, UpstreamAuthError, UpstreamUnavailableError } from '../errors.ts';
import type { Stats } from '../metrics.ts';

export interface HubOptions {
  transport: Transport;
  log: Logger;
  stats: Stats;
  /** How long a loop keeps running with no subscriber (ms). */
  graceMs: number;
  feedLimits: FeedLimits;
  /**
   * Bytes of frames all running feeds keep for replay together
   * (REPLAY_MAX_BYTES): each keeps at most its equal share, beside its own
   * `feedLimits.maxBytes`. Unset: only the per-feed bound.
   */
  replayMaxBytes?: number;
  /** Feeds with a loop or a subscriber at once; one more is refused with 429. */
  maxActiveSessions: number;
  /** Idle and finished feeds kept for replay. */
  maxCachedSessions: number;
  /** Bytes of idle and finished feeds kept for replay. */
  maxCachedBytes: number;
  /** How long an idle, unfinished feed stays cached (ms). */
  idleFeedTtlMs: number;
  /**
   * Loops run on the credentials of callers the upstream accepted (AUTH=upstream
   * without UPSTREAM_API_KEY); otherwise a caller's credential is never used.
   */
  loopOnCallerCredentials?: boolean;
  /** Events asked per history page (UPSTREAM_PAGE_SIZE): the longest page readers share. */
  historyPageSize?: number;
}

/** `historyPageSize` when unset (UPSTREAM_PAGE_SIZE's default). */
const DEFAULT_HISTORY_PAGE_SIZE = 100;

/** One feed with its supply and its users (subscribers and waiting long-polls). */
export interface FeedEntry {
  readonly key: string;
  readonly feed: Feed;
  ready: Promise<void>;
  users: number;
  supply: Supply | null;
  abort: AbortController | null;
  graceTimer: NodeJS.Timeout | null;
}

/** A history read that failed, with how long the feed's history reads have been failing when that is known (`HistoryPages`). */
export type HistoryFailure = FailureOutcome & { failing?: HistoryFailing };

/**
 * Whether a failed history read's run of failures has lasted REFUSAL_SETTLED_MS, from its first failure to its
 * latest: a 404 sooner may be a blip, as a loop's (`settledRefusalOf`), and a reader told 404 stops for good. Until
 * 7 Dec 2026 one 404 did that (audit).
 */
export function historyFailureSettled(failing: HistoryFailing | undefined): boolean {
  // Not known how long (no hold said): asked again, as a blip would be.
  return failing !== undefined && failing.lastMs - failing.sinceMs >= REFUSAL_SETTLED_MS;
}

/** Delay of a nudge's second status refresh (ms): the API answers a write 202 and may apply it a moment later. */
export const NUDGE_RECHECK_MS = 1000;

/**
 * How long a loop's refusal (401/403/404) must have lasted before new stream
 * opens are refused with it (ms): a few of the loop's retries (backoff from
 * 0.5 s), so one refused call does not stop a browser's EventSource for good,
 * while a session deleted minutes ago is not a 200 stream until the loop gives up.
 */
export const REFUSAL_SETTLED_MS = 5000;

function refusalSettled(feed: Feed): boolean {
  return feed.refusedForMs >= REFUSAL_SETTLED_MS;
}

/** Seconds a caller is told to wait when pollcast is stopping. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

/**
 * How long a first contact refused for pollcast's key answers later callers
 * of the same feed from memory (ms): a hundred clients retrying an open once
 * a second cost the upstream one call a second. A 404 is not remembered: a
 * session created a moment later must be served at once.
 */
export const FIRST_CONTACT_FAILURE_MEMORY_MS = 1000;
/** Feeds whose last refused first contact is remembered at once; past it the oldest is forgotten (it only costs one more call). */
const FAILED_FIRST_CONTACTS_TRACKED = 10_000;

function feedKey(sessionId: string, includeEvents: boolean): string {
  return `${includeEvents ? 'd' : 'n'}:${sessionId}`;
}

/** Maps a refused first contact to the error the HTTP layer answers. */
function firstContactError(sessionId: string, contact: FirstContact): Error | null {
  if (contact.kind === 'not-found') return new SessionNotFoundError(sessionId);
  if (contact.kind === 'unauthorized') return new UpstreamAuthError(contact.status);
  return null;
}

/** Owns every feed of the process. */
export class Hub {
  private readonly opts: HubOptions;
  /** `opts.feedLimits`, with the share of `replayMaxBytes` when set. */
  private readonly feedLimits: FeedLimits;
  private readonly active = new Map<string, FeedEntry>();
  private readonly cache: LRUCache<string, FeedEntry>;
  private readonly failedFirstContacts = new LRUCache<string, Error>({ max: FAILED_FIRST_CONTACTS_TRACKED, ttl: FIRST_CONTACT_FAILURE_MEMORY_MS });
  /** Refused first contacts that the loop made with no key (see `acquire`). */
  private readonly keylessRefusals = new WeakSet<Error>();
  private readonly historyPages: HistoryPages;
  /** Per feed, the history pages read so far that do not reach the buffer yet (bounded by the feed's limits, dropped with the feed). */
  private readonly historyRuns = new Map<string, { from: number; frames: Frame[]; bytes: number }>();
  private closed = false;
  /** Follow-up refreshes of nudged sessions, cleared on close. */
  private readonly nudgeTimers = new Set<NodeJS.Timeout>();
  /** Who hears feeds' status changes (the session lists), and the status frame each feed last told them. */
  private readonly statusListeners = new Set<(sessionId: string) => void>();
  private readonly statusTold = new WeakMap<Feed, Buffer>();

  constructor(opts: HubOptions) {
    this.opts = opts;
    this.historyPages = new HistoryPages(opts.historyPageSize ?? DEFAULT_HISTORY_PAGE_SIZE);
    const total = opts.replayMaxBytes;
    this.feedLimits = total === undefined ? opts.feedLimits : { ...opts.feedLimits, share: () => total / Math.max(1, this.active.size) };
    this.cache = new LRUCache<string, FeedEntry>({
      max: opts.maxCachedSessions,
      maxSize: opts.maxCachedBytes,
      sizeCalculation: (e) => Math.max(1, e.feed.bytes),
      // An idle session is let go when its time is up, not when something next touches the cache: on a quiet server
      // nothing did, and its events stayed in memory for good, unseen by the gauges (memory audit, 7 Dec 2026: 232
      // feeds and 100 MB of buffers, 11 minutes after their 10).
      ttlAutopurge: true,
    });
  }

  /**
   * Returns the ready feed entry for a session, starting its supply if none
   * runs (single flight: concurrent callers share one start). A new feed
   * starts one event before `startIndex` (so the loop proves that index
   * exists and `last_index` stays right) instead of reading the whole history;
   * older events are fetched when someone asks for them. The caller holds a
   * use of the entry and must `release` it. `credential`: the caller's own,
   * accepted by the upstream for this session, which the loop may run on.
   */
  async acquire(sessionId: string, includeEvents: boolean, startIndex: number | 'head' = 0, credential?: UpstreamCredential): Promise<FeedEntry> {
    try {
      return await this.acquireOnce(sessionId, includeEvents, startIndex, credential);
    } catch (err) {
      // A loop on callers' keys whose first contact went with no key (a token holder's call came first, and this caller
      // joined it in the meantime) was refused for want of a key, not for this caller's, which the upstream accepted
      // for the session: started again, on it (once).
      if (credential === undefined || !this.keylessRefusals.has(err as Error)) throw err;
      return this.acquireOnce(sessionId, includeEvents, startIndex, credential);
    }
  }

  private async acquireOnce(sessionId: string, includeEvents: boolean, startIndex: number | 'head', credential: UpstreamCredential | undefined): Promise<FeedEntry> {
    if (this.closed) throw new UpstreamUnavailableError('shutting down', UNAVAILABLE_RETRY_AFTER_SECONDS);
    const key = feedKey(sessionId, includeEvents);
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
        feed: createFeed(sessionId, includeEvents, startIndex === 'head' ? 0 : Math.max(0, startIndex - 1), this.feedLimits, startIndex === 'head'),
        ready: Promise.resolve(),
        users: 0,
        supply: null,
        abort: null,
        graceTimer: null,
      };
      if (!cached) entry.feed.watchers.add(() => this.tellStatus(entry!.feed));
      this.active.set(key, entry);
      // One more running feed: every share shrank, and a quiet feed would keep its larger one until it next appends.
      if (this.opts.replayMaxBytes !== undefined) for (const e of this.active.values()) e.feed.trim();
      // Before the start: the loop's first contact is made with it.
      if (credential !== undefined && this.opts.loopOnCallerCredentials) entry.feed.callers.add(credential);
      // A finished feed is served from memory; anything else is (re)supplied.
      if (!entry.feed.ended) {
        // A cached feed holds its stopped loop's view (in a cluster, a follower's catch-up may apply a refusal again).
        if (cached) entry.feed.supplyStarts();
        entry.ready = this.start(entry);
      }
    } else if (credential !== undefined && this.opts.loopOnCallerCredentials) entry.feed.callers.add(credential);
    // A reader from an index (a stream, a Durable read past its first) needs every event from there on: a feed made
    // for status-only readers (or `offset=now`) must no longer jump to the session's head when its copy is empty
    // (a loop's first answer, a follower's catch-up after its reader reconnected), which would skip them.
    if (startIndex !== 'head') entry.feed.startAtHead = false;
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

  /**
   * What a request/response reader of `feed` (drop-in call, Durable Stream
   * read) is refused with while its loop hears a refusal, as the upstream
   * itself would answer it now: 404 for a session gone, 502 for the
   * operator's key refused; null otherwise (and for a refused caller's key
   * the loop runs on, which says nothing of this caller's). Stream opens
   * wait for the refusal to settle (`forNewStream`).
   */
  refusalOf(feed: Feed): SessionNotFoundError | UpstreamAuthError | null {
    const refusal = refusalStatus(feed.upstreamError);
    if (refusal === 404) return new SessionNotFoundError(feed.sessionId);
    if (refusal !== null && !this.opts.loopOnCallerCredentials) return new UpstreamAuthError(refusal);
    return null;
  }

  /**
   * `refusalOf`, as a reader that stops for good on it (an EventSource, a
   * Durable Streams client) should take it: null while the loop hears none,
   * `'unsettled'` while it has lasted less than REFUSAL_SETTLED_MS (maybe a
   * blip the loop outlives: ask again in a moment), the refusal once settled.
   */
  settledRefusalOf(feed: Feed): SessionNotFoundError | UpstreamAuthError | 'unsettled' | null {
    const refusal = this.refusalOf(feed);
    if (refusal === null || refusalSettled(feed)) return refusal;
    return 'unsettled';
  }

  /**
   * An acquired entry for a new stream (single or multi-session lane), or,
   * once its loop's refusal has lasted REFUSAL_SETTLED_MS, given back and its
   * `refusalOf` thrown. A first refused call may be a blip the loop outlives
   * (an EventSource refused once stops for good); calls refused for seconds
   * (the loop shows a refusal until an answer, or a long-poll held a second,
   * proves otherwise) are the upstream's answer, as at a first contact
   * (contract section 3).
   */
  forNewStream(entry: FeedEntry): FeedEntry {
    // The history a reader resumes into refused for good (a 404 that lasted; with the operator's key, so for every
    // reader): the session is gone, as the loop's lasting refusal says it. Until 7 Dec 2026 a finished session's
    // streams opened (cached) and closed again for good, never told (an audit: 160 reconnects in 322 s).
    if (this.notFoundIsGone && this.historyRefused(entry)) {
      this.release(entry);
      throw new SessionNotFoundError(entry.feed.sessionId);
    }
    // A loop on callers' keys (AUTH=upstream, no UPSTREAM_API_KEY) hearing 404 says its keys cannot see the
    // session; the caller opening now was just accepted for it, and its key joins the loop's.
    if (this.opts.loopOnCallerCredentials || !refusalSettled(entry.feed)) return entry;
    const refusal = this.refusalOf(entry.feed);
    if (refusal === null) return entry;
    this.release(entry);
    throw refusal;
  }

  /**
   * A feed for status and `end` only (drop-in `/status`, overview streams):
   * any held feed of the session, with or without event details, else a new
   * one without details (no screenshots to download for a status; with them
   * for a caller with no key of its own in cluster mode, below) whose loop
   * starts at the session's last event instead of reading its history.
   */
  async acquireAny(sessionId: string, credential?: UpstreamCredential): Promise<FeedEntry> {
    for (const details of [true, false]) if (this.active.has(feedKey(sessionId, details))) return this.acquire(sessionId, details, 'head', credential);
    for (const details of [true, false]) if (this.cache.peek(feedKey(sessionId, details))?.feed.ended) return this.acquire(sessionId, details, 'head', credential);
    // Cluster mode, a caller with no upstream key where loops run on callers' keys (a token in combined mode): the log
    // with details is the one other instances' keyed readers feed; a status-only one would be a log no instance leads
    // (a first contact with no key, 502, every call). In one process the status-only feed stays apart from the one
    // streams open: its keyless first contact (502) must not refuse a keyed stream opening meanwhile.
    const followKeyed = credential === undefined && this.opts.loopOnCallerCredentials === true && this.opts.transport.shared === true;
    return this.acquire(sessionId, followKeyed, 'head', credential);
  }

  /** Gives back a use taken by `acquire`; the loop stops after the grace period without users. */
  release(entry: FeedEntry): void {
    entry.users--;
    if (entry.users > 0 || this.active.get(entry.key) !== entry) return;
    if (entry.feed.ended || entry.supply === null) {
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
   * Fetches held-out history from `from` (at most up to `to`), for a
   * subscriber that resumes before the buffer's oldest event. Readers share
   * pages (`HistoryPages`: one being read or read a moment ago that holds
   * `from` serves it, and at most a few are read at once), and a page that
   * ends where the buffer starts is kept, so the next subscriber reads memory.
   */
  async fetchHistory(entry: FeedEntry, from: number, to: number, signal: AbortSignal): Promise<UpstreamEvent[] | HistoryFailure> {
    const { feed } = entry;
    // Not tied to one caller's signal once under way: others may share the page (bounded by the client's own
    // deadline). One whose readers all left before its turn is not read.
    const read: PageReader = (s, e) => this.opts.transport.history(feed, s, e, new AbortController().signal);
    const { start, result, failing } = await this.historyPages.read(entry.key, from, to, read, signal, feed.sessionId);
    if (!Array.isArray(result)) return signal.aborted ? { kind: 'aborted' } : failing === undefined ? result : { ...result, failing };
    if (result.length > 0) this.keepHistory(entry, start, result);
    if (signal.aborted) return { kind: 'aborted' };
    return start === from && result.length <= to - from ? result : result.slice(from - start, from - start + (to - from));
  }

  /**
   * Whether a 404 says the session is gone for every reader: not where loops run on callers' keys, where it says
   * that those keys cannot see it.
   */
  get notFoundIsGone(): boolean {
    return this.opts.loopOnCallerCredentials !== true;
  }

  /**
   * Whether the feed's history reads have heard 404s for REFUSAL_SETTLED_MS, the latest a moment ago (within
   * RUN_GAP_MS), and no answer since (`HistoryPages`). A run of 404s that stopped is not held against new readers.
   */
  private historyRefused(entry: FeedEntry): boolean {
    const held = this.historyPages.failureOf(entry.key);
    if (held === undefined || held.result.kind !== 'not-found' || Date.now() - held.lastMs > RUN_GAP_MS) return false;
    return historyFailureSettled(held);
  }

  /**
   * A reader catching up reads history forward, page by page, while only a
   * run that ends where the buffer starts can join it: consecutive pages are
   * collected as frames (within the feed's bounds) and prepended once they reach it.
   */
  private keepHistory(entry: FeedEntry, from: number, events: UpstreamEvent[]): void {
    const { feed } = entry;
    const frames = events.map((e, k) => eventFrame(from + k, e));
    const bytes = frames.reduce((n, f) => n + f.length, 0);
    const run = this.historyRuns.get(entry.key);
    const next = run !== undefined && run.from + run.frames.length === from ? { from: run.from, frames: run.frames.concat(frames), bytes: run.bytes + bytes } : { from, frames, bytes };
    const end = next.from + next.frames.length;
    const fits = feed.fits(next.frames.length, next.bytes);
    if (end === feed.baseIndex) {
      this.historyRuns.delete(entry.key);
      feed.prependFrames(next.from, next.frames);
    } else if (fits && end < feed.baseIndex) this.historyRuns.set(entry.key, next);
    else this.historyRuns.delete(entry.key);
  }

  /**
   * Seconds until a waiting loop calls the upstream again (its backoff, or the upstream's Retry-After), at least
   * `atLeast`: what a caller told to retry should wait. A loop on another instance (cluster mode) said its backoff
   * through the log while its changes calls fail; `atLeast` where no wait is known.
   */
  retryAfterSeconds(entry: FeedEntry, atLeast: number): number {
    const retryAtMs = Math.max(entry.supply?.retryAtMs ?? 0, entry.feed.retryAtMs);
    return Math.max(atLeast, Math.ceil((retryAtMs - Date.now()) / 1000));
  }

  /** Asks the feed's loop for a fresher status (drop-in status pollers); at most one upstream call per interval. */
  async refreshStatus(entry: FeedEntry): Promise<void> {
    await entry.supply?.refreshStatus();
  }

  /**
   * A write forwarded through pollcast (pause, resume, messages, …) changed this
   * session: its loops here (either include_events) ask `/status` at once, past
   * the minimum interval between refreshes but within backoff and Retry-After,
   * and once more NUDGE_RECHECK_MS later, since the API accepts writes (202)
   * before it applies them. In cluster mode the loops that run it on other
   * instances are asked through the transport, whether or not this one
   * serves the session.
   */
  nudge(sessionId: string): void {
    if (this.closed) return;
    this.refreshNow(sessionId);
    const timer = setTimeout(() => {
      this.nudgeTimers.delete(timer);
      if (!this.closed) this.refreshNow(sessionId);
    }, NUDGE_RECHECK_MS);
    timer.unref();
    this.nudgeTimers.add(timer);
  }

  /**
   * The session's status changed upstream, as a session list shows it: its loops (here, and through the
   * transport wherever they run) ask `/status` now, once; the change is applied already, unlike a write the
   * API answered 202.
   */
  refreshLive(sessionId: string): void {
    if (!this.closed) this.refreshNow(sessionId);
  }

  private refreshNow(sessionId: string): void {
    for (const key of [feedKey(sessionId, true), feedKey(sessionId, false)]) {
      const entry = this.active.get(key) ?? this.cache.peek(key);
      if (entry?.supply) void entry.supply.refreshStatus(true);
    }
    this.opts.transport.nudge?.(sessionId);
  }

  /**
   * The live status and metrics of a session whose loop runs (or whose
   * finished feed is kept), read-only: never starts a loop. Undefined when
   * no feed of it knows the session yet.
   */
  peekLive(sessionId: string): { status: string; metrics: SessionMetrics; finished_at: string | null } | undefined {
    for (const details of [true, false]) {
      const key = feedKey(sessionId, details);
      const feed = this.active.get(key)?.feed ?? this.cache.peek(key)?.feed;
      // An idle feed in the cache is as old as its last subscriber: only a running loop's or a finished session's status is live.
      if (feed === undefined || (!this.active.has(key) && !feed.ended) || !isKnown(feed.snapshot)) continue;
      return { status: feed.snapshot.status, metrics: feed.snapshot.metrics, finished_at: feed.snapshot.finished_at };
    }
    return undefined;
  }

  /** Calls `listener(sessionId)` after each change of a feed's status or metrics; returns the way to stop. */
  onStatusChange(listener: (sessionId: string) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  // A feed's status frame is replaced exactly when what subscribers see of its status changes.
  private tellStatus(feed: Feed): void {
    if (this.statusListeners.size === 0 || this.statusTold.get(feed) === feed.statusFrame) return;
    this.statusTold.set(feed, feed.statusFrame);
    for (const listener of this.statusListeners) listener(feed.sessionId);
  }

  /** Entries the cache holds, expired ones not let go yet included (the metrics count only live ones). */
  get cachedEntries(): number {
    return this.cache.size;
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
    for (const e of this.active.values()) {
      const s: PollerState | undefined = e.supply?.loopState;
      if (s !== undefined && s !== 'stopped') out[s]!++;
    }
    return out;
  }

  /** Bytes of frames the feeds with a loop or a user keep for replay, for /metrics (unfinished ones within `replayMaxBytes` together). */
  replayBytes(): number {
    let n = 0;
    for (const e of this.active.values()) n += e.feed.bytes;
    return n;
  }

  /** Number of feeds with a loop or a user. */
  get activeCount(): number {
    return this.active.size;
  }

  /** Stops every loop and timer (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.nudgeTimers) clearTimeout(timer);
    this.nudgeTimers.clear();
    for (const e of this.active.values()) {
      if (e.graceTimer) clearTimeout(e.graceTimer);
      e.abort?.abort();
    }
    this.active.clear();
    this.cache.clear();
  }

  // Starts the supply; resolves once the first contact is known, rejects on a refused one.
  private async start(entry: FeedEntry): Promise<void> {
    const { feed } = entry;
    const { log } = this.opts;
    const abort = new AbortController();
    const supply = this.opts.transport.supply(feed, abort.signal);
    entry.abort = abort;
    entry.supply = supply;
    const received = feed.eventsAppended;
    const startedAt = performance.now();
    // A feed refused at first contact (an unknown id, say) never said 'feed started': its stop is not news either.
    let started = false;
    void supply.done.then(() => {
      const reason = feed.ended ? (feed.endedBy === 'over' ? 'session over' : 'upstream refused') : this.closed ? 'shutdown' : 'no subscribers';
      log[started ? 'info' : 'debug']({ session: feed.sessionId, details: feed.includeEvents, reason, events: feed.eventsAppended - received, durationMs: Math.round(performance.now() - startedAt) }, 'feed stopped');
      if (entry.supply === supply) {
        entry.supply = null;
        entry.abort = null;
      }
      if (entry.users === 0 && this.active.get(entry.key) === entry) this.retire(entry);
    });
    // The loop's first contact goes with no key: a caller with one may join before it is answered.
    const keyless = this.opts.loopOnCallerCredentials === true && feed.callers.size === 0;
    const contact = await supply.firstContact;
    const error = firstContactError(feed.sessionId, contact);
    if (keyless && contact.kind === 'unauthorized' && error !== null) this.keylessRefusals.add(error);
    if (error) {
      // An unknown session is the caller's mistake (404 to them); a refused key is the operator's.
      const level = contact.kind === 'not-found' ? 'debug' : 'error';
      log[level]({ session: feed.sessionId, outcome: contact.kind }, 'upstream refused the first contact; subscriber refused');
      abort.abort();
      if (this.active.get(entry.key) === entry) this.active.delete(entry.key);
      // A caller's credential refused says nothing about the next caller's: only the operator's key is remembered.
      if (contact.kind === 'unauthorized' && !this.opts.loopOnCallerCredentials) this.failedFirstContacts.set(entry.key, error);
      throw error;
    }
    if (this.closed) throw new UpstreamUnavailableError('shutting down', UNAVAILABLE_RETRY_AFTER_SECONDS);
    if (contact.kind === 'unavailable') log.warn({ session: feed.sessionId, reason: contact.reason }, 'upstream unavailable on first contact; streaming with upstream_error while retrying');
    // "feed", not "loop": in cluster mode every instance serving the session says it; the loop runs on one.
    started = true;
    log.info({ session: feed.sessionId, details: feed.includeEvents, from: feed.nextIndex, status: feed.snapshot.status }, 'feed started');
  }

  // Stops the loop and moves the feed to the LRU (finished feeds until evicted, others for a while).
  private retire(entry: FeedEntry): void {
    if (entry.graceTimer) clearTimeout(entry.graceTimer);
    entry.graceTimer = null;
    entry.abort?.abort();
    entry.abort = null;
    // No loop, no need for the callers' credentials: a cached feed holds none (its next user brings one).
    entry.feed.callers.clear();
    this.historyRuns.delete(entry.key);
    if (this.active.get(entry.key) === entry) this.active.delete(entry.key);
    if (this.closed) return;
    // Only a session the upstream says is over is kept as finished; a stream
    // ended by a lasting upstream refusal must be asked for again next time.
    // An idle one is kept with its events, or with none from the start on but a known status (a session with no event
    // yet): the next loop goes on from it, and the status keeps its version (a Durable reader was given that status
    // again after each idle stop of such a session, until 7 Dec 2026). Not one started at the head and holding
    // nothing: its next loop, finding nothing new there, would take it for a start past the events and read the whole
    // history from 0.
    const feed = entry.feed;
    if (feed.ended) {
      if (feed.endedBy === 'over') this.cache.set(entry.key, entry);
    } else if (feed.nextIndex > feed.baseIndex || (feed.baseIndex === 0 && isKnown(feed.snapshot))) this.cache.set(entry.key, entry, { ttl: this.opts.idleFeedTtlMs });
  }
}
