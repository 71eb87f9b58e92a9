/**
 * Every open SSE stream of the process: opening (replay, then live with no
 * gap), one shared heartbeat timer, and closing them all on shutdown.
 */
import type { ServerResponse, OutgoingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { encodeComment } from '../sse.ts';
import { eventFrame, retryFrame } from './frames.ts';
import type { FeedEntry, Hub } from './hub.ts';
import { StreamSubscriber, type CloseReason } from './subscriber.ts';
import { backoffDelayMs, sleep, DEFAULT_BACKOFF } from '../upstream/backoff.ts';
import type { Stats } from '../metrics.ts';

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

/** Attempts at re-fetching held-out history before the stream is closed (the client resumes by Last-Event-ID). */
export const HISTORY_FETCH_ATTEMPTS = 4;
/**
 * Bytes of buffered history written to a replaying subscriber at once; the
 * next slice waits for its socket to drain, so however long the history, a
 * replay holds about this much (or one history page) per subscriber.
 */
export const REPLAY_SLICE_BYTES = 64 * 1024;
/** A replaying subscriber whose socket takes nothing for this long is dropped as slow (it resumes by Last-Event-ID). */
export const REPLAY_DRAIN_TIMEOUT_MS = 30_000;

const HEARTBEAT = encodeComment('keep-alive');

/** How often open streams are checked for an expired token (ms); a stream outlives its token by at most this. */
export const TOKEN_EXPIRY_CHECK_MS = 1000;

/** How a stream is opened. */
export interface StreamStartOptions {
  /** Headers set by middleware (CORS) that travel with the stream's own head. */
  extraHeaders?: OutgoingHttpHeaders;
  /** Runs exactly once when the stream closes (the limits give back its slot). */
  onClosed?: () => void;
  /** When the subscriber's token expires (ms since the epoch): the stream is closed then. */
  expiresAtMs?: number | undefined;
}

/** Response headers of every stream. */
export const STREAM_HEADERS: OutgoingHttpHeaders = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  // nginx and similar proxies must not buffer a stream.
  'x-accel-buffering': 'no',
};

/** Opens and tracks streams. */
export class Streams {
  private readonly opts: StreamsOptions;
  private readonly open = new Set<StreamSubscriber>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(opts: StreamsOptions) {
    this.opts = opts;
    // One timer for every stream: a stream that got nothing since the last sweep gets a comment,
    // and a stream whose token expired is closed (revoking by expiry must work on open streams too).
    this.heartbeat = setInterval(() => {
      const now = Date.now();
      for (const sub of this.open) {
        if (sub.expiresAtMs !== undefined && sub.expiresAtMs <= now) {
          sub.close('expired');
          continue;
        }
        if (!sub.wroteRecently) sub.write(HEARTBEAT);
        sub.wroteRecently = false;
      }
    }, Math.max(100, Math.min(TOKEN_EXPIRY_CHECK_MS, Math.floor(opts.heartbeatMs / 2))));
    this.heartbeat.unref();
  }

  /** Streams open now. */
  get size(): number {
    return this.open.size;
  }

  /** Streams open now for one session (any include_details). */
  countFor(sessionId: string): number {
    let n = 0;
    for (const sub of this.open) if (sub.sessionId === sessionId) n++;
    return n;
  }

  /**
   * Starts the SSE answer on `res` for an acquired feed entry; owns the entry's
   * use from here on (released when the stream closes). `onClosed` runs
   * exactly once when the stream closes (the limits give back its slot).
   */
  start(entry: FeedEntry, res: ServerResponse, startIndex: number, options: StreamStartOptions = {}): StreamSubscriber {
    const { extraHeaders = {}, onClosed, expiresAtMs } = options;
    const { log, stats } = this.opts;
    const feed = entry.feed;
    res.writeHead(200, { ...extraHeaders, ...STREAM_HEADERS });
    const sub = new StreamSubscriber(res, startIndex, feed.sessionId, {
      maxQueueBytes: this.opts.maxQueueBytes,
      onClose: (s, reason) => {
        onClosed?.();
        this.closed(entry, s, reason);
      },
      stats,
    });
    sub.expiresAtMs = expiresAtMs;
    this.open.add(sub);
    stats.streamsOpened++;
    log.info({ session: feed.sessionId, from: startIndex, details: feed.includeEvents }, 'stream open');
    sub.statusSent = feed.statusFrame;
    sub.write(Buffer.concat([retryFrame(this.opts.retryMs), feed.statusFrame]));
    void this.catchUp(entry, sub).catch((err: unknown) => {
      log.error({ err, session: feed.sessionId }, 'replay failed');
      sub.close('error');
    });
    return sub;
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

  // Replay from upstream (what the buffer no longer holds), then from the
  // buffer in slices paced by the socket, then register for live chunks. The
  // last check and the registration run in one synchronous block, so no event
  // can be appended in between; after every wait all is checked again (the
  // buffer may have been trimmed past the subscriber meanwhile).
  private async catchUp(entry: FeedEntry, sub: StreamSubscriber): Promise<void> {
    const { feed } = entry;
    const { stats } = this.opts;
    let failures = 0;
    let fromBuffer = false;
    while (!sub.closed) {
      if (sub.next < feed.baseIndex) {
        const r = await this.opts.hub.fetchHistory(entry, sub.next, feed.baseIndex, sub.signal);
        if (sub.closed) return;
        if (Array.isArray(r) && r.length > 0) {
          stats.replayFromUpstream++;
          failures = 0;
          const frames = r.map((e, k) => eventFrame(sub.next + k, e));
          sub.writeEvents(Buffer.concat(frames), r.length);
          if (!(await sub.drained(REPLAY_DRAIN_TIMEOUT_MS))) return;
          continue;
        }
        const kind = Array.isArray(r) ? 'empty' : r.kind;
        if (kind === 'aborted') return;
        failures++;
        if (failures >= HISTORY_FETCH_ATTEMPTS || kind === 'not-found' || kind === 'unauthorized') {
          this.opts.log.warn({ session: feed.sessionId, from: sub.next, outcome: kind }, 'history fetch failed; closing so the client resumes later');
          sub.close('upstream');
          return;
        }
        if (!(await sleep(backoffDelayMs(failures, DEFAULT_BACKOFF), sub.signal))) return;
        continue;
      }
      const slice = sub.next < feed.nextIndex ? feed.framesSlice(sub.next, REPLAY_SLICE_BYTES) : null;
      if (slice) {
        sub.writeEvents(slice.bytes, slice.count);
        fromBuffer = true;
        if (!(await sub.drained(REPLAY_DRAIN_TIMEOUT_MS))) return;
        continue;
      }
      if (fromBuffer) stats.replayFromBuffer++;
      // The status may have changed while the replay waited on the socket: a subscriber
      // registered without it would show a stale status until the next change (maybe never).
      if (feed.statusFrame !== sub.statusSent) sub.write(feed.statusFrame);
      if (feed.endFrame) sub.onEnd(feed.endFrame);
      else feed.listeners.add(sub);
      return;
    }
  }

  private closed(entry: FeedEntry, sub: StreamSubscriber, reason: CloseReason): void {
    entry.feed.listeners.delete(sub);
    this.open.delete(sub);
    const { stats } = this.opts;
    stats.streamsClosed[reason] = (stats.streamsClosed[reason] ?? 0) + 1;
    if (reason === 'slow') stats.slowDropped++;
    const log = reason === 'slow' ? this.opts.log.warn.bind(this.opts.log) : this.opts.log.info.bind(this.opts.log);
    log({ session: sub.sessionId, reason, events: sub.eventsSent, durationMs: Math.round(performance.now() - sub.openedAt) }, 'stream closed');
    this.opts.hub.release(entry);
  }
}
