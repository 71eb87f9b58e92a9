/**
 * One SSE connection: replay-then-live, writes of shared bytes, and a bound
 * on what the socket may hold unsent (a slow reader past it is dropped and
 * resumes by Last-Event-ID from the buffer).
 */
import type { ServerResponse } from 'node:http';
import type { Chunk, FeedListener } from './feed.ts';
import type { Stats } from '../metrics.ts';

const CRLF = Buffer.from('\r\n', 'latin1');

// Every caught-up subscriber of a chunk (or of a heartbeat sweep) is written in one
// loop, so a one-entry cache frames each shared buffer once, not once per subscriber.
let lastPlain: Buffer | null = null;
let lastFramed: Buffer = CRLF;

/** `bytes` as one HTTP/1.1 chunk (size line, data, CRLF): what `res.write` would send, as one buffer. */
function httpChunk(bytes: Buffer): Buffer {
  if (bytes !== lastPlain) {
    lastFramed = Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`, 'latin1'), bytes, CRLF]);
    lastPlain = bytes;
  }
  return lastFramed;
}

/** Why a stream closed (logged and counted). */
export type CloseReason = 'end' | 'client' | 'slow' | 'shutdown' | 'upstream' | 'error' | 'expired';

export interface SubscriberOptions {
  /** Bytes the socket may hold unsent before the subscriber is dropped as slow. */
  maxQueueBytes: number;
  /** Called once, after the subscriber closed. */
  onClose: (sub: StreamSubscriber, reason: CloseReason) => void;
  stats: Stats;
}

/** A subscriber of one feed, writing to one HTTP response. */
export class StreamSubscriber implements FeedListener {
  /** Index of the next event this subscriber needs. */
  next: number;
  /** Event frames written. */
  eventsSent = 0;
  /** Set when anything was written since the last heartbeat sweep. */
  wroteRecently = false;
  /** The last status frame written (shared bytes, compared by identity). */
  statusSent: Buffer | null = null;
  /** When the subscriber's token expires (ms since the epoch), if it does. */
  expiresAtMs: number | undefined;
  readonly openedAt = performance.now();
  readonly sessionId: string;
  private readonly res: ServerResponse;
  private readonly opts: SubscriberOptions;
  private closedReason: CloseReason | null = null;
  // Created only when something must wait on this stream (upstream replay): most streams never need one.
  private abort: AbortController | null = null;
  // Set once the head is on the socket and the body is chunked: shared bytes then go to
  // the socket pre-framed, skipping res.write's per-call framing (four writes, a cork and
  // a nextTick per subscriber). Ordering holds: everything ends up in the one socket queue.
  private direct = false;

  constructor(res: ServerResponse, startIndex: number, sessionId: string, opts: SubscriberOptions) {
    this.res = res;
    this.next = startIndex;
    this.sessionId = sessionId;
    this.opts = opts;
    // 'close' fires on client disconnects and resets alike; no per-event listeners.
    res.once('close', () => this.close('client'));
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  /** Aborts when the stream closes. */
  get signal(): AbortSignal {
    this.abort ??= new AbortController();
    if (this.closedReason !== null) this.abort.abort();
    return this.abort.signal;
  }

  /** Writes shared bytes; drops the subscriber when its unsent backlog passes the bound. */
  write(bytes: Buffer): void {
    if (this.closedReason !== null) return;
    // A reset socket may not have emitted 'close' yet; writing to it would only queue bytes.
    if (this.res.destroyed) return this.close('client');
    // The bound applies to what is still unsent from earlier writes, so one
    // chunk larger than the bound does not drop a subscriber that keeps up.
    if (this.res.writableLength > this.opts.maxQueueBytes) return this.close('slow');
    const socket = this.res.socket;
    if (this.direct && socket !== null) {
      // A zero-length chunk would end the body.
      if (bytes.length > 0) socket.write(httpChunk(bytes));
    } else {
      this.res.write(bytes);
      // The first write sent the head; from here on the socket can take framed chunks.
      this.direct = this.res.chunkedEncoding && this.res.socket !== null;
    }
    this.wroteRecently = true;
  }

  /**
   * Writes replayed events [next, next + count) given as one buffer. A replay
   * is paced by `drained()` between its slices rather than judged against the
   * bound, so a long history never drops a reader that is catching up.
   */
  writeEvents(bytes: Buffer, count: number): void {
    if (this.closedReason !== null) return;
    if (this.res.destroyed) return this.close('client');
    this.res.write(bytes);
    this.wroteRecently = true;
    this.next += count;
    this.eventsSent += count;
    this.opts.stats.framesDelivered += count;
  }

  /**
   * Resolves true once the socket has taken the earlier writes (at once when
   * it is below its high-water mark); false when the stream closes first, or
   * when it takes nothing for `timeoutMs` (it is then dropped as slow).
   */
  drained(timeoutMs: number): Promise<boolean> {
    if (this.closedReason !== null) return Promise.resolve(false);
    if (!this.res.writableNeedDrain) return Promise.resolve(true);
    const signal = this.signal;
    return new Promise((resolve) => {
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.res.off('drain', onDrain);
        signal.removeEventListener('abort', onAbort);
        resolve(ok);
      };
      const onDrain = () => finish(true);
      const onAbort = () => finish(false);
      const timer = setTimeout(() => {
        finish(false);
        this.close('slow');
      }, timeoutMs);
      this.res.on('drain', onDrain);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  onChunk(chunk: Chunk): void {
    const n = chunk.frames.length;
    if (chunk.status !== null) this.statusSent = chunk.status;
    if (n === 0 || this.next <= chunk.firstIndex) {
      // The common case: a caught-up subscriber gets the very bytes every other one gets.
      this.write(chunk.bytes);
      if (n > 0) {
        this.eventsSent += n;
        this.opts.stats.framesDelivered += n;
        this.next = chunk.firstIndex + n;
      }
      return;
    }
    // Resumed ahead of the feed (Last-Event-ID beyond what it held): skip what it has.
    const skip = this.next - chunk.firstIndex;
    const parts = skip < n ? chunk.frames.slice(skip) : [];
    if (chunk.status) parts.push(chunk.status);
    if (parts.length > 0) this.write(Buffer.concat(parts));
    if (skip < n) {
      this.eventsSent += n - skip;
      this.opts.stats.framesDelivered += n - skip;
      this.next = chunk.firstIndex + n;
    }
  }

  onEnd(frame: Buffer): void {
    if (this.closedReason !== null) return;
    this.res.write(frame);
    this.close('end');
  }

  /** Resolves once everything written so far has left for the client, or the connection is gone. */
  flushed(): Promise<void> {
    const res = this.res;
    if (res.destroyed || (res.writableFinished && res.socket === null)) return Promise.resolve();
    return new Promise((resolve) => {
      res.once('finish', () => resolve());
      res.once('close', () => resolve());
    });
  }

  /** Ends the response (idempotent); a reset socket is destroyed instead. */
  close(reason: CloseReason): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    this.abort?.abort();
    if (reason === 'slow') this.res.destroy();
    else if (reason === 'shutdown' && !this.res.writableEnded) {
      // Close the connection too once the stream's last bytes are out: a
      // kept-alive socket would carry the browser's reconnect straight back
      // to this stopping process instead of to a live instance.
      const socket = this.res.socket;
      this.res.end(() => socket?.end());
    } else if (!this.res.writableEnded) this.res.end();
    this.opts.onClose(this, reason);
  }
}
