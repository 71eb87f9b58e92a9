/**
 * One session's ordered events (for one include_events value): the buffer,
 * the status snapshot, the terminal flag, and the listeners that receive each
 * batch as shared bytes. It is what a loop writes into (a LoopSink), directly
 * in one process or through the shared log in cluster mode. De-duplication is
 * by index: an event at or below the last index held is never appended twice.
 */
import { endFrame, eventFrame, frameData, frameParts, statusFrameOf, statusJson, type Frame } from './frames.ts';
import { statusSaysOver, UNKNOWN_SNAPSHOT, type Snapshot } from '../upstream/snapshot.ts';
import type { EmptyAnswerStyle, LoopSink, LoopUpdate } from '../upstream/sink.ts';
import type { UpstreamEvent } from '../upstream/types.ts';
import { CallerCredentials } from '../upstream/credential.ts';
import { coalesce, hasBigPart, totalLength } from './parts.ts';
import { refusalStatus } from '../upstream/refusal.ts';

/** What one update added: its events' frames and, if what subscribers see changed, the new status frame. */
export class Chunk {
  /** Index of frames[0]. */
  readonly firstIndex: number;
  /** One frame per event, in index order (possibly empty). */
  readonly frames: Frame[];
  /** New status frame, written after the events, when the snapshot changed. */
  readonly status: Buffer | null;
  private joined: Buffer | null = null;
  private framed: Buffer | readonly Buffer[] | null = null;

  constructor(firstIndex: number, frames: Frame[], status: Buffer | null) {
    this.firstIndex = firstIndex;
    this.frames = frames;
    this.status = status;
  }

  /** frames then status, as one buffer, built once for every subscriber that needs it (HTTP/2, a response not yet direct). */
  get bytes(): Buffer {
    if (this.joined === null) {
      const parts = frameParts(this.frames);
      if (this.status !== null) parts.push(this.status);
      this.joined = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    }
    return this.joined;
  }

  /**
   * The same bytes as one HTTP/1.1 chunk (size line, data, CRLF), built once
   * for every caught-up HTTP/1.1 subscriber. Frames of ordinary size are
   * framed in one copy, so each subscriber gets one write of one buffer (a
   * page of a hundred small events too: the copy is made once, the writes
   * are per subscriber). A chunk holding a big part (a screenshot's text)
   * stays in the buffers it is shared in, its small parts joined around it,
   * given as the parts of one write, so the big part is never copied
   * (bench/RESULTS.md, issue 21, sixth and tenth rounds).
   */
  http1(): Buffer | readonly Buffer[] {
    if (this.framed === null) {
      const parts = frameParts(this.frames);
      if (this.status !== null) parts.push(this.status);
      const size = totalLength(parts);
      parts.unshift(Buffer.from(`${size.toString(16)}\r\n`, 'latin1'));
      parts.push(CRLF);
      this.framed = hasBigPart(parts) ? coalesce(parts) : Buffer.concat(parts);
    }
    return this.framed;
  }
}

const CRLF = Buffer.from('\r\n', 'latin1');

/** Receives a feed's live output; implemented by stream subscribers and long-poll waiters. */
export interface FeedListener {
  onChunk(chunk: Chunk): void;
  onEnd(frame: Buffer): void;
}

/** Bounds of one feed's buffer. */
export interface FeedLimits {
  /** Events kept per session; past it the oldest are dropped (fetched again from upstream on demand). */
  maxEvents: number;
  /** Approximate bytes kept per session (encoded frames); same overflow rule. */
  maxBytes: number;
  /**
   * The bytes a running feed may keep now as its share of one budget for all
   * of them (REPLAY_MAX_BYTES over the running feeds); the smaller bound wins.
   * An ended feed keeps `maxBytes` (the cache's own budget bounds it).
   */
  share?: () => number;
}

/** Why a feed ended: the session is over, or the upstream kept refusing (not cached as finished). */
export type EndReason = 'over' | 'refused';

// Only the encoded frame of an event is held (bytes outside the JS heap, so
// a big buffer costs the garbage collector next to nothing; a screenshot's
// frame is a view on the upstream's body, which it keeps alive); the drop-in
// endpoint, the one reader of parsed events, decodes them again from it.
type Held = Frame;

/**
 * Bytes an event costs besides its frame's: the Buffer and ArrayBuffer objects, the backing store's record and
 * malloc's bookkeeping. Measured in RSS, 456-518 B a frame for frames of 122-502 B (`node --expose-gc
 * bench/frame-overhead.ts N`, N = 20, 100, 400, one process each, 6 Dec 2026); counted as 100 before, which let a
 * budget of ~200 B frames take about 2.2 times its size in RSS.
 */
export const HELD_OVERHEAD_BYTES = 500;
const heldBytes = (h: Held) => h.length + HELD_OVERHEAD_BYTES;

/** The upstream event a frame of `eventFrame` carries. */
function eventOf(frame: Held): UpstreamEvent {
  const { type, data, timestamp, omitted } = JSON.parse(frameData(frame).toString('utf8')) as UpstreamEvent;
  return omitted === undefined ? { type, data, timestamp } : { type, data, timestamp, omitted };
}

/** Creates a feed whose buffer starts at `startIndex` (or, `startAtHead`, wherever its loop finds the session's last event). */
export function createFeed(sessionId: string, includeEvents: boolean, startIndex: number, limits: FeedLimits, startAtHead = false): Feed {
  const feed = new Feed(sessionId, includeEvents, startIndex, limits);
  feed.startAtHead = startAtHead;
  return feed;
}

/** One session's event log and fan-out point. */
export class Feed implements LoopSink {
  readonly sessionId: string;
  readonly includeEvents: boolean;
  readonly listeners = new Set<FeedListener>();
  /** Called after every update and at the end, whatever changed (waiting drop-in long-polls: "caught up" is not a frame). */
  readonly watchers = new Set<() => void>();
  /** Callers' credentials the upstream accepted for this session (AUTH=upstream, no UPSTREAM_API_KEY): what its loop runs on. Kept in memory only, never in Redis. */
  readonly callers = new CallerCredentials();
  private readonly limits: FeedLimits;
  private held: Held[] = [];
  private base: number;
  private heldBytesTotal = 0;
  private snap: Snapshot = UNKNOWN_SNAPSHOT;
  private goingOnSnap: Snapshot | null = null;
  private overSince = 0;
  private statusKey = '';
  private currentStatusFrame: Buffer;
  private statusSince = 0;
  private upstreamErrorText: string | null = null;
  /** When (monotonic ms) the loop's updates began to show the refusal (401/403/404) they show now; null while they show none. */
  private refusedAtMs: number | null = null;
  /** When events last came (ms since the epoch; 0 when never): a session that just sent some is running. */
  private eventsAtMs = 0;
  private finalFrame: Buffer | null = null;
  private endReason: EndReason | null = null;
  /**
   * True while the loop's latest answer showed it held everything the upstream
   * had (a 204 or an empty page); false from a (re)start until then.
   */
  synced = false;
  /**
   * True once the feed's current loop has read up to date (`synced`), and from then on (`supplyStarts`): before, it is reading the
   * session's history, and its pages reach the first readers at the upstream's speed, as a replay would.
   */
  caughtUpOnce = false;
  /**
   * Events appended by loops (history read for late readers not counted): what a `feed stopped` line counts. Not
   * `nextIndex` moved, which a start past the session's end moves back (an operator audit saw `events: -99980`).
   */
  eventsAppended = 0;
  /** True while the loop's latest changes call failed: what the feed holds may be behind the upstream (LoopUpdate.failing). */
  failing = false;
  /** While `failing`: when the loop (here or on the leading instance) asks the upstream again (ms since the epoch); 0: not said. */
  retryAtMs = 0;
  /** Created for status-only readers: its loop may start at the session's last event (no history read). */
  startAtHead = false;
  /** How the upstream answers "nothing new" (the drop-in answers the same way); undefined until seen. */
  emptyStyle: EmptyAnswerStyle | undefined;

  constructor(sessionId: string, includeEvents: boolean, startIndex: number, limits: FeedLimits) {
    this.sessionId = sessionId;
    this.includeEvents = includeEvents;
    this.base = startIndex;
    this.limits = limits;
    this.statusKey = statusJson(UNKNOWN_SNAPSHOT, null);
    this.currentStatusFrame = statusFrameOf(this.statusKey);
  }

  /** Index of the oldest event held. */
  get baseIndex(): number {
    return this.base;
  }
  /** Index the next upstream event will have. */
  get nextIndex(): number {
    return this.base + this.held.length;
  }
  /** The latest snapshot. */
  get snapshot(): Snapshot {
    return this.snap;
  }
  /** The latest snapshot whose `/status` answer said the session goes on; null when none was held. */
  get goingOnSnapshot(): Snapshot | null {
    return this.goingOnSnap;
  }
  /** Since when (ms since the epoch) the snapshot's `/status` answer says the session is over; 0 while it does not. */
  get overSinceMs(): number {
    return this.overSince;
  }
  /** The snapshot as an encoded `status` frame. */
  get statusFrame(): Buffer {
    return this.currentStatusFrame;
  }
  /**
   * When the current status frame was first recorded (ms since the epoch): the shared log's time when its update
   * carried one (cluster mode), else this instance's clock when the frame changed here.
   */
  get statusSinceMs(): number {
    return this.statusSince;
  }
  /** The `end` frame once the session is over and drained, else null. */
  get endFrame(): Buffer | null {
    return this.finalFrame;
  }
  get ended(): boolean {
    return this.finalFrame !== null;
  }
  /** Why the feed ended, or null while it goes on. */
  get endedBy(): EndReason | null {
    return this.endReason;
  }
  /** When events last came to this feed (ms since the epoch; 0 when never). */
  get lastEventsAtMs(): number {
    return this.eventsAtMs;
  }

  get upstreamError(): string | null {
    return this.upstreamErrorText;
  }
  /** How long the refusal that `upstreamError` shows has lasted, as heard here (ms); 0 when it shows none. */
  get refusedForMs(): number {
    return this.refusedAtMs === null ? 0 : performance.now() - this.refusedAtMs;
  }
  /**
   * A new supply starts on this feed (one kept in the idle cache): what it holds is the stopped loop's, maybe behind
   * the upstream, so it is neither up to date nor read up to date until the new loop says so (a Durable `offset=now`
   * or HEAD whose new loop was refused a while named the stopped loop's tail). A refusal still shown is the stopped
   * one's, and ages again only once the new one shows it.
   */
  supplyStarts(): void {
    this.synced = false;
    this.caughtUpOnce = false;
    this.refusedAtMs = null;
  }
  /** Approximate memory held (bytes). */
  get bytes(): number {
    return this.heldBytesTotal;
  }

  /** Events [from, to) that are held, clipped to what is held. */
  eventsBetween(from: number, to: number): UpstreamEvent[] {
    const start = Math.max(from, this.base) - this.base;
    const end = Math.min(to, this.nextIndex) - this.base;
    const out: UpstreamEvent[] = [];
    for (let i = start; i < end; i++) out.push(eventOf(this.held[i]!));
    return out;
  }

  /** Frames of held events from `from` on, up to `maxBytes` in all (at least one frame); null when none is held. */
  heldFrames(from: number, maxBytes: number): Frame[] | null {
    const start = Math.max(from, this.base) - this.base;
    if (start >= this.held.length) return null;
    const frames: Frame[] = [];
    let size = 0;
    for (let i = start; i < this.held.length; i++) {
      const frame = this.held[i]!;
      if (frames.length > 0 && size + frame.length > maxBytes) break;
      frames.push(frame);
      size += frame.length;
    }
    return frames;
  }

  /**
   * Records one step of the loop and hands the resulting chunk to every
   * listener. Always accepted in process (true).
   */
  publish(update: LoopUpdate): boolean {
    if (this.ended) return true;
    if (update.fromIndex > this.nextIndex) {
      throw new RangeError(`gap: feed is at ${this.nextIndex}, update starts at ${update.fromIndex}`);
    }
    const frames: Frame[] = [];
    // Events below nextIndex are already held (a repeated answer): skip them.
    for (let k = Math.max(0, this.nextIndex - update.fromIndex); k < update.events.length; k++) {
      const frame = eventFrame(update.fromIndex + k, update.events[k]!);
      this.held.push(frame);
      this.heldBytesTotal += heldBytes(frame);
      frames.push(frame);
    }
    this.synced = update.synced;
    if (update.synced) this.caughtUpOnce = true;
    this.failing = update.failing === true;
    this.retryAtMs = this.failing ? (update.retryAtMs ?? 0) : 0;
    if (update.emptyStyle) this.emptyStyle = update.emptyStyle;
    const status = this.updateSnapshot(update.snapshot, update.upstreamError, update.statusSinceMs);
    if (frames.length > 0) {
      this.eventsAppended += frames.length;
      this.trim();
      this.eventsAtMs = Date.now();
    }
    if (frames.length > 0 || status !== null) {
      const chunk = new Chunk(this.nextIndex - frames.length, frames, status);
      for (const l of this.listeners) l.onChunk(chunk);
    }
    if (update.end) this.end(update.end);
    for (const w of this.watchers) w();
    return true;
  }

  /** Moves the start of an empty buffer (the loop found the requested start beyond the session's events). */
  rebase(index: number): void {
    if (this.held.length === 0) this.base = index;
  }

  /**
   * Adds history fetched for a subscriber that resumed before the buffer,
   * when it ends exactly where the buffer starts and fits the limits, so the
   * next subscriber is served from memory. `frames` are `eventFrame(fromIndex + k, …)`.
   * Returns whether they were kept.
   */
  prependFrames(fromIndex: number, frames: Frame[]): boolean {
    if (frames.length === 0 || fromIndex + frames.length !== this.base || fromIndex < 0) return false;
    const bytes = frames.reduce((n, f) => n + f.length, 0);
    if (!this.fits(frames.length, bytes)) return false;
    this.held = frames.concat(this.held);
    this.base = fromIndex;
    this.heldBytesTotal += bytes + frames.length * HELD_OVERHEAD_BYTES;
    return true;
  }

  /** Whether `count` more frames of `bytes` together would stay within the limits (history the hub collects ahead of `prependFrames`). */
  fits(count: number, bytes: number): boolean {
    return this.held.length + count <= this.limits.maxEvents && this.heldBytesTotal + bytes + count * HELD_OVERHEAD_BYTES <= this.byteLimit();
  }

  // The bytes this feed may keep now: its own bound, or its share of the running feeds' budget while it runs.
  private byteLimit(): number {
    const { maxBytes, share } = this.limits;
    return share === undefined || this.ended ? maxBytes : Math.min(maxBytes, share());
  }

  /** Sets the snapshot; returns the new status frame if anything a subscriber sees changed. */
  private updateSnapshot(s: Snapshot, upstreamError: string | null, sinceMs: number | undefined): Buffer | null {
    this.snap = s;
    if (s.statusBody !== null && !statusSaysOver(s.statusBody)) {
      this.goingOnSnap = s;
      this.overSince = 0;
    } else if (s.statusBody !== null && this.overSince === 0) this.overSince = Date.now();
    this.upstreamErrorText = upstreamError;
    // A duration, so the monotonic clock; one refusal turning into another (404 after 401) goes on aging.
    if (upstreamError === null || refusalStatus(upstreamError) === null) this.refusedAtMs = null;
    else this.refusedAtMs ??= performance.now();
    const key = statusJson(s, upstreamError);
    if (key === this.statusKey) return null;
    this.statusKey = key;
    this.currentStatusFrame = statusFrameOf(key);
    this.statusSince = sinceMs ?? Date.now();
    return this.currentStatusFrame;
  }

  // Ends the feed: every listener gets the `end` frame; later subscribers get it after replay.
  private end(reason: EndReason): void {
    const last = this.nextIndex > 0 ? this.nextIndex - 1 : null;
    this.endReason = reason;
    this.finalFrame = endFrame(this.snap, last, this.upstreamErrorText);
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const l of listeners) l.onEnd(this.finalFrame);
  }

  /**
   * Drops the oldest events past the limits; they stay fetchable from
   * upstream. Run on each append, and by the hub when the running feeds'
   * share shrinks (a quiet feed would keep its larger one).
   */
  trim(): void {
    const maxBytes = this.byteLimit();
    if (this.held.length <= this.limits.maxEvents && this.heldBytesTotal <= maxBytes) return;
    let drop = 0;
    let bytes = this.heldBytesTotal;
    // Drop at least a tenth at once so trimming is amortised, not per event.
    const minDrop = Math.ceil(this.held.length / 10);
    while (drop < this.held.length - 1 && (drop < minDrop || this.held.length - drop > this.limits.maxEvents || bytes > maxBytes)) {
      bytes -= heldBytes(this.held[drop]!);
      drop++;
    }
    this.held = this.held.slice(drop);
    this.base += drop;
    this.heldBytesTotal = bytes;
  }
}
