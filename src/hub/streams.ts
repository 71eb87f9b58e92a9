/**
 * Every open SSE stream of the process, single-session and multiplexed:
 * opening (replay, then live with no gap), one shared heartbeat timer, and
 * closing them all on shutdown.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { encodeComment } from '../sse.ts';
import { catchUp, type CatchUpDeps, type FeedReader } from './catch-up.ts';
import type { StreamAccess, StreamConnection } from './connection.ts';
import { accessErrorFrame, retryFrame } from './frames.ts';
import type { FeedEntry, Hub } from './hub.ts';
import { MuxSubscriber, type LaneSpec, type MuxMode } from './mux-subscriber.ts';
import { StreamSubscriber, type CloseReason, type SubscriberOptions } from './subscriber.ts';
import { writeStreamHead, type StreamResponse } from './writer.ts';
import type { Stats } from '../metrics.ts';

export { STREAM_HEADERS, STREAM_HEADERS_H2 } from './writer.ts';
export { HISTORY_FETCH_ATTEMPTS, REPLAY_DRAIN_TIMEOUT_MS, REPLAY_SLICE_BYTES } from './catch-up.ts';

export interface StreamsOptions {
  hub: Hub;
  log: Logger;
  stats: Stats;
  /** `retry:` sent to EventSource (ms). */
  retryMs: number;
  /** Interval of the comment line that keeps idle streams open (ms; contract: at most 15 s). */
  heartbeatMs: number;
  /** Unsent bytes a subscriber may hold before it is dropped as slow. */
  maxQueueBytes: number;
}

const HEARTBEAT = encodeComment('keep-alive');

/** The longest delay a Node timer takes (ms); an expiry further off is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Something a stream gives back when it closes. */
export interface Releasable {
  release(): void;
}

/** How a stream is opened. */
export interface StreamStartOptions {
  /** Headers set by middleware (CORS) that travel with the stream's own head. */
  extraHeaders?: OutgoingHttpHeaders;
  /** Given back exactly once when the stream closes (the limits' stream slot). */
  slot?: Releasable;
  /** Until when the subscriber may read (its token's `exp`, its key's verdict); the stream is renewed or closed then. */
  access?: StreamAccess | undefined;
  /** The stream goes on on a response that a held stream opened (`adopt`, then `handOver`): head and `retry:` are sent already. */
  continues?: boolean;
}

/** Opens and tracks streams. */
export class Streams {
  private readonly opts: StreamsOptions;
  private readonly open = new Set<StreamConnection>();
  private readonly heartbeat: NodeJS.Timeout;

  private readonly subscriberOptions: SubscriberOptions;

  constructor(opts: StreamsOptions) {
    this.opts = opts;
    this.subscriberOptions = {
      maxQueueBytes: opts.maxQueueBytes,
      onClose: (sub, reason) => this.closed(sub, reason),
      onBehind: (sub) => this.catchUpAgain(sub),
      stats: opts.stats,
    };
    // One timer for every stream: a stream that got nothing since the last sweep gets a comment. Sweeps every
    // third of the interval, so the longest silence (two sweeps) stays well under it, timer jitter included.
    this.heartbeat = setInterval(() => {
      for (const sub of this.open) sub.heartbeat(HEARTBEAT);
    }, Math.max(100, Math.floor(opts.heartbeatMs / 3)));
    this.heartbeat.unref();
  }

  /** Streams open now. */
  get size(): number {
    return this.open.size;
  }

  /** Streams open now reading one session (any include_details, single or multiplexed). */
  countFor(sessionId: string): number {
    let n = 0;
    for (const sub of this.open) if (sub.reads(sessionId)) n++;
    return n;
  }

  /**
   * Starts the SSE answer on `res` for an acquired feed entry; owns the entry's
   * use from here on (released when the stream closes), and gives `slot`
   * back exactly once when the stream closes.
   */
  start(entry: FeedEntry, res: StreamResponse, startIndex: number, options: StreamStartOptions = {}): StreamSubscriber {
    const { extraHeaders = {}, slot, access, continues = false } = options;
    const { log, stats } = this.opts;
    const feed = entry.feed;
    if (!continues) writeStreamHead(res, extraHeaders);
    // One options object and one close handler for every stream: what a stream owns is kept on it.
    const sub = new StreamSubscriber(res, startIndex, entry, this.subscriberOptions);
    sub.slot = slot;
    this.watchAccess(sub, access);
    this.open.add(sub);
    if (!continues) stats.streamsOpened++;
    log.info({ session: feed.sessionId, from: startIndex, details: feed.includeEvents }, 'stream open');
    sub.statusSent = feed.statusFrame;
    sub.write(continues ? feed.statusFrame : Buffer.concat([retryFrame(this.opts.retryMs), feed.statusFrame]));
    this.catchUpAgain(sub);
    return sub;
  }

  /** Replays to `sub` from its `next` (paced by its socket), then registers it for live chunks. */
  private catchUpAgain(sub: StreamSubscriber): void {
    this.replayThenLive(sub.entry, sub, sub);
  }

  /** catchUp of `reader` (one reader of `stream`) in the background; a failure closes the stream. */
  private replayThenLive(entry: FeedEntry, reader: FeedReader, stream: StreamConnection): void {
    if (stream.closed) return;
    void catchUp(this.catchUpDeps, entry, reader).catch((err: unknown) => {
      this.opts.log.error({ err, session: entry.feed.sessionId }, 'replay failed');
      stream.close('error');
    });
  }

  /**
   * Starts a multiplexed SSE answer on `res` for `lanes` (in the cursor's
   * order, each with its acquired entry, or none when it is over for this
   * stream or unknown upstream); owns the entries' uses from here on.
   * Sessions catch up one after the other, so a stream replays at most one
   * slice at a time however many sessions it reads.
   */
  startMany(lanes: readonly LaneSpec[], key: Buffer, mode: MuxMode, res: StreamResponse, options: StreamStartOptions = {}): MuxSubscriber {
    const { extraHeaders = {}, slot, access, continues = false } = options;
    const { log, stats } = this.opts;
    if (!continues) writeStreamHead(res, extraHeaders);
    const sub = new MuxSubscriber(res, key, lanes, mode, {
      maxQueueBytes: this.opts.maxQueueBytes,
      onClose: (s, reason) => {
        slot?.release();
        this.closedMany(s, reason);
      },
      onLaneBehind: (s, lane) => {
        if (!lane.ended && lane.entry !== null) this.replayThenLive(lane.entry, lane, s);
      },
      stats,
    });
    this.watchAccess(sub, access);
    this.open.add(sub);
    if (!continues) stats.streamsOpened++;
    log.info({ sessions: lanes.length, mode }, 'stream open');
    sub.begin(continues ? null : retryFrame(this.opts.retryMs));
    void this.catchUpLanes(sub).catch((err: unknown) => {
      log.error({ err, sessions: lanes.length }, 'replay failed');
      sub.close('error');
    });
    return sub;
  }

  /**
   * Tracks a stream opened by another module (the session list): the
   * heartbeat, the access expiry and shutdown reach it as they reach the
   * others. Its owner calls `forget` from its close handler.
   */
  adopt(conn: StreamConnection, access: StreamAccess | undefined): void {
    this.watchAccess(conn, access);
    this.open.add(conn);
    this.opts.stats.streamsOpened++;
  }

  /** Stops tracking a stream given to `adopt`, once it closed. */
  forget(conn: StreamConnection, reason: CloseReason): void {
    if (!this.open.delete(conn)) return;
    this.count(reason, conn);
  }

  /**
   * Stops tracking an adopted stream whose response goes on as another
   * stream (`start` or `startMany` with `continues`): not a close, and the
   * stream was counted as opened once already.
   */
  handOver(conn: StreamConnection): void {
    if (!this.open.delete(conn)) return;
    clearTimeout(conn.accessTimer);
    conn.handOver();
  }

  /** Ends every stream (shutdown): clients reconnect, elsewhere, with Last-Event-ID. */
  closeAll(reason: CloseReason): void {
    for (const sub of [...this.open]) sub.close(reason);
  }

  /**
   * Stops the heartbeat timer and ends every stream (idempotent); resolves
   * once their last bytes have left (a slow reader may still be taking them)
   * or after `flushTimeoutMs`, whichever comes first.
   */
  async close(flushTimeoutMs = 0): Promise<void> {
    clearInterval(this.heartbeat);
    const flushing = [...this.open].map((sub) => sub.flushed());
    this.closeAll('shutdown');
    if (flushing.length === 0 || flushTimeoutMs <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(flushing), new Promise<void>((resolve) => (timer = setTimeout(resolve, flushTimeoutMs)))]);
    clearTimeout(timer);
  }

  private get catchUpDeps(): CatchUpDeps {
    return { hub: this.opts.hub, stats: this.opts.stats, log: this.opts.log };
  }

  // Overview lanes register at once (no replay); event lanes catch up each on its own, so one
  // whose history cannot be read holds back no other.
  private async catchUpLanes(sub: MuxSubscriber): Promise<void> {
    const deps = this.catchUpDeps;
    const catchingUp: Array<Promise<void>> = [];
    for (const lane of sub.lanes) {
      if (sub.closed) break;
      const feed = lane.entry?.feed;
      if (!feed || lane.ended) continue;
      if (sub.mode === 'events') {
        catchingUp.push(catchUp(deps, lane.entry!, lane));
        continue;
      }
      if (feed.statusFrame !== lane.statusSent) lane.writeStatus(feed.statusFrame);
      if (feed.endFrame) lane.onEnd(feed.endFrame);
      else feed.listeners.add(lane);
    }
    await Promise.all(catchingUp);
  }

  private closedMany(sub: MuxSubscriber, reason: CloseReason): void {
    for (const lane of sub.lanes) lane.entry?.feed.listeners.delete(lane);
    this.open.delete(sub);
    this.count(reason, sub);
    const log = reason === 'slow' ? this.opts.log.warn.bind(this.opts.log) : this.opts.log.info.bind(this.opts.log);
    log({ sessions: sub.lanes.length, mode: sub.mode, reason, events: sub.eventsSent, durationMs: Math.round(performance.now() - sub.openedAt) }, 'stream closed');
    for (const lane of sub.lanes) if (lane.entry) this.opts.hub.release(lane.entry);
  }

  /**
   * Sets the stream's access and a timer at its end (revoking by expiry reaches open streams too, at the
   * moment a token's `exp` says, not at the next sweep).
   */
  private watchAccess(sub: StreamConnection, access: StreamAccess | undefined): void {
    clearTimeout(sub.accessTimer);
    sub.access = access;
    if (access === undefined) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, access.expiresAtMs - Date.now()));
    sub.accessTimer = setTimeout(() => {
      if (sub.closed || sub.access !== access) return;
      if (Date.now() < access.expiresAtMs) this.watchAccess(sub, access);
      else this.accessRanOut(sub);
    }, delay);
    sub.accessTimer.unref();
  }

  /**
   * A stream's access ran out: confirmed again where it can be (an upstream
   * key's verdict), else ended with a last `event: error` naming why, so a
   * client knows to renew its token (or stop) before resuming.
   */
  private accessRanOut(sub: StreamConnection): void {
    const renew = sub.access?.renew;
    if (!renew) return this.refuse(sub, 'token_expired', 'expired');
    renew().then(
      (next) => {
        if (sub.closed) return;
        if (typeof next === 'number') this.watchAccess(sub, { ...sub.access!, expiresAtMs: next });
        else this.refuse(sub, next.error, 'revoked');
      },
      (err: unknown) => {
        // A renewal that cannot be made is a refusal: a stream never reads on unconfirmed access.
        this.opts.log.warn({ err }, 'stream access could not be confirmed again');
        this.refuse(sub, 'access_unconfirmed', 'revoked');
      },
    );
  }

  private refuse(sub: StreamConnection, error: string, reason: CloseReason): void {
    if (sub.closed) return;
    sub.write(accessErrorFrame(error));
    sub.close(reason);
  }

  private count(reason: CloseReason, sub: StreamConnection): void {
    clearTimeout(sub.accessTimer);
    const { stats } = this.opts;
    stats.streamsClosed[reason] = (stats.streamsClosed[reason] ?? 0) + 1;
    if (reason === 'slow') stats.slowDropped++;
  }

  private closed(sub: StreamSubscriber, reason: CloseReason): void {
    const { entry } = sub;
    sub.slot?.release();
    entry.feed.listeners.delete(sub);
    this.open.delete(sub);
    this.count(reason, sub);
    const log = reason === 'slow' ? this.opts.log.warn.bind(this.opts.log) : this.opts.log.info.bind(this.opts.log);
    log({ session: sub.sessionId, reason, events: sub.eventsSent, durationMs: Math.round(performance.now() - sub.openedAt) }, 'stream closed');
    this.opts.hub.release(entry);
  }
}
