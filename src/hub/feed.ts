/**
 * One session's ordered events (for one include_details value): the buffer,
 * the status snapshot, the terminal flag, and the listeners that receive each
 * batch as shared bytes. De-duplication is by index: an event at or below the
 * last index held is never appended twice.
 */
import { endFrame, eventFrame, statusFrame } from './frames.ts';
import type { SessionState, UpstreamEvent } from '../upstream/types.ts';

/** What one upstream answer added: its events' frames and, if the snapshot changed, the new status frame. */
export interface Chunk {
  /** Index of frames[0]. */
  firstIndex: number;
  /** One frame per event, in index order (possibly empty). */
  frames: Buffer[];
  /** New status frame, written after the events, when the snapshot changed. */
  status: Buffer | null;
  /** frames then status, concatenated once: what a caught-up subscriber receives in one write. */
  bytes: Buffer;
}

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
}

// Only the encoded frame of an event is held (bytes outside the JS heap, so
// a big buffer costs the garbage collector next to nothing); the drop-in
// endpoint, the one reader of parsed events, decodes them again from it.
type Held = Buffer;

/** Bytes an event costs: its frame plus the Buffer object (an estimate). */
const HELD_OVERHEAD_BYTES = 100;
const heldBytes = (h: Held) => h.length + HELD_OVERHEAD_BYTES;

/** The upstream event a frame of `eventFrame` carries (its `data:` line is one JSON object). */
function eventOf(frame: Held): UpstreamEvent {
  const start = frame.indexOf('\ndata: ') + 7;
  const { type, data, timestamp } = JSON.parse(frame.toString('utf8', start, frame.length - 2)) as UpstreamEvent;
  return { type, data, timestamp };
}

/** Initial state before the upstream answered. */
export const UNKNOWN_STATE: SessionState = {
  status: 'unknown',
  started_at: null,
  finished_at: null,
  error: null,
  answer: null,
  metrics: {},
};

/** Creates a feed whose buffer starts at `startIndex`. */
export function createFeed(sessionId: string, includeDetails: boolean, startIndex: number, limits: FeedLimits): Feed {
  return new Feed(sessionId, includeDetails, startIndex, limits);
}

/** One session's event log and fan-out point. */
export class Feed {
  readonly sessionId: string;
  readonly includeDetails: boolean;
  readonly listeners = new Set<FeedListener>();
  private readonly limits: FeedLimits;
  private held: Held[] = [];
  private base: number;
  private heldBytesTotal = 0;
  private snapshot: SessionState = UNKNOWN_STATE;
  private snapshotKey = '';
  private currentStatusFrame: Buffer;
  private upstreamErrorText: string | null = null;
  private finalFrame: Buffer | null = null;
  /**
   * True while the loop's latest answer showed it held everything the upstream
   * had (a short page or a 204); false from a (re)start until then.
   */
  synced = false;

  constructor(sessionId: string, includeDetails: boolean, startIndex: number, limits: FeedLimits) {
    this.sessionId = sessionId;
    this.includeDetails = includeDetails;
    this.base = startIndex;
    this.limits = limits;
    this.currentStatusFrame = statusFrame(UNKNOWN_STATE, null);
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
  get state(): SessionState {
    return this.snapshot;
  }
  /** The snapshot as an encoded `status` frame. */
  get statusFrame(): Buffer {
    return this.currentStatusFrame;
  }
  /** The `end` frame once the session is over and drained, else null. */
  get endFrame(): Buffer | null {
    return this.finalFrame;
  }
  get ended(): boolean {
    return this.finalFrame !== null;
  }
  get upstreamError(): string | null {
    return this.upstreamErrorText;
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

  /** Frames of held events from `from` on, concatenated up to `maxBytes` (at least one frame), with their count; null when none is held. */
  framesSlice(from: number, maxBytes: number): { bytes: Buffer; count: number } | null {
    const start = Math.max(from, this.base) - this.base;
    if (start >= this.held.length) return null;
    const frames: Buffer[] = [];
    let size = 0;
    for (let i = start; i < this.held.length; i++) {
      const frame = this.held[i]!;
      if (frames.length > 0 && size + frame.length > maxBytes) break;
      frames.push(frame);
      size += frame.length;
    }
    return { bytes: frames.length === 1 ? frames[0]! : Buffer.concat(frames, size), count: frames.length };
  }

  /** Sets the snapshot; returns the new status frame if anything a subscriber sees changed. */
  private updateState(state: SessionState): Buffer | null {
    const key = JSON.stringify([state.status, state.started_at, state.finished_at, state.error, state.metrics]);
    this.snapshot = state;
    if (key === this.snapshotKey) return null;
    this.snapshotKey = key;
    this.currentStatusFrame = statusFrame(state, this.upstreamErrorText);
    return this.currentStatusFrame;
  }

  /**
   * Applies one upstream answer whose events are numbered from `fromIndex`,
   * and hands the resulting chunk to every listener. Returns the chunk, or
   * null when nothing changed.
   */
  apply(fromIndex: number, events: readonly UpstreamEvent[], state: SessionState): Chunk | null {
    if (this.ended) return null;
    const frames: Buffer[] = [];
    // Events below nextIndex are already held (a repeated answer): skip them.
    const skip = Math.max(0, this.nextIndex - fromIndex);
    if (fromIndex > this.nextIndex) {
      throw new RangeError(`gap: feed is at ${this.nextIndex}, upstream answered from ${fromIndex}`);
    }
    for (let k = skip; k < events.length; k++) {
      const index = fromIndex + k;
      const event = events[k]!;
      const frame = eventFrame(index, event);
      this.held.push(frame);
      this.heldBytesTotal += heldBytes(frame);
      frames.push(frame);
    }
    const status = this.updateState(state);
    if (frames.length === 0 && status === null) return null;
    const firstIndex = this.nextIndex - frames.length;
    this.trim();
    const bytes = status === null ? (frames.length === 1 ? frames[0]! : Buffer.concat(frames)) : Buffer.concat([...frames, status]);
    const chunk: Chunk = { firstIndex, frames, status, bytes };
    for (const l of this.listeners) l.onChunk(chunk);
    return chunk;
  }

  /** Applies a snapshot without events (a status answer). */
  applyState(state: SessionState): Chunk | null {
    return this.apply(this.nextIndex, [], state);
  }

  /** Marks a lasting upstream refusal (or clears it with null); subscribers get a status frame. */
  setUpstreamError(message: string | null): void {
    if (this.ended || message === this.upstreamErrorText) return;
    this.upstreamErrorText = message;
    this.snapshotKey = '';
    this.applyState(this.snapshot);
  }

  /** Ends the feed: every listener gets the `end` frame; later subscribers get it after replay. */
  end(state: SessionState): void {
    if (this.ended) return;
    const pending = this.updateState(state);
    const last = this.nextIndex > 0 ? this.nextIndex - 1 : null;
    this.finalFrame = endFrame(this.snapshot, last, this.upstreamErrorText);
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const l of listeners) {
      if (pending) l.onChunk({ firstIndex: this.nextIndex, frames: [], status: pending, bytes: pending });
      l.onEnd(this.finalFrame);
    }
  }

  // Drops the oldest events past the limits; they stay fetchable from upstream.
  private trim(): void {
    if (this.held.length <= this.limits.maxEvents && this.heldBytesTotal <= this.limits.maxBytes) return;
    let drop = 0;
    let bytes = this.heldBytesTotal;
    // Drop at least a tenth at once so trimming is amortised, not per event.
    const minDrop = Math.ceil(this.held.length / 10);
    while (drop < this.held.length - 1 && (drop < minDrop || this.held.length - drop > this.limits.maxEvents || bytes > this.limits.maxBytes)) {
      bytes -= heldBytes(this.held[drop]!);
      drop++;
    }
    this.held = this.held.slice(drop);
    this.base += drop;
    this.heldBytesTotal = bytes;
  }
}
