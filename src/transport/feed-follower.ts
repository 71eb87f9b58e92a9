/**
 * Keeps one local feed in step with its session's shared log: a catch-up read
 * of the log (and its current state) when it starts, again whenever the log
 * may have been replaced (Redis restarted, flushed, failed over), then the
 * live entries the reader hands over, each applied with `feed.publish` exactly
 * as a loop would. One path: the log is read from the local copy's position,
 * and every entry first needs the events below it (an event its index, a
 * status the log's head when written): whatever index the log no longer
 * holds (trimmed, lost) is fetched from the log or else upstream, the
 * session over or not, listeners or not. Only an empty copy moves instead
 * (see `place`). The feed de-duplicates by index. One follower's work runs in order.
 */
import type { Logger } from 'pino';
import type { Feed } from '../hub/feed.ts';
import type { FailureOutcome } from '../upstream/client.ts';
import { backoffDelayMs, DEFAULT_BACKOFF, sleep } from '../upstream/backoff.ts';
import type { UpstreamEvent } from '../upstream/types.ts';
import { retryAtPart } from '../upstream/sink.ts';
import { afterEventsBefore, decodeEntries, decodeMeta, idAtOrBefore, logStateOf, READ, type LogEntry, type LogEnd, type LogKeys, type LogState } from './redis-log.ts';
import type { RedisConn } from './redis-conn.ts';
import type { LogReader, ReadTarget } from './redis-reader.ts';

/** Entries read per catch-up page. */
export const CATCH_UP_PAGE = 1000;

/** Fetches events [from, to) for a gap: from the log if it has them, else from upstream. */
export type GapFetch = (feed: Feed, from: number, to: number, signal: AbortSignal) => Promise<UpstreamEvent[] | FailureOutcome>;

export interface FollowerDeps {
  redis: RedisConn;
  reader: LogReader;
  fetch: GapFetch;
  log: Logger;
  /** After anything was applied (the supply checks first contact and the end). */
  onChange(): void;
  /** A leader released the lease (try to take it now). */
  onReleased(): void;
  /** A leader wrote into the log just now (Redis takes writes): events among the entries, or only statuses. */
  onLogWritten(withEvents: boolean): void;
  /**
   * Whether this instance can read the session's history from the upstream now (a key to read it with: under
   * AUTH=upstream without UPSTREAM_API_KEY, a reader's). While it cannot, an empty copy does not move on past the
   * log's start: a gap it then meets waits for a key, and its readers are told so (see `GapFetch`'s caller).
   */
  canReadUpstream(): boolean;
}

/** Follows one log into one feed until its signal aborts or the feed ends. */
export class FeedFollower implements ReadTarget {
  readonly key: string;
  cursor: string | null = null;
  generation = 0;
  /** The identity of the log last caught up with (null before, or when it did not exist). */
  born: string | null = null;
  private readonly feed: Feed;
  private readonly keys: LogKeys;
  private readonly deps: FollowerDeps;
  private readonly signal: AbortSignal;
  private queue: Promise<void> = Promise.resolve();
  /**
   * The newest status entry applied, and the log it came from. A catch-up does not show it, or an older one,
   * again: the feed may have moved past it meanwhile (served from the upstream while Redis was away).
   */
  private applied: { born: string | null; id: string } | null = null;
  /**
   * The newest status the log wrote below this copy's position (see `behind`), not shown: once the log's events
   * reach the copy's position with no status after it, it is the log's latest word (a leader that took over
   * writes a status only when it changes, often on its first page, below the copy), and is shown then.
   */
  private hidden: { state: LogState; since: number | null } | null = null;

  constructor(feed: Feed, keys: LogKeys, deps: FollowerDeps, signal: AbortSignal) {
    this.feed = feed;
    this.keys = keys;
    this.key = keys.log;
    this.deps = deps;
    this.signal = signal;
    signal.addEventListener('abort', () => deps.reader.remove(this), { once: true });
  }

  /** Resolves once the follower stopped (signal aborted) and its last work is done. */
  async stopped(): Promise<void> {
    if (!this.signal.aborted) await new Promise<void>((resolve) => this.signal.addEventListener('abort', () => resolve(), { once: true }));
    await this.queue;
  }

  /** Reads the log again from the feed's position (the log may have been replaced). */
  resync(): void {
    const generation = ++this.generation;
    this.cursor = null;
    this.deps.reader.remove(this);
    this.enqueue(() => this.catchUp(generation));
  }

  deliver(entries: LogEntry[]): void {
    const generation = this.generation;
    this.enqueue(async () => {
      if (generation === this.generation) await this.apply(entries, true, this.born);
    });
  }

  private enqueue(work: () => Promise<void>): void {
    this.queue = this.queue.then(async () => {
      if (this.signal.aborted || this.feed.ended) return;
      try {
        await work();
      } catch (err) {
        this.deps.log.error({ err, session: this.feed.sessionId }, 'applying the shared log failed; reading it again');
        if (!this.signal.aborted) this.resync();
      }
      this.deps.onChange();
    });
  }

  // Pages through the log from the feed's position, then applies the log's current state, then
  // hands the log to the reader from where the pages stopped. Retries while Redis is away.
  private async catchUp(generation: number): Promise<void> {
    for (let attempt = 1; !this.signal.aborted && generation === this.generation; attempt++) {
      try {
        return await this.catchUpOnce(generation);
      } catch (err) {
        this.deps.log.debug({ session: this.feed.sessionId, err: (err as Error).message }, 'log catch-up failed; retrying');
        await sleep(Math.min(2000, backoffDelayMs(attempt, { baseMs: 100, maxMs: 2000 })), this.signal);
      }
    }
  }

  private async catchUpOnce(generation: number): Promise<void> {
    const { feed } = this;
    let start = afterEventsBefore(feed.nextIndex);
    let placed = false;
    for (;;) {
      const page: [string[], Array<[string, string[]]>] = await this.deps.redis.run('read', READ, [this.keys.meta, this.keys.log], [`(${start}`, String(CATCH_UP_PAGE)]);
      const [flatMeta, raw] = page;
      if (generation !== this.generation || this.signal.aborted) return;
      const meta = decodeMeta(flatMeta);
      if (!placed) {
        placed = true;
        if (this.applied !== null && this.applied.born !== meta.born) {
          this.applied = null;
          this.hidden = null;
        }
        if (meta.next !== null) this.place(meta.next, meta.base ?? meta.next);
        // A log without events keeps its statuses at 0-k (it may still move its start back): read it all.
        const from = meta.next === null || meta.next === meta.base ? '0-0' : afterEventsBefore(feed.nextIndex);
        if (from !== start) {
          start = from;
          continue;
        }
      }
      await this.apply(decodeEntries(raw), false, meta.born);
      if (raw.length > 0) start = raw.at(-1)![0];
      if (raw.length >= CATCH_UP_PAGE) continue;
      this.born = meta.born;
      // A log behind this copy: read on live from its head, so the statuses a leader writes while its events catch
      // up with the copy arrive (held back until they do), not only those written past the copy.
      const behind = this.behind(meta.next);
      if (behind && raw.length === 0) start = afterEventsBefore(meta.next!);
      if (meta.state && !feed.ended) {
        // Whatever the log no longer holds below its head comes from upstream, the session over or not.
        if (meta.next !== null && !(await this.reach(meta.next))) return;
        // Not behind, the log's status is shown unless applied already; and so it is with a status held back: the
        // log's events reached the copy meanwhile (read live, or here after the reader reconnected).
        if (meta.ended || (!behind && (this.hidden !== null || !this.seen(meta.born, meta.stateId)))) {
          this.hidden = null;
          this.publish([], feed.nextIndex, meta.state, meta.ended ? 'over' : undefined, meta.statusSince);
        } else {
          if (behind) this.hidden = { state: meta.state, since: meta.statusSince };
          this.publish([], feed.nextIndex, this.clusterPart(meta.state));
        }
        if (meta.stateId !== null) this.applied = { born: meta.born, id: meta.stateId };
      }
      if (feed.ended || this.signal.aborted || generation !== this.generation) return;
      this.cursor = start;
      this.deps.reader.add(this);
      return;
    }
  }

  /**
   * An empty copy takes the log's position instead of asking for what lies between: back to it (a
   * loop found fewer events than this copy was asked to start at), on to its head for a copy made for
   * status-only readers (overview streams, drop-in /status), which need no history, and on to the
   * log's first event while no reader is registered on the copy: a reader from before it then reads
   * that history as a reader behind any buffer does (the hub's shared history pages, which keep to
   * the upstream's Retry-After and tell a session gone). Until 7 Dec 2026 the copy filled the gap
   * from the upstream first, which held every reader of the session on this instance (11.7 s under a
   * 429 it did not keep to, for good once the session was deleted) and read the history twice (an audit).
   */
  private place(head: number, base: number): void {
    const { feed } = this;
    if (feed.nextIndex !== feed.baseIndex) return;
    if (head < feed.nextIndex && head > base) feed.rebase(base);
    else if (head < feed.nextIndex || (feed.startAtHead && head > feed.nextIndex)) feed.rebase(head);
    else if (base > feed.nextIndex && feed.listeners.size === 0 && this.deps.canReadUpstream()) feed.rebase(base);
  }

  /** Brings the copy up to `index` (exclusive): placed there when empty and allowed, else filled. False when it could not. */
  private async reach(index: number): Promise<boolean> {
    this.place(index, index);
    if (this.feed.nextIndex < index) await this.fill(index);
    return this.feed.nextIndex >= index;
  }

  // Applies entries in order: runs of consecutive events become one update, closed by the state entry
  // that follows them (or the feed's current state). Every entry first needs the events below it.
  private async apply(entries: readonly LogEntry[], live: boolean, born: string | null): Promise<void> {
    const { feed } = this;
    let batch: UpstreamEvent[] = [];
    let from = feed.nextIndex;
    const flush = (state: LogState | null, end?: LogEnd, since: number | null = null) => {
      if (batch.length > 0 || state !== null || end !== undefined) this.publish(batch, from, state ?? this.currentState(), end, since);
      batch = [];
      from = feed.nextIndex;
    };
    if (live && entries.some((e) => e.kind !== 'released')) this.deps.onLogWritten(entries.some((e) => e.kind === 'event'));
    // How far the log's events reach in these entries (for a status held back while the copy was ahead of it).
    let logReach = -1;
    for (const entry of entries) {
      if (feed.ended || this.signal.aborted) return;
      if (entry.kind === 'event') {
        logReach = entry.index + 1;
        if (entry.index < from + batch.length) {
          // Held already, unless the copy is empty and the log starts before it.
          if (batch.length > 0 || feed.nextIndex !== feed.baseIndex) continue;
          feed.rebase(entry.index);
          from = entry.index;
        } else if (entry.index > from + batch.length) {
          flush(null);
          if (!(await this.reach(entry.index))) return;
          from = feed.nextIndex;
          if (entry.index < from) continue;
        }
        batch.push(entry.event);
      } else if (entry.kind === 'state') {
        if (this.seen(born, entry.id)) continue;
        const behind = batch.length === 0 && this.behind(entry.next);
        if (entry.next !== null && entry.next !== from + batch.length) {
          flush(null);
          if (!(await this.reach(entry.next))) return;
          // Reaching it may have moved an empty copy back (a loop found fewer events than it was asked to start at).
          from = feed.nextIndex;
        }
        // A refused end is for the readers that were live then; one catching up starts over (with a new loop).
        const end = live || entry.end === 'over' ? (entry.end ?? undefined) : undefined;
        if (behind && end === undefined) {
          this.hidden = { state: entry.state, since: entry.since };
          flush(this.clusterPart(entry.state));
        } else {
          this.hidden = null;
          flush(entry.state, end, entry.since);
        }
        this.applied = { born, id: entry.id };
      } else {
        flush(null);
        this.deps.onReleased();
      }
    }
    flush(null);
    if (this.hidden !== null && logReach >= feed.nextIndex && !feed.ended) {
      const { state, since } = this.hidden;
      this.hidden = null;
      this.publish([], feed.nextIndex, state, undefined, since);
    }
  }

  // Brings the feed up to `to` (exclusive) from the log or upstream, retrying until done or stopped.
  private async fill(to: number): Promise<void> {
    const { feed } = this;
    for (let failures = 0; feed.nextIndex < to && !this.signal.aborted && !feed.ended; ) {
      // An empty copy that could not move on (no key to read history with) may now: a reader brought one meanwhile
      // (a review, 7 Dec 2026: it read the whole gap instead, behind a backoff grown to 30 s).
      if (failures > 0) {
        this.place(to, to);
        if (feed.nextIndex >= to) return;
      }
      const from = feed.nextIndex;
      const r = await this.deps.fetch(feed, from, to, this.signal);
      if (Array.isArray(r) && r.length > 0) {
        failures = 0;
        // From where the fetch started: a direct loop (store full) may have moved the feed on meanwhile.
        this.publish(r.slice(0, to - from), from, this.currentState());
        continue;
      }
      failures++;
      this.deps.log.warn({ session: feed.sessionId, from: feed.nextIndex, to, outcome: Array.isArray(r) ? 'empty' : r.kind, attempt: failures }, 'could not fill a gap in the shared log yet; retrying');
      // A 429's Retry-After is kept to, as the loop keeps to it (until 7 Dec 2026: 6 calls in 14 s under one of 30 s).
      const retryAfterMs = !Array.isArray(r) && r.kind === 'rate-limited' ? r.retryAfterMs : undefined;
      if (!(await sleep(backoffDelayMs(failures, DEFAULT_BACKOFF, retryAfterMs), this.signal))) return;
    }
  }

  /**
   * Whether a status the log wrote at its position `next` is older than this copy's: the copy holds events past
   * it (served from the upstream while Redis was away), and with them a newer status.
   */
  private behind(next: number | null): boolean {
    return next !== null && next < this.feed.nextIndex;
  }

  /** What a status older than the copy's still says: the cluster's word (a leader writes again: no notice of serving around it). */
  private clusterPart(state: LogState): LogState {
    return { ...this.currentState(), upstreamError: state.upstreamError, failing: state.failing === true, ...retryAtPart(state.failing, state.retryAtMs) };
  }

  /** Whether the status entry `id` of log `born` was applied here already (or one after it). */
  private seen(born: string | null, id: string | null): boolean {
    return id !== null && this.applied !== null && this.applied.born === born && idAtOrBefore(id, this.applied.id);
  }

  private currentState(): LogState {
    return logStateOf(this.feed);
  }

  // `since`: when the log first wrote the status `state` shows (its clock, the same for every instance); null: not said.
  private publish(events: readonly UpstreamEvent[], fromIndex: number, state: LogState, end?: LogEnd, since: number | null = null): void {
    this.feed.publish({
      fromIndex,
      events,
      snapshot: state.snapshot,
      synced: state.synced,
      failing: state.failing === true,
      ...retryAtPart(state.failing, state.retryAtMs),
      upstreamError: state.upstreamError,
      ...(state.emptyStyle ? { emptyStyle: state.emptyStyle } : {}),
      ...(since !== null ? { statusSinceMs: since } : {}),
      ...(end ? { end } : {}),
    });
  }
}
