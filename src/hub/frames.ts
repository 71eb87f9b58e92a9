/** The SSE frames of CONTRACT.md section 3, each encoded once and shared by every subscriber. */
import { encodeFrame, encodeFrameText } from '../sse.ts';
import { endPayload, statusPayload, type Snapshot } from '../upstream/snapshot.ts';
import { RAW_EVENT_JSON, type UpstreamEvent } from '../upstream/types.ts';
import { COPY_BELOW_BYTES, totalLength } from './parts.ts';

/** The JSON an event frame carries: `{index, type, data, timestamp}` (and `omitted` for a placeholder). */
export function eventJson(index: number, event: UpstreamEvent): string {
  const body: Record<string, unknown> = { index, type: event.type, data: event.data, timestamp: event.timestamp };
  if (event.omitted !== undefined) body.omitted = event.omitted;
  return JSON.stringify(body);
}

/** A split frame's text may keep alive at most this many times its own bytes (the upstream's answer it is a view on). */
const VIEW_MAX_RETAINED = 2;

/** The blank line that closes every frame's last line. */
const FRAME_END = Buffer.from('\n\n', 'latin1');
/** Where a frame's one `data:` line starts (after the `event:` or `id:` line). */
const DATA_FIELD = '\ndata: ';

/**
 * An event frame kept in parts so that its event's text, big as a
 * screenshot, is never copied: the head (`id: N\ndata: {"index":N,`), then
 * the event's own JSON text after its opening brace (views on the
 * upstream's body, one per socket read it lies in), then the blank line.
 * Its bytes are those parts in turn.
 */
export class SplitFrame {
  readonly head: Buffer;
  readonly text: readonly Buffer[];
  /** Bytes of the frame. */
  readonly length: number;

  constructor(head: Buffer, text: readonly Buffer[]) {
    this.head = head;
    this.text = text;
    this.length = head.length + totalLength(text) + FRAME_END.length;
  }
}

/** An encoded event frame: one buffer, or a screenshot's parts (SplitFrame). Status and end frames are always one buffer. */
export type Frame = Buffer | SplitFrame;

/** Appends the frame's bytes to `parts`: the buffer itself, or a split frame's three parts (none copied). */
export function pushFrame(parts: Buffer[], frame: Frame): void {
  if (Buffer.isBuffer(frame)) parts.push(frame);
  else parts.push(frame.head, ...frame.text, FRAME_END);
}

/** The frames' bytes as parts, in order, none copied. */
export function frameParts(frames: readonly Frame[]): Buffer[] {
  const parts: Buffer[] = [];
  for (const f of frames) pushFrame(parts, f);
  return parts;
}

/** The frame as one buffer: itself, or a copy of a split frame's parts. */
export function frameBytes(frame: Frame): Buffer {
  return Buffer.isBuffer(frame) ? frame : Buffer.concat([frame.head, ...frame.text, FRAME_END], frame.length);
}

/**
 * The JSON object a frame's one `data:` line carries: a view on the frame,
 * or for a split frame its head's `{"index":N,` joined to the text in one
 * copy (its readers are rare: the drop-in endpoint, Durable Stream records,
 * tagged status and end frames).
 */
export function frameData(frame: Frame): Buffer {
  if (Buffer.isBuffer(frame)) return frame.subarray(frame.indexOf(DATA_FIELD) + DATA_FIELD.length, frame.length - FRAME_END.length);
  return Buffer.concat([frame.head.subarray(frame.head.indexOf(DATA_FIELD) + DATA_FIELD.length), ...frame.text]);
}

/** The same JSON object as views, none copied: one buffer, or a split frame's head view and text parts (a Durable Stream answer of many readers at once). */
export function frameDataParts(frame: Frame): Buffer | Buffer[] {
  if (Buffer.isBuffer(frame)) return frameData(frame);
  return [frame.head.subarray(frame.head.indexOf(DATA_FIELD) + DATA_FIELD.length), ...frame.text];
}

/**
 * `text`'s bytes in memory of their own. An event frame lives as long as its session's replay buffer keeps it, and a
 * small Buffer cut from Node's shared pool (64 KiB blocks in Node 24) keeps its whole block alive: a quiet session's
 * few frames, each made between other sessions' (since let go), pinned blocks many times their size (`node --expose-gc
 * bench/pool-pinning.ts`: 5.6 MB of blocks for 786 KB of frames). One allocation per event, not per delivery.
 */
export function ownBytes(text: string, encoding: 'utf8' | 'latin1' = 'utf8'): Buffer {
  const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(text, encoding));
  bytes.write(text, 0, encoding);
  return bytes;
}

/**
 * Encodes session event `index` (no `event:` field, so `onmessage` receives
 * it). An event that carries its own JSON text from the upstream's body
 * (`RAW_EVENT_JSON`: exactly `{type, data, timestamp}`, no line break) is
 * framed from that text with `"index"` put first, never re-serialised: a
 * text of `COPY_BELOW_BYTES` or more (a screenshot) is not copied either,
 * the frame is a SplitFrame over it, when it is most of the memory it lies
 * in (a frame held for replay keeps that memory alive: an answer with one
 * screenshot, not a page of many); else it is copied into one buffer. An
 * event without such text is JSON.stringify'd, which never emits a raw CR
 * or LF (it escapes them), so the data is one `data:` line as it is.
 */
export function eventFrame(index: number, event: UpstreamEvent): Frame {
  const text = event[RAW_EVENT_JSON];
  if (text === undefined || event.omitted !== undefined) return ownBytes(`id: ${index}\ndata: ${eventJson(index, event)}\n\n`);
  const head = `id: ${index}\ndata: {"index":${index},`;
  // The text opens with `{` (and perhaps spaces before its first field): the head stands in for them.
  const rest = afterOpening(text);
  const length = totalLength(rest);
  if (length >= COPY_BELOW_BYTES && retainedBytes(rest) <= VIEW_MAX_RETAINED * length) return new SplitFrame(ownBytes(head, 'latin1'), rest);
  // Not from the pool either (see ownBytes).
  const frame = Buffer.allocUnsafeSlow(head.length + length + FRAME_END.length);
  let at = frame.write(head, 0, 'latin1');
  for (const part of rest) at += part.copy(frame, at);
  FRAME_END.copy(frame, at);
  return frame;
}

/** The text's parts past its opening `{` and the spaces or tabs after it (views, none copied). */
function afterOpening(text: readonly Buffer[]): Buffer[] {
  let from = 1;
  for (let k = 0; k < text.length; k++, from = 0) {
    const part = text[k]!;
    while (from < part.length && (part[from] === 0x20 || part[from] === 0x09)) from++;
    if (from < part.length) return [from === 0 ? part : part.subarray(from), ...text.slice(k + 1)];
  }
  return [];
}

/** Bytes of memory the parts keep alive (each part's whole buffer: a socket read, or a page of several events). */
function retainedBytes(parts: readonly Buffer[]): number {
  let n = 0;
  for (const p of parts) n += p.buffer.byteLength;
  return n;
}

/** Encodes an `event: status` frame from its JSON. */
export function statusFrameOf(json: string): Buffer {
  // Held by its feed as long as the feed lives (a finished one, in the cache): in memory of its own (see ownBytes).
  return ownBytes(encodeFrameText({ event: 'status', data: json }));
}

/** The `status` frame's JSON for a snapshot. */
export function statusJson(s: Snapshot, upstreamError: string | null): string {
  return JSON.stringify(statusPayload(s, upstreamError));
}

/** Encodes the final `event: end` frame. */
export function endFrame(s: Snapshot, lastIndex: number | null, upstreamError: string | null): Buffer {
  return ownBytes(encodeFrameText({ event: 'end', data: JSON.stringify(endPayload(s, lastIndex, upstreamError)) }));
}

/** Encodes the last frame of a stream whose access ended: `event: error` with `{"error": code}` (e.g. `token_expired`). */
export function accessErrorFrame(code: string): Buffer {
  return encodeFrame({ event: 'error', data: JSON.stringify({ error: code }) });
}

/** Encodes the `retry:` field that opens every stream. */
export function retryFrame(retryMs: number): Buffer {
  return Buffer.from(`retry: ${retryMs}\n\n`, 'utf8');
}
