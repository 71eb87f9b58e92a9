/**
 * The pure parts of `GET /v1/stream/sessions/{id}` (a session as a read-only
 * JSON-mode Durable Stream, PROTOCOL.md of durable-streams/durable-streams):
 * offsets, chunk bounds, cursors, ETags, cache headers and message bytes.
 * See docs/durable-streams.md for the mapping.
 */
import { BadRequestError } from '../errors.ts';

/**
 * A reader's position: `events` session events read (the next event is index
 * `events`), the version of the last status message seen (0: none), or past
 * the end record (`closed`).
 */
export type Position = { events: number; status: number; closed: false } | { events: number; closed: true };

/** Digits of each part of an offset: fixed width, so lexicographic order is numeric order. */
export const OFFSET_DIGITS = 16;
/** The second part of the offset after the end record; `e` sorts after every digit. */
const CLOSED_MARK = 'end';
const OFFSET_PATTERN = /^(\d{16})_(\d{16}|end)$/;

/**
 * Events in one catch-up chunk at most; chunks end at multiples of it, so
 * readers starting anywhere meet on the same chunk URLs after one answer (the
 * shared cache's hit rate).
 */
export const CHUNK_EVENTS = 100;
/** Bytes of messages in one chunk at most (at least one event is sent); past it the chunk ends early, at the same event for every reader. */
export const CHUNK_MAX_BYTES = 1024 * 1024;

/**
 * Bytes of messages in one catch-up answer at most: it reads on, chunk after chunk, to the tail (a client's
 * `live: false` makes one request and keeps what it gets), stopping past this at a chunk's end.
 */
export const CATCH_UP_MAX_BYTES = 32 * 1024 * 1024;

/** Cache-Control of an answer whose range can no longer change (its events and, once over, the end record are fixed). */
export const FIXED_MAX_AGE_SECONDS = 31_536_000;
/** Cache-Control of a tail answer and a long-poll 200: PROTOCOL.md section 8.1's values. */
export const TAIL_MAX_AGE_SECONDS = 60;
export const TAIL_STALE_WHILE_REVALIDATE_SECONDS = 300;

/** Cursor intervals (PROTOCOL.md 8.1): 20 s counted from 2024-10-09T00:00:00Z. */
export const CURSOR_INTERVAL_MS = 20_000;
export const CURSOR_EPOCH_MS = Date.UTC(2024, 9, 9);
/** Largest jitter added to a cursor the client already holds (s), as the protocol says (1-3600 s). */
export const CURSOR_MAX_JITTER_SECONDS = 3600;

const pad = (n: number) => String(n).padStart(OFFSET_DIGITS, '0');

/** The start of the stream. */
export const START: Position = { events: 0, status: 0, closed: false };

/** Encodes a position as an opaque, URL-safe offset (`-1` and `now` are never produced). */
export function formatOffset(p: Position): string {
  return `${pad(p.events)}_${p.closed ? CLOSED_MARK : pad(p.status)}`;
}

/** What the `offset` query asks: the start, the tail (`now`), or a position; anything else is a 400. */
export function parseOffset(raw: string | undefined): Position | 'now' {
  if (raw === undefined || raw === '-1') return START;
  if (raw === 'now') return 'now';
  const m = OFFSET_PATTERN.exec(raw);
  const events = m ? Number(m[1]) : NaN;
  if (!m || !Number.isSafeInteger(events)) throw new BadRequestError('invalid offset: expected -1, now, or a Stream-Next-Offset value this stream gave');
  if (m[2] === CLOSED_MARK) return { events, closed: true };
  const status = Number(m[2]);
  if (!Number.isSafeInteger(status)) throw new BadRequestError('invalid offset: expected -1, now, or a Stream-Next-Offset value this stream gave');
  return { events, status, closed: false };
}

/** Read modes: catch-up (no `live`), `long-poll`, `sse`; anything else is a 400. */
export type LiveMode = 'catch-up' | 'long-poll' | 'sse';

export function parseLive(raw: string | undefined): LiveMode {
  if (raw === undefined) return 'catch-up';
  if (raw === 'long-poll' || raw === 'sse') return raw;
  throw new BadRequestError('invalid live: expected long-poll or sse');
}

/** Parses the `cursor` echo (a decimal interval number); absent → undefined. */
export function parseCursor(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,15}$/.test(raw)) throw new BadRequestError('invalid cursor: expected the Stream-Cursor value this stream gave');
  return Number(raw);
}

/**
 * The cursor of a live answer (PROTOCOL.md 8.1): the current interval, or,
 * when the client already holds that one or a later one, its cursor plus
 * 1-3600 s of jitter, so cursors never go back and cached answers age out.
 */
export function nextCursor(client: number | undefined, nowMs: number, random: () => number = Math.random): string {
  const current = Math.floor((nowMs - CURSOR_EPOCH_MS) / CURSOR_INTERVAL_MS);
  if (client === undefined || client < current) return String(current);
  const jitterSeconds = 1 + Math.floor(random() * CURSOR_MAX_JITTER_SECONDS);
  return String(client + Math.max(1, Math.ceil((jitterSeconds * 1000) / CURSOR_INTERVAL_MS)));
}

/** The first event index past the chunk that starts at event `from`. */
export function chunkEnd(from: number): number {
  return (Math.floor(from / CHUNK_EVENTS) + 1) * CHUNK_EVENTS;
}

/** PROTOCOL.md 5.5's ETag, `{stream}:{start}:{end}`, quoted (a strong validator). */
export function etagOf(sessionId: string, start: string, end: string): string {
  return `"${sessionId}:${start}:${end}"`;
}

/** Whether an `If-None-Match` header names `etag` (or is `*`). */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  return ifNoneMatch.split(',').some((t) => {
    const v = t.trim();
    return v === '*' || v === etag || v === `W/${etag}`;
  });
}

/** Cache-Control of a 200 read: fixed ranges for a year, the tail as the protocol suggests; `private` unless the session is public. */
export function cacheControl(isPublic: boolean, fixed: boolean): string {
  const who = isPublic ? 'public' : 'private';
  return fixed ? `${who}, max-age=${FIXED_MAX_AGE_SECONDS}, immutable` : `${who}, max-age=${TAIL_MAX_AGE_SECONDS}, stale-while-revalidate=${TAIL_STALE_WHILE_REVALIDATE_SECONDS}`;
}

/** `{"event": kind, ...fields}` from a frame's JSON object: the status and end records as stream messages. */
export function recordMessage(kind: 'status' | 'end', json: Buffer): Buffer {
  const head = Buffer.from(`{"event":"${kind}"${json.length > 2 ? ',' : ''}`, 'latin1');
  return Buffer.concat([head, json.subarray(1)]);
}

/** One stream message as JSON bytes: one buffer, or parts to be sent in order (a ~100 KB event's, not copied). */
export type Message = Buffer | readonly Buffer[];

const STATUS_RECORD_HEAD = Buffer.from('{"event":"status"', 'latin1');

/** Whether `m` is a status record (recordMessage('status', …)), not an event or the end. */
export function isStatusRecord(m: Message): boolean {
  return Buffer.isBuffer(m) && m.length >= STATUS_RECORD_HEAD.length && m.subarray(0, STATUS_RECORD_HEAD.length).equals(STATUS_RECORD_HEAD);
}

/** A message's size in bytes. */
export function messageBytes(m: Message): number {
  if (Buffer.isBuffer(m)) return m.length;
  let n = 0;
  for (const p of m as readonly Buffer[]) n += p.length;
  return n;
}

function pushMessage(parts: Buffer[], m: Message): void {
  if (Buffer.isBuffer(m)) parts.push(m);
  else parts.push(...(m as readonly Buffer[]));
}

/** A JSON array of messages (each already a JSON value). */
export function jsonArray(messages: readonly Message[]): Buffer {
  const parts: Buffer[] = [OPEN];
  messages.forEach((m, k) => {
    if (k > 0) parts.push(COMMA);
    pushMessage(parts, m);
  });
  parts.push(CLOSE);
  return Buffer.concat(parts);
}

/** Bytes of messages sent per pull of a streamed answer; messages of `STREAM_OWN_PART_BYTES` or more go as they are. */
const STREAM_PART_BYTES = 64 * 1024;
const STREAM_OWN_PART_BYTES = 16 * 1024;

/** The same JSON array as a stream: small messages gathered into parts, large ones sent as they are (never all copied into one buffer). */
export function jsonArrayStream(messages: readonly Message[], hooks: StreamHooks = {}): ReadableStream<Uint8Array> {
  let k = 0;
  let stallTimer: NodeJS.Timeout | undefined;
  let over = false;
  const finish = () => {
    clearTimeout(stallTimer);
    if (over) return;
    over = true;
    hooks.onDone?.();
  };
  // Armed between pulls: a client that stops reading leaves the next pull waiting for the socket to drain. One that
  // reads slowly through a large part still takes bytes meanwhile (fewer are left to send): not a stall.
  let pendingThen = Infinity;
  const watch = () => {
    if (hooks.onStall === undefined || hooks.stallMs === undefined) return;
    clearTimeout(stallTimer);
    pendingThen = hooks.pendingBytes?.() ?? Infinity;
    stallTimer = setTimeout(() => {
      const pending = hooks.pendingBytes?.();
      if (pending !== undefined && pending < pendingThen) return watch();
      finish();
      hooks.onStall?.();
    }, hooks.stallMs);
    stallTimer.unref();
  };
  watch();
  return new ReadableStream<Uint8Array>({
    cancel: finish,
    pull(controller) {
      watch();
      const small: Buffer[] = k === 0 ? [OPEN] : [];
      const flush = () => {
        if (small.length > 0) controller.enqueue(small.length === 1 ? small[0]! : Buffer.concat(small));
        small.length = 0;
      };
      for (let size = 0; k < messages.length && size < STREAM_PART_BYTES; k++) {
        if (k > 0) small.push(COMMA);
        const m = messages[k]!;
        const bytes = messageBytes(m);
        size += bytes;
        if (bytes < STREAM_OWN_PART_BYTES) pushMessage(small, m);
        else {
          flush();
          if (Buffer.isBuffer(m)) controller.enqueue(m);
          else for (const p of m as readonly Buffer[]) controller.enqueue(p);
        }
      }
      if (k === messages.length) small.push(CLOSE);
      flush();
      if (k === messages.length) {
        controller.close();
        finish();
      }
    },
  });
}

/**
 * What a streamed answer tells its sender: done (sent whole, or cancelled), or stalled (for `stallMs` no pull, and
 * no fewer of the bytes written before waiting to go out, by `pendingBytes`).
 */
export interface StreamHooks {
  onDone?: () => void;
  stallMs?: number;
  onStall?: () => void;
  pendingBytes?: () => number;
}

const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');

/** The SSE `data` event carrying a batch (one `data:` line: the JSON array has no raw line break). */
export function sseDataEvent(messages: readonly Message[]): Buffer {
  return Buffer.concat([Buffer.from('event: data\ndata: '), jsonArray(messages), Buffer.from('\n\n')]);
}

/** The SSE `control` event that follows every data event (PROTOCOL.md 5.7), and reports catching up and the close (then without a cursor). */
export function sseControlEvent(next: string, cursor: string, upToDate: boolean, closed: boolean): Buffer {
  // A closed stream has no live future to collapse onto: no cursor (the conformance suite checks it).
  const body: Record<string, unknown> = closed ? { streamNextOffset: next, streamClosed: true } : { streamNextOffset: next, streamCursor: cursor };
  if (upToDate) body.upToDate = true;
  return Buffer.from(`event: control\ndata: ${JSON.stringify(body)}\n\n`);
}
