/**
 * The load client's per-stream SSE reader: a minimal frame splitter over raw
 * bytes that counts event indices (gaps = lost, repeats = duplicated) and
 * measures latency from each event's `data.emitted_at_ms`. It relies on what
 * both servers under test emit: `\n` line ends, JSON `data` on one line (so a
 * frame ends at the first blank line), and `id: <index>` on event frames. It is
 * not a general EventSource parser (no CR line ends, no multi-line data).
 */

const FRAME_END = Buffer.from('\n\n');
const EMITTED_KEY = Buffer.from('"emitted_at_ms":');
const ID_PREFIX = Buffer.from('id: ');
const END_PREFIX = Buffer.from('event: end\n');
const CHAR_0 = 0x30;
const CHAR_9 = 0x39;
const CHAR_DOT = 0x2e;

/** Wall-clock milliseconds with sub-ms precision, the formula the simulator stamps `emitted_at_ms` with. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
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

/** Counts one stream's event frames. */
export class StreamCounter {
  /** Index the next event should have. */
  next: number;
  /** Event frames received (duplicates included). */
  received = 0;
  /** Indices skipped over (a gap in the ids). */
  gaps = 0;
  /** Event frames at or below an index already received. */
  duplicated = 0;
  /** An `event: end` frame arrived. */
  ended = false;
  private rest: Buffer | null = null;
  private readonly sink: LatencySink;

  constructor(startIndex: number, sink: LatencySink) {
    this.next = startIndex;
    this.sink = sink;
  }

  /** Lost events once the stream should have reached `expectedNext`: gaps plus a missing tail. */
  lost(expectedNext: number): number {
    return this.gaps + Math.max(0, expectedNext - this.next);
  }

  /** Feeds raw body bytes (any split). */
  push(chunk: Buffer): void {
    const buf = this.rest === null ? chunk : Buffer.concat([this.rest, chunk]);
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
    this.rest = at >= buf.length ? null : Buffer.from(buf.subarray(at));
  }

  private onEvent(buf: Buffer, at: number, end: number, now: number): void {
    const index = parseNumber(buf, at + ID_PREFIX.length, end);
    if (Number.isNaN(index)) return;
    this.received++;
    if (index < this.next) {
      this.duplicated++;
    } else {
      this.gaps += index - this.next;
      this.next = index + 1;
    }
    const key = buf.indexOf(EMITTED_KEY, at);
    if (key < 0 || key >= end) return;
    const emitted = parseNumber(buf, key + EMITTED_KEY.length, end);
    if (!Number.isNaN(emitted)) this.sink(now - emitted);
  }
}
