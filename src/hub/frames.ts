/** The SSE frames of CONTRACT.md section 3, each encoded once and shared by every subscriber. */
import { encodeFrame } from '../sse.ts';
import { endPayload, statusPayload, type Snapshot } from '../upstream/snapshot.ts';
import { RAW_EVENT_JSON, type UpstreamEvent } from '../upstream/types.ts';

/** The JSON an event frame carries: `{index, type, data, timestamp}` (and `omitted` for a placeholder). */
export function eventJson(index: number, event: UpstreamEvent): string {
  const body: Record<string, unknown> = { index, type: event.type, data: event.data, timestamp: event.timestamp };
  if (event.omitted !== undefined) body.omitted = event.omitted;
  return JSON.stringify(body);
}

/**
 * Encodes session event `index` (no `event:` field, so `onmessage` receives
 * it). An event that carries its own JSON text from the upstream's body
 * (`RAW_EVENT_JSON`: exactly `{type, data, timestamp}`, no line break) is
 * framed from that text with `"index"` put first: a screenshot is copied
 * once, never re-serialised. Otherwise JSON.stringify, which never emits a
 * raw CR or LF (it escapes them), so the data is one `data:` line as it is.
 */
export function eventFrame(index: number, event: UpstreamEvent): Buffer {
  const text = event[RAW_EVENT_JSON];
  if (text === undefined || event.omitted !== undefined) return Buffer.from(`id: ${index}\ndata: ${eventJson(index, event)}\n\n`, 'utf8');
  const head = `id: ${index}\ndata: {"index":${index},`;
  // The text opens with `{` (and perhaps spaces before its first field): the head stands in for them.
  let from = 1;
  while (text[from] === 0x20 || text[from] === 0x09) from++;
  const frame = Buffer.allocUnsafe(head.length + text.length - from + 2);
  frame.write(head, 0, 'latin1');
  text.copy(frame, head.length, from);
  frame[frame.length - 2] = 0x0a;
  frame[frame.length - 1] = 0x0a;
  return frame;
}

/** Encodes an `event: status` frame from its JSON. */
export function statusFrameOf(json: string): Buffer {
  return encodeFrame({ event: 'status', data: json });
}

/** The `status` frame's JSON for a snapshot. */
export function statusJson(s: Snapshot, upstreamError: string | null): string {
  return JSON.stringify(statusPayload(s, upstreamError));
}

/** Encodes the final `event: end` frame. */
export function endFrame(s: Snapshot, lastIndex: number | null, upstreamError: string | null): Buffer {
  return encodeFrame({ event: 'end', data: JSON.stringify(endPayload(s, lastIndex, upstreamError)) });
}

/** Encodes the last frame of a stream whose access ended: `event: error` with `{"error": code}` (e.g. `token_expired`). */
export function accessErrorFrame(code: string): Buffer {
  return encodeFrame({ event: 'error', data: JSON.stringify({ error: code }) });
}

/** Encodes the `retry:` field that opens every stream. */
export function retryFrame(retryMs: number): Buffer {
  return Buffer.from(`retry: ${retryMs}\n\n`, 'utf8');
}
