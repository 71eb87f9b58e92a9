/**
 * The load client's per-stream SSE reader: a minimal frame splitter over raw
 * bytes that counts event indices (gaps = lost, repeats = duplicated, events
 * before the stream's resume point = stale) and measures latency from each
 * event's `data.emitted_at_ms`. It relies on what
 * both servers under test emit: `\n` line ends, JSON `data` on one line (so a
 * frame ends at the first blank line), and `id: <index>` on event frames. It is
 * not a general EventSource parser (no CR line ends, no multi-line data).
 */
import { wallClockMs } from '../src/simulator/clock.ts';

const FRAME_END = Buffer.from('\n\n');
const LF = 0x0a;
const EMITTED_KEY = Buffer.from('"emitted_at_ms":');
const ID_PREFIX = Buffer.from('id: ');
const END_PREFIX = Buffer.from('event: end\n');
const CHAR_0 = 0x30;
const CHAR_9 = 0x39;
const CHAR_DOT = 0x2e;

/** Wall-clock milliseconds with sub-ms precision, the clock the simulator stamps `emitted_at_ms` with. */
export function nowMs(): number {
  return wallClockMs();
}

function startsWith(buf: Buffer, at: number, prefix: Buffer): boolean {
  if (at + prefix.length > buf.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[at + i] !== prefix[i]) return false;
  return true;
}

// Digits, optionally with a fraction; NaN when none are there.
function parseNumber(buf: Buffer, at: number, limit: number): number {
  let value = 0;
  let digits = 0;
  let i = at;
  for (; i < limit; i++) {
    const c = buf[i]!;
    if (c < CHAR_0 || c > CHAR_9) break;
    value = value * 10 + (c - CHAR_0);
    digits++;
  }
  if (i < limit && buf[i] === CHAR_DOT) {
    let scale = 0.1;
    for (i++; i < limit; i++) {
      const c = buf[i]!;
      if (c < CHAR_0 || c > CHAR_9) break;
      value += (c - CHAR_0) * scale;
      scale /= 10;
    }
  }
  return digits === 0 ? Number.NaN : value;
}

/** Receives one latency sample (ms) per event frame that carried `emitted_at_ms`. */
export type LatencySink = (ms: number) => void;

/** Where a stream starts and which of its events are timed. */
export interface CounterOptions {
  /** Index of the first event the stream asked for (Last-Event-ID + 1; 0 for a fresh stream). */
  startIndex?: number;
  /** Only events at or after this index give latency samples (a resume's replayed events were emitted long before). */
  latencyFromIndex?: number;
}

/** Counts one stream's event frames. */
export class StreamCounter {
  /** Index of the first event the stream asked for. */
  readonly startIndex: number;
  /** Index the next event should have. */
  next: number;
  /** Event frames received (duplicates and stale ones included). */
  received = 0;
  /** Indices skipped over (a gap in the ids). */
  gaps = 0;
  /** Event frames at or below an index already received on this stream. */
  duplicated = 0;
  /** Event frames before `startIndex`: history the client already had (a server that ignores Last-Event-ID sends them). */
  stale = 0;
  /** Wall-clock ms (nowMs) when the first event at or after `startIndex` arrived; null until then. */
  firstAtMs: number | null = null;
  /** An `event: end` frame arrived. */
  ended = false;
  // Chunks of a frame not yet complete; joined only once its end arrives, so a
  // 100 KB frame read in many chunks is copied once, not once per chunk.
  private pending: Buffer[] = [];
  private readonly sink: LatencySink;
  private readonly latencyFromIndex: number;

  constructor(sink: LatencySink, options: CounterOptions = {}) {
    this.startIndex = options.startIndex ?? 0;
    this.next = this.startIndex;
    this.latencyFromIndex = options.latencyFromIndex ?? 0;
    this.sink = sink;
  }

  /** Lost events once the stream should have reached `expectedNext`: gaps plus a missing tail. */
  lost(expectedNext: number): number {
    return this.gaps + Math.max(0, expectedNext - this.next);
  }

  /** Feeds raw body bytes (any split). */
  push(chunk: Buffer): void {
    if (this.pending.length > 0) {
      const last = this.pending[this.pending.length - 1]!;
      const endSpansChunks = last[last.length - 1] === LF && chunk[0] === LF;
      if (!endSpansChunks && chunk.indexOf(FRAME_END) < 0) {
        this.pending.push(chunk);
        return;
      }
    }
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([...this.pending, chunk]);
    let at = 0;
    let now = 0;
    for (;;) {
      const end = buf.indexOf(FRAME_END, at);
      if (end < 0) break;
      if (startsWith(buf, at, ID_PREFIX)) {
        now ||= nowMs();
        this.onEvent(buf, at, end, now);
      } else if (startsWith(buf, at, END_PREFIX)) {
        this.ended = true;
      }
      at = end + FRAME_END.length;
    }
    // Copy the partial frame so the big chunk it came in is not kept alive.
    this.pending = at >= buf.length ? [] : [Buffer.from(buf.subarray(at))];
  }

  private onEvent(buf: Buffer, at: number, end: number, now: number): void {
    const index = parseNumber(buf, at + ID_PREFIX.length, end);
    if (Number.isNaN(index)) return;
    this.received++;
    if (index < this.startIndex) {
      this.stale++;
      return;
    }
    this.firstAtMs ??= now;
    if (index < this.next) {
      this.duplicated++;
    } else {
      this.gaps += index - this.next;
      this.next = index + 1;
    }
    if (index < this.latencyFromIndex) return;
    const key = buf.indexOf(EMITTED_KEY, at);
    if (key < 0 || key >= end) return;
    const emitted = parseNumber(buf, key + EMITTED_KEY.length, end);
    if (!Number.isNaN(emitted)) this.sink(now - emitted);
  }
}
