/**
 * What every open SSE stream shares, whatever it reads: its response and
 * writer, the bound on what the connection may hold unsent (a slow reader
 * past it is dropped and resumes by Last-Event-ID), pacing by 'drain', the
 * heartbeat mark, the token's expiry, and one idempotent close.
 */
import type { Chunk, FeedListener } from './feed.ts';
import { createWriter, type ResponseWriter, type StreamResponse } from './writer.ts';

/** Why a stream closed (logged and counted). */
export type CloseReason = 'end' | 'client' | 'slow' | 'shutdown' | 'upstream' | 'error' | 'expired' | 'revoked';

/**
 * How long an open stream may go on reading, as the HTTP layer's grant tells
 * it (a token's `exp`, an upstream verdict's lifetime), seen from the hub.
 */
export interface StreamAccess {
  /** When the access runs out (ms since the epoch). */
  expiresAtMs: number;
  /**
   * Asked once the access runs out, for access that can be confirmed again
   * without the client (an upstream key's verdict): resolves the next expiry,
   * or `{ error }` (a stable code such as `access_revoked`) that ends the
   * stream. Absent: the stream ends with `token_expired`, and the client
   * renews its token and resumes by `last_event_id`.
   */
  renew?: () => Promise<number | { error: string }>;
}

export interface ConnectionOptions {
  /** Bytes the connection may hold unsent before the stream is dropped as slow. */
  maxQueueBytes: number;
  /** Called once, after the stream closed. */
  onClose: (conn: StreamConnection, reason: CloseReason) => void;
}

const CONNECTION = Symbol('pollcast.connection');
type ResponseWithConnection = StreamResponse & { [CONNECTION]?: StreamConnection };

/** The response's 'close' listener, shared by every stream. */
function closeFromResponse(this: StreamResponse): void {
  (this as ResponseWithConnection)[CONNECTION]?.close('client');
}

/** One open stream's response. */
export abstract class StreamConnection {
  /** Set when anything was written since the last heartbeat sweep. */
  wroteRecently = false;
  /** Until when the subscriber may read, if that is bounded (its token, its key's verdict). */
  access: StreamAccess | undefined;
  /** Fires when the access runs out (set only on streams whose access is bounded). */
  accessTimer: NodeJS.Timeout | undefined = undefined;
  readonly openedAt = performance.now();
  protected readonly res: StreamResponse;
  protected readonly out: ResponseWriter;
  private readonly maxQueueBytes: number;
  private readonly onClose: (conn: StreamConnection, reason: CloseReason) => void;
  private closedReason: CloseReason | 'handed over' | null = null;
  // Created only when something must wait on this stream (upstream replay): most streams never need one.
  private abort: AbortController | null = null;

  constructor(res: StreamResponse, opts: ConnectionOptions) {
    this.res = res;
    this.out = createWriter(res);
    this.maxQueueBytes = opts.maxQueueBytes;
    this.onClose = opts.onClose;
    // 'close' fires on client disconnects and resets alike. One shared listener finds the stream
    // through the response: no closure (and no once-wrapper) per stream.
    (res as ResponseWithConnection)[CONNECTION] = this;
    res.on('close', closeFromResponse);
  }

  /**
   * Whether a live chunk of `feed` for `reader` is not to be written but caught up again (paced by the socket, dropped
   * only when it takes nothing for REPLAY_DRAIN_TIMEOUT_MS): the connection holds more unsent than its bound while the
   * feed's loop has never read up to date yet (the history's pages come at the upstream's speed, a replay in all but
   * name). Then `reader` leaves the feed's listeners and `rejoin(reader)` runs after the fan-out under way (a reader
   * caught up at once would be added back to the set being iterated). Live, the bound holds: past it the stream is
   * dropped as slow.
   */
  protected leftBehindOnHistory<R extends FeedListener>(feed: { caughtUpOnce: boolean; listeners: Set<FeedListener> }, reader: R, rejoin: (reader: R) => void): boolean {
    if (feed.caughtUpOnce || this.closed || this.out.unsentBytes <= this.maxQueueBytes) return false;
    feed.listeners.delete(reader);
    queueMicrotask(() => rejoin(reader));
    return true;
  }

  /** True when the stream reads `sessionId`. */
  abstract reads(sessionId: string): boolean;

  get closed(): boolean {
    return this.closedReason !== null;
  }

  /** Aborts when the stream closes. */
  get signal(): AbortSignal {
    this.abort ??= new AbortController();
    if (this.closedReason !== null) this.abort.abort();
    return this.abort.signal;
  }

  /**
   * The heartbeat sweep: a comment on a stream that wrote nothing since the
   * last sweep. A stream with bytes still queued needs none (and must not be
   * judged slow for a replay slice still leaving).
   */
  heartbeat(frame: Buffer): void {
    if (!this.wroteRecently && this.out.unsentBytes === 0) this.write(frame);
    this.wroteRecently = false;
  }

  /** Writes shared bytes; drops the stream when its unsent backlog passes the bound. */
  write(bytes: Buffer): void {
    if (this.admit()) this.out.write(bytes);
  }

  /** Writes a feed's chunk as it is shared with every other subscriber, under the same bound. */
  writeChunk(chunk: Chunk): void {
    if (this.admit()) this.out.writeChunk(chunk);
  }

  /** Writes one unit made of several shared buffers, under the same bound. */
  writeParts(parts: readonly Buffer[]): void {
    if (this.admit()) this.out.writeParts(parts);
  }

  /**
   * Writes replayed bytes without the bound: a replay is paced by `drained()`
   * between its slices instead, so a long history never drops a reader that
   * is catching up. False when the stream is closed.
   */
  protected writeReplay(parts: readonly Buffer[]): boolean {
    if (this.closedReason !== null) return false;
    if (this.out.gone) {
      this.close('client');
      return false;
    }
    this.out.writePaced(parts);
    this.wroteRecently = true;
    return true;
  }

  /**
   * Resolves true once the connection has taken the earlier writes (at once
   * when it is below its high-water mark); false when the stream closes
   * first, or when it takes nothing for `timeoutMs` (it is then dropped as slow).
   */
  drained(timeoutMs: number): Promise<boolean> {
    if (this.closedReason !== null) return Promise.resolve(false);
    if (!this.out.needsDrain) return Promise.resolve(true);
    const signal = this.signal;
    const res = this.res;
    return new Promise((resolve) => {
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        res.off('drain', onDrain);
        signal.removeEventListener('abort', onAbort);
        resolve(ok);
      };
      const onDrain = () => finish(true);
      const onAbort = () => finish(false);
      const timer = setTimeout(() => {
        finish(false);
        this.close('slow');
      }, timeoutMs);
      res.on('drain', onDrain);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Resolves once everything written so far has left for the client, or the connection is gone. */
  flushed(): Promise<void> {
    const res = this.res;
    if (this.out.gone || (res.writableFinished && res.socket == null)) return Promise.resolve();
    return new Promise((resolve) => {
      res.once('finish', () => resolve());
      res.once('close', () => resolve());
    });
  }

  /**
   * Leaves the response, as it is, to the stream that goes on on it (a stream
   * held for its caller's verdict, once accepted): nothing is written or
   * ended, no close is reported, and this connection is closed from here on.
   */
  handOver(): void {
    if (this.closedReason !== null) return;
    this.closedReason = 'handed over';
    this.abort?.abort();
    this.res.off('close', closeFromResponse);
    (this.res as ResponseWithConnection)[CONNECTION] = undefined;
  }

  /** Ends the response (idempotent); a slow reader's is dropped instead. */
  close(reason: CloseReason): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    this.abort?.abort();
    if (reason === 'slow') this.out.destroy();
    // On shutdown the connection goes too once the stream's last bytes are out: a
    // kept-alive socket would carry the browser's reconnect straight back to this
    // stopping process instead of to a live instance.
    else this.out.end(reason === 'shutdown');
    this.onClose(this, reason);
  }

  // Whether a bounded write may go ahead; closes the stream when it may not.
  private admit(): boolean {
    if (this.closedReason !== null) return false;
    // A reset socket may not have emitted 'close' yet; writing to it would only queue bytes.
    if (this.out.gone) {
      this.close('client');
      return false;
    }
    // The bound applies to what is still unsent from earlier writes, so one
    // chunk larger than the bound does not drop a subscriber that keeps up.
    if (this.out.unsentBytes > this.maxQueueBytes) {
      this.close('slow');
      return false;
    }
    this.wroteRecently = true;
    return true;
  }
}
