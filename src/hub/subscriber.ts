/**
 * One single-session SSE connection: replay-then-live of one feed, writes of
 * the feed's shared bytes as they are. The connection itself (writer, slow
 * bound, pacing, close) is a StreamConnection.
 */
import type { Chunk, FeedListener } from './feed.ts';
import { frameParts, statusFrameOf, statusJson, type Frame } from './frames.ts';
import { coalesce } from './parts.ts';
import type { FeedEntry } from './hub.ts';
import { StreamConnection, type CloseReason, type ConnectionOptions } from './connection.ts';
import type { StreamResponse } from './writer.ts';
import type { Stats } from '../metrics.ts';

export type { CloseReason } from './connection.ts';

export interface SubscriberOptions {
  /** Bytes the socket may hold unsent before the subscriber is dropped as slow. */
  maxQueueBytes: number;
  /** Called once, after the subscriber closed. */
  onClose: (sub: StreamSubscriber, reason: CloseReason) => void;
  /**
   * Called (once the subscriber left the feed's listeners, after the chunk's fan-out) when a live chunk finds it past
   * its bound while the loop has not yet read the session's history up to date: it is caught up again, paced by its
   * socket, instead of dropped.
   */
  onBehind: (sub: StreamSubscriber) => void;
  stats: Stats;
}

/** A subscriber of one feed, writing to one HTTP response. */
export class StreamSubscriber extends StreamConnection implements FeedListener {
  /** Index of the next event this subscriber needs. */
  next: number;
  /** Event frames written. */
  eventsSent = 0;
  /** The last status frame written (shared bytes, compared by identity). */
  statusSent: Buffer | null = null;
  readonly sessionId: string;
  /** The feed entry read, whose use the stream holds until it closes. */
  readonly entry: FeedEntry;
  /** What the stream gives back when it closes (its stream slot), if anything. */
  slot: { release(): void } | undefined;
  private readonly stats: Stats;
  private readonly onBehind: (sub: StreamSubscriber) => void;

  constructor(res: StreamResponse, startIndex: number, entry: FeedEntry, opts: SubscriberOptions) {
    // The connection calls it with this very subscriber: no wrapper closure per stream.
    super(res, { maxQueueBytes: opts.maxQueueBytes, onClose: opts.onClose as ConnectionOptions['onClose'] });
    this.next = startIndex;
    this.entry = entry;
    this.sessionId = entry.feed.sessionId;
    this.stats = opts.stats;
    this.onBehind = opts.onBehind;
  }

  reads(sessionId: string): boolean {
    return this.sessionId === sessionId;
  }

  /** Writes a status frame the subscriber has not seen. */
  writeStatus(frame: Buffer): void {
    this.statusSent = frame;
    this.write(frame);
  }

  /**
   * History it needs cannot be read from the upstream for now: a `status` whose `upstream_error` says so, while the
   * catch-up keeps trying (its feed's own status follows once it can). Until 7 Dec 2026 the stream was closed after
   * four failed reads, with nothing said, and the reconnects of 40 readers made 5-10 times the upstream calls (an audit).
   */
  historyTrouble(reason: string): void {
    const frame = statusFrameOf(statusJson(this.entry.feed.snapshot, reason));
    if (this.statusSent === null || !this.statusSent.equals(frame)) this.writeStatus(frame);
  }

  /**
   * Writes replayed events [next, next + frames.length), paced by `drained()`
   * rather than judged against the bound (see StreamConnection.writeReplay).
   */
  writeEvents(frames: readonly Frame[]): void {
    const count = frames.length;
    // Small parts joined (a split frame's head and blank line with their neighbours): one HTTP chunk each big part at most.
    if (count === 0 || !this.writeReplay(coalesce(frameParts(frames)))) return;
    this.next += count;
    this.eventsSent += count;
    this.stats.framesDelivered += count;
  }

  onChunk(chunk: Chunk): void {
    // The first readers of a session whose history the loop is still reading get it at the upstream's paging speed:
    // such a reader is catching up, and is paced by its socket as a replay is (dropped only when its socket takes
    // nothing for REPLAY_DRAIN_TIMEOUT_MS), not dropped as slow once a page or two sit unsent (dashboard audit, 7 Dec
    // 2026: a reader taking 100 KB/s dropped after 295 ms of a 4,000-event history). Live, the bound holds.
    if (this.leftBehindOnHistory(this.entry.feed, this, this.onBehind)) return;
    const n = chunk.frames.length;
    if (chunk.status !== null) this.statusSent = chunk.status;
    if (n === 0 || this.next <= chunk.firstIndex) {
      // The common case: a caught-up subscriber gets the very bytes every other one gets.
      this.writeChunk(chunk);
      if (n > 0) {
        this.eventsSent += n;
        this.stats.framesDelivered += n;
        this.next = chunk.firstIndex + n;
      }
      return;
    }
    // Resumed ahead of the feed (Last-Event-ID beyond what it held): skip what it has.
    const skip = this.next - chunk.firstIndex;
    const parts = skip < n ? frameParts(chunk.frames.slice(skip)) : [];
    if (chunk.status) parts.push(chunk.status);
    if (parts.length > 0) this.writeParts(parts);
    if (skip < n) {
      this.eventsSent += n - skip;
      this.stats.framesDelivered += n - skip;
      this.next = chunk.firstIndex + n;
    }
  }

  onEnd(frame: Buffer): void {
    if (this.writeReplay([frame])) this.close('end');
  }
}
