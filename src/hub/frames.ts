/** The SSE frames of CONTRACT.md section 3, each encoded once and shared by every subscriber. */
import { encodeFrame } from '../sse.ts';
import type { SessionState, UpstreamEvent } from '../upstream/types.ts';

/** Encodes session event `index` (no `event:` field, so `onmessage` receives it). */
export function eventFrame(index: number, event: UpstreamEvent): Buffer {
  const data = JSON.stringify({ index, type: event.type, data: event.data, timestamp: event.timestamp });
  return encodeFrame({ id: String(index), data });
}

/** The `status` payload: the snapshot, plus `upstream_error` while the upstream keeps refusing. */
export function statusPayload(state: SessionState, upstreamError: string | null): Record<string, unknown> {
  const payload: Record<string, unknown> = {
    status: state.status,
    started_at: state.started_at,
    finished_at: state.finished_at,
    error: state.error,
    metrics: state.metrics,
  };
  if (upstreamError !== null) payload.upstream_error = upstreamError;
  return payload;
}

/** Encodes an `event: status` frame. */
export function statusFrame(state: SessionState, upstreamError: string | null): Buffer {
  return encodeFrame({ event: 'status', data: JSON.stringify(statusPayload(state, upstreamError)) });
}

/** Encodes the final `event: end` frame. */
export function endFrame(state: SessionState, lastIndex: number | null, upstreamError: string | null): Buffer {
  const payload: Record<string, unknown> = {
    status: state.status,
    finished_at: state.finished_at,
    error: state.error,
    answer: state.answer,
    metrics: state.metrics,
    last_index: lastIndex,
  };
  if (upstreamError !== null) payload.upstream_error = upstreamError;
  return encodeFrame({ event: 'end', data: JSON.stringify(payload) });
}

/** Encodes the `retry:` field that opens every stream. */
export function retryFrame(retryMs: number): Buffer {
  return Buffer.from(`retry: ${retryMs}\n\n`, 'utf8');
}
