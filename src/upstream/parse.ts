/** Defensive parsing of upstream bodies: shape-checked, never trusted. */
import type { ChangesTop, SessionMetrics, StatusBody, TrajectoryChanges, UpstreamEvent } from './types.ts';

/** Result of a shape check: the value, or why it was refused. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

/** The fields of a changes answer pollcast reads itself; every other field passes through. */
const KNOWN_CHANGES_FIELDS = new Set(['status', 'started_at', 'finished_at', 'error', 'answer', 'metrics', 'new_events']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nullableString(v: unknown): v is string | null | undefined {
  return v === null || v === undefined || typeof v === 'string';
}

/** Checks a `/status` answer: a JSON object whose `status` is a string (everything else is optional and kept). */
export function parseStatusBody(body: unknown): Parsed<StatusBody> {
  if (!isObject(body)) return { ok: false, reason: 'body is not a JSON object' };
  if (typeof body.status !== 'string') return { ok: false, reason: '"status" is not a string' };
  for (const key of ['error', 'finished_at'] as const) {
    if (!nullableString(body[key])) return { ok: false, reason: `"${key}" is not a string or null` };
  }
  return { ok: true, value: body as StatusBody };
}

/** Checks the top-level fields of a `/changes` answer. */
function parseChangesTop(body: Record<string, unknown>): Parsed<ChangesTop> {
  if (typeof body.status !== 'string') return { ok: false, reason: '"status" is not a string' };
  for (const key of ['started_at', 'finished_at', 'error'] as const) {
    if (!nullableString(body[key])) return { ok: false, reason: `"${key}" is not a string or null` };
  }
  const metrics = body.metrics ?? {};
  if (!isObject(metrics)) return { ok: false, reason: '"metrics" is not an object' };
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (!KNOWN_CHANGES_FIELDS.has(k)) extra[k] = v;
  return {
    ok: true,
    value: {
      status: body.status,
      started_at: (body.started_at as string | null | undefined) ?? null,
      finished_at: (body.finished_at as string | null | undefined) ?? null,
      error: (body.error as string | null | undefined) ?? null,
      answer: body.answer ?? null,
      metrics: metrics as SessionMetrics,
      extra,
    },
  };
}

/** Checks a `/changes` 200 answer, including every event's shape. */
export function parseChanges(body: unknown): Parsed<TrajectoryChanges> {
  if (!isObject(body)) return { ok: false, reason: 'body is not a JSON object' };
  const top = parseChangesTop(body);
  if (!top.ok) return top;
  const raw = body.new_events ?? [];
  if (!Array.isArray(raw)) return { ok: false, reason: '"new_events" is not an array' };
  const events: UpstreamEvent[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const e: unknown = raw[i];
    if (!isObject(e) || typeof e.type !== 'string') return { ok: false, reason: `new_events[${i}] has no string "type"` };
    if (!nullableString(e.timestamp)) return { ok: false, reason: `new_events[${i}].timestamp is not a string` };
    events[i] = { type: e.type, data: e.data ?? null, timestamp: (e.timestamp as string | null | undefined) ?? '' };
  }
  return { ok: true, value: { top: top.value, new_events: events } };
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
