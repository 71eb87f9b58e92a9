/**
 * Every session list watched in the process: one upstream list poll per
 * distinct (credential scope, filter) however many viewers, every poll
 * interval while anyone watches, stopped after a short grace when nobody
 * does. Live statuses of sessions whose loop runs come from the hub, read
 * only: a list never starts a loop.
 */
import type { Logger } from 'pino';
import { ListFeed, type ListFilter, type LiveStatus } from './list-feed.ts';
import type { FailureOutcome, UpstreamClient } from '../upstream/client.ts';
import type { UpstreamCredential } from '../upstream/credential.ts';
import { readSessionList } from '../upstream/list-client.ts';
import { ForbiddenError, UnauthorizedError, UpstreamAuthError } from '../errors.ts';

/** Where a list reads the live status of sessions whose loop runs (the Hub). */
export interface LiveStatusSource {
  peekLive(sessionId: string): LiveStatus | undefined;
  onStatusChange(listener: (sessionId: string) => void): () => void;
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
}

/** Longest pause between polls of a failing list (ms): a recovering upstream shows within it. */
export const LIST_MAX_BACKOFF_MS = 30_000;

/** One list with its viewers and its poll. */
export interface ListEntry {
  readonly feed: ListFeed;
  readonly credential: UpstreamCredential | undefined;
  users: number;
  timer: NodeJS.Timeout | null;
  graceTimer: NodeJS.Timeout | null;
  abort: AbortController;
  failures: number;
}

/** The error a viewer gets when the upstream refused the list's first poll. */
function refusal(outcome: FailureOutcome, credential: UpstreamCredential | undefined): Error | null {
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
  /** Upstream list calls made (each page one), for tests and metrics. */
  calls = 0;

  constructor(opts: ListHubOptions) {
    this.opts = opts;
    this.stopListening = opts.live.onStatusChange((id) => {
      for (const entry of this.lists.values()) if (entry.feed.has(id)) entry.feed.applyLive(id, opts.live.peekLive(id));
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
   * use and must `release` it.
   */
  async acquire(filter: ListFilter, credential: UpstreamCredential | undefined): Promise<ListEntry> {
    // The digest stands for the key: the key itself is never a map key, nor logged.
    const key = `${credential === undefined ? 'operator' : credential.digest}|${filter.key}`;
    let entry = this.lists.get(key);
    if (!entry) {
      entry = { feed: new ListFeed(key, filter, this.opts.maxLogEntries), credential, users: 0, timer: null, graceTimer: null, abort: new AbortController(), failures: 0 };
      this.lists.set(key, entry);
      void this.poll(entry);
    }
    entry.users++;
    if (entry.graceTimer) {
      clearTimeout(entry.graceTimer);
      entry.graceTimer = null;
    }
    await entry.feed.firstPoll;
    const refused = entry.feed.listed ? null : this.firstRefusal.get(entry);
    if (refused) {
      this.release(entry);
      throw refused;
    }
    return entry;
  }

  /** Gives back a use; the poll stops after the grace period without viewers. */
  release(entry: ListEntry): void {
    entry.users--;
    if (entry.users > 0 || this.lists.get(entry.feed.key) !== entry) return;
    entry.graceTimer = setTimeout(() => {
      entry.graceTimer = null;
      if (entry.users === 0) this.drop(entry);
    }, this.opts.graceMs);
    entry.graceTimer.unref();
  }

  /** Stops every poll (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopListening();
    for (const entry of [...this.lists.values()]) this.drop(entry);
  }

  private readonly firstRefusal = new WeakMap<ListEntry, Error>();

  private drop(entry: ListEntry): void {
    if (entry.timer) clearTimeout(entry.timer);
    if (entry.graceTimer) clearTimeout(entry.graceTimer);
    entry.timer = entry.graceTimer = null;
    entry.abort.abort();
    if (this.lists.get(entry.feed.key) === entry) this.lists.delete(entry.feed.key);
  }

  // One poll, then the next one an interval after this one started (longer while the upstream fails).
  private async poll(entry: ListEntry): Promise<void> {
    entry.timer = null;
    if (entry.abort.signal.aborted) return;
    const { feed } = entry;
    const started = performance.now();
    const outcome = await readSessionList(this.opts.client, feed.filter.params, this.opts.maxSessions, entry.credential, entry.abort.signal);
    if (outcome.kind === 'aborted' || entry.abort.signal.aborted) {
      // Stopped (shutdown) before the first answer: whoever waits for it must not wait forever.
      if (!feed.listed) feed.failed('list: stopped');
      return;
    }
    let delayMs = this.opts.pollMs;
    if (outcome.kind === 'listing') {
      this.calls += outcome.listing.calls;
      entry.failures = 0;
      feed.applyListing(outcome.listing, (id) => this.opts.live.peekLive(id));
    } else {
      this.calls++;
      entry.failures++;
      const refused = feed.listed ? null : refusal(outcome, entry.credential);
      if (refused) {
        // Nobody may read a list the upstream refused: its viewers are turned away and the poll stops.
        this.firstRefusal.set(entry, refused);
        this.opts.log.warn({ list: feed.filter.key, scope: entry.credential ? 'caller key' : 'operator key', outcome: outcome.kind }, 'upstream refused the session list');
        this.drop(entry);
        feed.failed(describe(outcome));
        return;
      }
      this.opts.log.warn({ list: feed.filter.key, outcome: outcome.kind }, 'session list poll failed; retrying');
      feed.failed(describe(outcome));
      const retryAfterMs = outcome.kind === 'rate-limited' ? (outcome.retryAfterMs ?? 0) : 0;
      delayMs = Math.max(retryAfterMs, Math.min(this.opts.pollMs * 2 ** Math.min(entry.failures - 1, 6), Math.max(this.opts.pollMs, LIST_MAX_BACKOFF_MS)));
    }
    if (entry.abort.signal.aborted || this.closed) return;
    const waitMs = Math.max(0, delayMs - (performance.now() - started));
    entry.timer = setTimeout(() => void this.poll(entry), waitMs);
    entry.timer.unref();
  }
}
