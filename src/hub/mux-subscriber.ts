/**
 * One multiplexed SSE connection: several sessions on one stream, each a lane
 * with the single stream's guarantees (status first, every event once in
 * order, `end` last), every frame tagged with its session, and every event
 * and `end` frame carrying the stream's cursor as its SSE id, so a reconnect
 * resumes each session exactly. The response ends once every lane ended.
 */
import type { Chunk } from './feed.ts';
import { statusFrameOf, statusJson, type Frame } from './frames.ts';
import type { FeedEntry } from './hub.ts';
import type { FeedReader } from './catch-up.ts';
import { StreamConnection, type CloseReason, type ConnectionOptions } from './connection.ts';
import { CursorWriter, ENDED } from './cursor.ts';
import { coalesce } from './parts.ts';
import { END_EVENT_LINE, pushEventTail, idLine, sessionPrefix, taggedEndData, taggedEndDataOf, taggedStatus, taggedStatusOf } from './tagged.ts';
import type { StreamResponse } from './writer.ts';
import type { Stats } from '../metrics.ts';
import { NOT_FOUND_TEXT } from '../upstream/refusal.ts';

/** `events`: status, events and end per session; `overview`: status and end only. */
export type MuxMode = 'events' | 'overview';

/** One session of a multiplexed stream, as the route opens it. */
export interface LaneSpec {
  sessionId: string;
  /** Its cursor value at open: ENDED (already delivered, nothing is sent), or the next index needed + 1. */
  value: number;
  /** The acquired feed, or null when the session is ENDED or was not found upstream. */
  entry: FeedEntry | null;
}

export interface MuxOptions {
  maxQueueBytes: number;
  onClose: (sub: MuxSubscriber, reason: CloseReason) => void;
  /** As StreamSubscriber's `onBehind`, for one lane (already out of its feed's listeners). */
  onLaneBehind: (sub: MuxSubscriber, lane: MuxLane) => void;
  stats: Stats;
}

/** What a session that the upstream does not know gets: a status and an `end` saying so. */
const notFoundStatus = { status: 'unknown', started_at: null, finished_at: null, error: null, metrics: {}, upstream_error: NOT_FOUND_TEXT };
const notFoundEnd = { status: 'unknown', finished_at: null, error: null, answer: null, metrics: {}, last_index: null, upstream_error: NOT_FOUND_TEXT };

/** One session of a multiplexed stream: a reader of its feed. */
export class MuxLane implements FeedReader {
  next: number;
  statusSent: Buffer | null = null;
  ended: boolean;
  readonly sessionId: string;
  /** Position in the cursor (the stream's canonical order). */
  readonly slot: number;
  readonly entry: FeedEntry | null;
  /** `data: {"session":"…",`: the start of this session's tagged event frames. */
  readonly prefix: Buffer;
  private readonly stream: MuxSubscriber;

  constructor(stream: MuxSubscriber, slot: number, spec: LaneSpec) {
    this.stream = stream;
    this.slot = slot;
    this.sessionId = spec.sessionId;
    this.entry = spec.entry;
    this.ended = spec.value === ENDED;
    this.next = spec.value === ENDED ? 0 : spec.value - 1;
    this.prefix = sessionPrefix(spec.sessionId);
  }

  get closed(): boolean {
    return this.stream.closed;
  }
  get signal(): AbortSignal {
    return this.stream.signal;
  }
  drained(timeoutMs: number): Promise<boolean> {
    return this.stream.drained(timeoutMs);
  }
  close(reason: CloseReason): void {
    this.stream.close(reason);
  }
  writeEvents(frames: readonly Frame[]): void {
    this.stream.replayEvents(this, frames);
  }
  writeStatus(frame: Buffer): void {
    this.statusSent = frame;
    this.stream.write(taggedStatus(this.sessionId, frame));
  }
  historyTrouble(reason: string): void {
    const feed = this.entry?.feed;
    if (!feed) return;
    const frame = statusFrameOf(statusJson(feed.snapshot, reason));
    if (this.statusSent === null || !this.statusSent.equals(frame)) this.writeStatus(frame);
  }
  onChunk(chunk: Chunk): void {
    this.stream.liveChunk(this, chunk);
  }
  onEnd(frame: Buffer): void {
    this.stream.endLane(this, taggedEndData(this.sessionId, frame));
  }
  historyRefused(): void {
    this.stream.write(taggedStatusOf(this.sessionId, notFoundStatus));
    this.stream.endLane(this, taggedEndDataOf(this.sessionId, notFoundEnd));
  }
}

/** A stream of several sessions on one response. */
export class MuxSubscriber extends StreamConnection {
  /** Lanes in the canonical order (the cursor's). */
  readonly lanes: readonly MuxLane[];
  readonly mode: MuxMode;
  /** Event frames written. */
  eventsSent = 0;
  private readonly cursor: CursorWriter;
  private readonly stats: Stats;
  private lanesOpen = 0;
  /** `onLaneBehind` for this stream, made once (not per chunk). */
  private readonly rejoinLane: (lane: MuxLane) => void;

  constructor(res: StreamResponse, key: Buffer, specs: readonly LaneSpec[], mode: MuxMode, opts: MuxOptions) {
    // The connection calls it with this very stream.
    super(res, { maxQueueBytes: opts.maxQueueBytes, onClose: opts.onClose as ConnectionOptions['onClose'] });
    this.mode = mode;
    this.stats = opts.stats;
    this.rejoinLane = (lane) => opts.onLaneBehind(this, lane);
    this.cursor = new CursorWriter(key, specs.map((s) => s.value));
    this.lanes = specs.map((spec, slot) => new MuxLane(this, slot, spec));
    for (const lane of this.lanes) if (!lane.ended) this.lanesOpen++;
  }

  reads(sessionId: string): boolean {
    return this.lanes.some((l) => l.sessionId === sessionId && !l.ended);
  }

  /**
   * The opening write: `retry:` (none when a held stream sent it already),
   * then the status snapshot of every session still open, then the `end` of
   * those the upstream does not know (they go no further).
   */
  begin(retry: Buffer | null): void {
    const parts: Buffer[] = retry ? [retry] : [];
    const notFound: MuxLane[] = [];
    for (const lane of this.lanes) {
      if (lane.ended) continue;
      const feed = lane.entry?.feed;
      if (!feed) {
        parts.push(taggedStatusOf(lane.sessionId, notFoundStatus));
        notFound.push(lane);
        continue;
      }
      lane.statusSent = feed.statusFrame;
      parts.push(taggedStatus(lane.sessionId, feed.statusFrame));
    }
    this.write(Buffer.concat(parts));
    for (const lane of notFound) this.endLane(lane, taggedEndDataOf(lane.sessionId, notFoundEnd));
  }

  /** Writes replayed events of `lane` (paced by the caller, not judged against the bound). */
  replayEvents(lane: MuxLane, frames: readonly Frame[]): void {
    const parts: Buffer[] = [];
    const first = lane.next;
    for (let k = 0; k < frames.length; k++) this.pushEvent(parts, lane, first + k, frames[k]!);
    if (parts.length > 0 && this.writeReplay(coalesce(parts))) this.delivered(frames.length);
  }

  /** Live output of `lane`'s feed: its new events (those the lane lacks) and, in either mode, a new status. */
  liveChunk(lane: MuxLane, chunk: Chunk): void {
    // As a single stream's (StreamSubscriber.onChunk): a lane whose loop still reads the history is caught up again.
    if (this.mode === 'events' && lane.entry !== null && this.leftBehindOnHistory(lane.entry.feed, lane, this.rejoinLane)) return;
    const parts: Buffer[] = [];
    let events = 0;
    if (this.mode === 'events') {
      const n = chunk.frames.length;
      for (let k = Math.max(0, lane.next - chunk.firstIndex); k < n; k++) {
        this.pushEvent(parts, lane, chunk.firstIndex + k, chunk.frames[k]!);
        events++;
      }
    }
    if (chunk.status !== null) {
      lane.statusSent = chunk.status;
      parts.push(taggedStatus(lane.sessionId, chunk.status));
    }
    if (parts.length === 0) return;
    this.writeParts(parts);
    if (events > 0 && !this.closed) this.delivered(events);
  }

  /** Writes `lane`'s `end` with the cursor marking it over; the response ends after the last lane's. */
  endLane(lane: MuxLane, endData: Buffer): void {
    if (lane.ended || this.closed) return;
    lane.ended = true;
    this.cursor.set(lane.slot, ENDED);
    if (!this.writeReplay([END_EVENT_LINE, idLine(this.cursor.text()), endData])) return;
    if (--this.lanesOpen === 0) this.close('end');
  }

  // One tagged event frame: this connection's cursor after the event, the session's
  // prefix, and the held frame's shared tail.
  private pushEvent(parts: Buffer[], lane: MuxLane, index: number, frame: Frame): void {
    lane.next = index + 1;
    this.cursor.set(lane.slot, index + 2);
    parts.push(idLine(this.cursor.text()), lane.prefix);
    pushEventTail(parts, frame);
  }

  private delivered(count: number): void {
    this.eventsSent += count;
    this.stats.framesDelivered += count;
  }
}
