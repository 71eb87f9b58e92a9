/** Defensive parsing of upstream bodies: shape-checked, never trusted. */
import type { SessionMetrics, SessionState, TrajectoryChanges, UpstreamEvent } from './types.ts';

/** Result of a shape check: the value, or why it was refused. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nullableString(v: unknown): v is string | null | undefined {
  return v === null || v === undefined || typeof v === 'string';
}

/** Checks the fields shared by `/status` and `/changes` answers. */
export function parseState(body: unknown): Parsed<SessionState> {
  if (!isObject(body)) return { ok: false, reason: 'body is not a JSON object' };
  if (typeof body.status !== 'string') return { ok: false, reason: '"status" is not a string' };
  for (const key of ['started_at', 'finished_at', 'error'] as const) {
    if (!nullableString(body[key])) return { ok: false, reason: `"${key}" is not a string or null` };
  }
  const metrics = body.metrics ?? {};
  if (!isObject(metrics)) return { ok: false, reason: '"metrics" is not an object' };
  return {
    ok: true,
    value: {
      status: body.status,
      started_at: (body.started_at as string | null | undefined) ?? null,
      finished_at: (body.finished_at as string | null | undefined) ?? null,
      error: (body.error as string | null | undefined) ?? null,
      answer: body.answer ?? null,
      metrics: metrics as SessionMetrics,
    },
  };
}

/** Checks a `/changes` 200 answer, including every event's shape. */
export function parseChanges(body: unknown): Parsed<TrajectoryChanges> {
  const state = parseState(body);
  if (!state.ok) return state;
  const raw = (body as Record<string, unknown>).new_events;
  if (!Array.isArray(raw)) return { ok: false, reason: '"new_events" is not an array' };
  const events: UpstreamEvent[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const e: unknown = raw[i];
    if (!isObject(e) || typeof e.type !== 'string') return { ok: false, reason: `new_events[${i}] has no string "type"` };
    if (!nullableString(e.timestamp)) return { ok: false, reason: `new_events[${i}].timestamp is not a string` };
    events[i] = { type: e.type, data: e.data ?? null, timestamp: (e.timestamp as string | null | undefined) ?? '' };
  }
  return { ok: true, value: { ...state.value, new_events: events } };
}

/** Parses a Retry-After header (delta-seconds or HTTP date) into milliseconds. */
export function parseRetryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const date = Date.parse(v);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}
