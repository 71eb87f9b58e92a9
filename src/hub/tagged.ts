/**
 * Frames of a multiplexed stream: the feed's own frames with a `session`
 * field in their JSON. Event frames are never re-encoded: a held frame is
 * `id: N\ndata: {"index":…}\n\n`, so its tagged form is the connection's
 * cursor line, a per-session prefix `data: {"session":"…",` and the held
 * frame's tail after `data: {` (a view on the same bytes, shared by every
 * single and multiplexed subscriber). Status and end frames are rare, so
 * their tagged data is encoded once per frame and cached for every stream.
 */
import { encodeFrame, encodeFrameText } from '../sse.ts';
import { frameData, ownBytes, pushFrame, type Frame } from './frames.ts';

/** `data: {` — where the JSON object of an event frame opens. */
const DATA_OPEN = Buffer.from('\ndata: {', 'latin1');
const STATUS_EVENT = 'status';

/** The per-session start of a tagged event frame's data line. */
export function sessionPrefix(sessionId: string): Buffer {
  // Session ids match the contract's pattern (no quote, backslash or control character).
  return Buffer.from(`data: {"session":${JSON.stringify(sessionId)},`, 'utf8');
}

/** Appends the bytes after `data: {` of a held event frame to `parts` (views, not copies). */
export function pushEventTail(parts: Buffer[], frame: Frame): void {
  const at = parts.length;
  pushFrame(parts, frame);
  // The first part (the frame, or a split frame's head) holds the id line and `data: {`.
  const first = parts[at]!;
  // The id line is short: the search stops within the first few dozen bytes.
  parts[at] = first.subarray(first.indexOf(DATA_OPEN) + DATA_OPEN.length);
}

/** The `id:` line carrying a cursor. */
export function idLine(cursor: string): Buffer {
  return Buffer.from(`id: ${cursor}\n`, 'latin1');
}

/** The JSON of a frame's (single) data line. */
function dataJson(frame: Buffer): Record<string, unknown> {
  return JSON.parse(frameData(frame).toString('utf8')) as Record<string, unknown>;
}

// Keyed by the feed's frame, which belongs to one session: one tagged copy per
// frame for all streams, dropped with the frame.
const taggedStatusCache = new WeakMap<Buffer, Buffer>();
const taggedEndCache = new WeakMap<Buffer, Buffer>();

/** `payload` with `session` first; a `session` field of the upstream's own is replaced. */
function tag(sessionId: string, payload: Record<string, unknown>): string {
  const { session: _replaced, ...rest } = payload;
  return JSON.stringify({ session: sessionId, ...rest });
}

/** The feed's `status` frame with a `session` field. */
export function taggedStatus(sessionId: string, statusFrame: Buffer): Buffer {
  let out = taggedStatusCache.get(statusFrame);
  if (!out) {
    // Kept as long as the feed's frame (a finished feed's, in the cache): in memory of its own (see ownBytes).
    out = ownBytes(encodeFrameText({ event: STATUS_EVENT, data: tag(sessionId, dataJson(statusFrame)) }));
    taggedStatusCache.set(statusFrame, out);
  }
  return out;
}

/**
 * The data part of the feed's `end` frame with a `session` field; the
 * stream writes `event: end` and its cursor line before it.
 */
export function taggedEndData(sessionId: string, endFrame: Buffer): Buffer {
  let out = taggedEndCache.get(endFrame);
  if (!out) {
    out = ownBytes(encodeFrameText({ data: tag(sessionId, dataJson(endFrame)) }));
    taggedEndCache.set(endFrame, out);
  }
  return out;
}

/** `event: end` and the line break before the cursor line. */
export const END_EVENT_LINE = Buffer.from('event: end\n', 'latin1');

/** A tagged status frame built from a payload (sessions that never reached a feed). */
export function taggedStatusOf(sessionId: string, payload: Record<string, unknown>): Buffer {
  return encodeFrame({ event: STATUS_EVENT, data: tag(sessionId, payload) });
}

/** Tagged end data built from a payload (sessions that never reached a feed). */
export function taggedEndDataOf(sessionId: string, payload: Record<string, unknown>): Buffer {
  return encodeFrame({ data: tag(sessionId, payload) });
}
