/**
 * Keeps one local feed in step with its session's shared log: a catch-up read
 * of the log (and its current state) when it starts, again whenever the log
 * may have been replaced (Redis restarted, flushed, failed over), then the
 * live entries the reader hands over, each applied with `feed.publish` exactly
 * as a loop would. The feed de-duplicates by index; an index the log skipped
 * (trimmed, lost) is filled in from the log or, failing that, from upstream,
 * before anything after it is applied. One follower's work runs in order.
 */
import type { Logger } from 'pino';
import type { Feed } from '../hub/feed.ts';
import type { FailureOutcome } from '../upstream/client.ts';
import { backoffDelayMs, DEFAULT_BACKOFF, sleep } from '../upstream/backoff.ts';
import type { UpstreamEvent } from '../upstream/types.ts';
import { afterEventsBefore, decodeEntries, decodeMeta, READ, type LogEntry, type LogEnd, type LogKeys, type LogState } from './redis-log.ts';
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
      if (generation === this.generation) await this.apply(entries, true);
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
    const wanted = afterEventsBefore(feed.nextIndex);
    let after: string | null = null;
    for (;;) {
      const page: [string[], Array<[string, string[]]>] = await this.deps.redis.run('read', READ, [this.keys.meta, this.keys.log], [`(${after ?? wanted}`, String(CATCH_UP_PAGE)]);
      const [flatMeta, raw] = page;
      if (generation !== this.generation || this.signal.aborted) return;
      const meta = decodeMeta(flatMeta);
      if (after === null) {
        after = wanted;
        if (feed.nextIndex === feed.baseIndex) {
          // An empty feed mirrors the log. A log without events keeps its statuses at 0-k and may still
          // move its start back: read it all. A log with fewer events than this feed was asked to start
          // at: hold it from its start, as a loop would, so `last_index` comes out right.
          const logEmpty = meta.next === null || meta.next === meta.base;
          if (!logEmpty && meta.next! < feed.baseIndex) feed.rebase(meta.base ?? 0);
          const from = logEmpty ? '0-0' : afterEventsBefore(feed.nextIndex);
          if (from !== wanted) {
            after = from;
            continue;
          }
        }
      }
      await this.apply(decodeEntries(raw), false);
      if (raw.length > 0) after = raw.at(-1)![0];
      if (raw.length >= CATCH_UP_PAGE) continue;
      this.born = meta.born;
      if (meta.state && !feed.ended) {
        if (meta.ended && meta.next !== null && feed.nextIndex < meta.next) await this.fill(meta.next);
        this.publish([], feed.nextIndex, meta.state, meta.ended ? 'over' : undefined);
      }
      if (feed.ended || this.signal.aborted || generation !== this.generation) return;
      this.cursor = after;
      this.deps.reader.add(this);
      return;
    }
  }

  // Applies entries in order: runs of consecutive events become one update, closed by the state entry
  // that follows them (or the feed's current state).
  private async apply(entries: readonly LogEntry[], live: boolean): Promise<void> {
    const { feed } = this;
    let batch: UpstreamEvent[] = [];
    let from = feed.nextIndex;
    const flush = (state: LogState | null, end?: LogEnd) => {
      if (batch.length === 0 && state === null && end === undefined) return;
      this.publish(batch, from, state ?? this.currentState(), end);
      batch = [];
    };
    for (let i = 0; i < entries.length && !feed.ended && !this.signal.aborted; i++) {
      const entry = entries[i]!;
      if (entry.kind === 'event') {
        const expected = batch.length > 0 ? from + batch.length : feed.nextIndex;
        // An empty feed mirrors the log's start: back to it (a loop found fewer events than asked for), or on
        // to it (the log no longer holds the start) while no listener waits for what lies between.
        const mirror = batch.length === 0 && feed.nextIndex === feed.baseIndex && (entry.index < feed.nextIndex || feed.listeners.size === 0);
        if (entry.index === expected || mirror) {
          if (batch.length === 0) {
            if (entry.index !== feed.nextIndex) feed.rebase(entry.index);
            from = entry.index;
          }
          batch.push(entry.event);
        } else if (entry.index > expected) {
          flush(null);
          await this.fill(entry.index);
          if (feed.nextIndex !== entry.index) return;
          from = entry.index;
          batch = [entry.event];
        }
        // Below the expected index: already held.
      } else if (entry.kind === 'state') {
        // A refused end is for the readers that were live then; one catching up starts over (with a new loop).
        flush(entry.state, live || entry.end === 'over' ? (entry.end ?? undefined) : undefined);
      } else {
        flush(null);
        this.deps.onReleased();
      }
    }
    flush(null);
  }

  // Brings the feed up to `to` (exclusive) from the log or upstream, retrying until done or stopped.
  private async fill(to: number): Promise<void> {
    const { feed } = this;
    for (let failures = 0; feed.nextIndex < to && !this.signal.aborted && !feed.ended; ) {
      const r = await this.deps.fetch(feed, feed.nextIndex, to, this.signal);
      if (Array.isArray(r) && r.length > 0) {
        failures = 0;
        this.publish(r.slice(0, to - feed.nextIndex), feed.nextIndex, this.currentState());
        continue;
      }
      failures++;
      this.deps.log.warn({ session: feed.sessionId, from: feed.nextIndex, to, outcome: Array.isArray(r) ? 'empty' : r.kind, attempt: failures }, 'could not fill a gap in the shared log yet; retrying');
      if (!(await sleep(backoffDelayMs(failures, DEFAULT_BACKOFF), this.signal))) return;
    }
  }

  private currentState(): LogState {
    const { feed } = this;
    return { snapshot: feed.snapshot, upstreamError: feed.upstreamError, synced: feed.synced, ...(feed.emptyStyle ? { emptyStyle: feed.emptyStyle } : {}) };
  }

  private publish(events: readonly UpstreamEvent[], fromIndex: number, state: LogState, end?: LogEnd): void {
    this.feed.publish({ fromIndex, events, snapshot: state.snapshot, synced: state.synced, upstreamError: state.upstreamError, ...(state.emptyStyle ? { emptyStyle: state.emptyStyle } : {}), ...(end ? { end } : {}) });
  }
}
