/**
 * What the loop knows of a session, merged from two endpoints that each see
 * part of it: `/changes` carries started_at, finished_at, answer, metrics and
 * unknown fields; `/status` is authoritative for status and error (and for
 * termination) but carries none of the rest. Merging never blanks a field an
 * answer does not carry, and once a `/status` answer arrived, changes answers
 * no longer move the status: the two may disagree for a while (a lagging
 * replica), and a subscriber must not see the status flap between them.
 */
import { TERMINAL_STATUSES, type ChangesTop, type SessionMetrics, type StatusBody, type UpstreamEvent } from './types.ts';

/** The merged view of a session. */
export interface Snapshot {
  readonly status: string;
  readonly started_at: string | null;
  readonly finished_at: string | null;
  readonly error: string | null;
  readonly answer: unknown;
  readonly metrics: SessionMetrics;
  /** Changes fields pollcast does not know, passed through. */
  readonly extra: Readonly<Record<string, unknown>>;
  /** The last `/status` answer as the upstream sent it (the drop-in `/status` answers from it), or null. */
  readonly statusBody: Readonly<StatusBody> | null;
  /** When `statusBody` arrived (ms since the epoch; 0 when never). */
  readonly statusAtMs: number;
}

/** Before the upstream answered anything. */
export const UNKNOWN_SNAPSHOT: Snapshot = Object.freeze({
  status: 'unknown',
  started_at: null,
  finished_at: null,
  error: null,
  answer: null,
  metrics: {},
  extra: {},
  statusBody: null,
  statusAtMs: 0,
});

/** True once any answer described the session. */
export function isKnown(s: Snapshot): boolean {
  return s !== UNKNOWN_SNAPSHOT && s.status !== 'unknown';
}

/** Merges a changes answer: everything but status and error, which `/status` owns once it answered. */
export function withChanges(prev: Snapshot, top: ChangesTop): Snapshot {
  const authoritative = prev.statusBody !== null;
  return {
    status: authoritative ? prev.status : top.status,
    error: authoritative ? prev.error : top.error,
    started_at: top.started_at ?? prev.started_at,
    // A finished_at an answer no longer carries is kept (a simplified upstream may leave it out after the end),
    // unless /status says the session runs: one that a claim of the end brought, which /status denied, goes once
    // the upstream says null (until 6 Dec 2026 it stayed in every status for good).
    finished_at: top.finished_at ?? (prev.statusBody !== null && !statusSaysOver(prev.statusBody) ? null : prev.finished_at),
    answer: top.answer ?? prev.answer,
    metrics: top.metrics,
    extra: top.extra,
    statusBody: prev.statusBody,
    statusAtMs: prev.statusAtMs,
  };
}

/** Merges a `/status` answer: it updates status and error and keeps everything else. */
export function withStatus(prev: Snapshot, body: StatusBody, nowMs = Date.now()): Snapshot {
  return {
    ...prev,
    status: body.status,
    error: 'error' in body ? (body.error ?? null) : prev.error,
    statusBody: body,
    statusAtMs: nowMs,
  };
}

/** A `/status` answer that says the session is over: a terminal status, or (simplified upstreams) a finished_at. */
export function statusSaysOver(body: StatusBody): boolean {
  return TERMINAL_STATUSES.has(body.status) || (typeof body.finished_at === 'string' && body.finished_at !== '');
}

/** A changes answer that claims the end; `/status` must confirm it before pollcast believes it. */
export function changesClaimOver(top: ChangesTop): boolean {
  return TERMINAL_STATUSES.has(top.status) || top.finished_at !== null;
}

/**
 * The `status` event's data: `{status, started_at, finished_at, error, metrics}`, unknown fields, and `upstream_error`
 * while the upstream fails. A `finished_at` goes out with a status that says the session is over (contract section 1:
 * non-null once it is): one a changes answer claimed while `/status` still says it runs is shown once `/status`
 * confirms the end (milliseconds later; until 6 Dec 2026 a frame said `running` with it, an audit found).
 */
export function statusPayload(s: Snapshot, upstreamError: string | null): Record<string, unknown> {
  const out: Record<string, unknown> = { ...s.extra, status: s.status, started_at: s.started_at, finished_at: confirmedFinishedAt(s), error: s.error, metrics: s.metrics };
  if (upstreamError !== null) out.upstream_error = upstreamError;
  return out;
}

/** `finished_at` once `/status` confirms the end (or none was asked), null while it says the session runs. */
function confirmedFinishedAt(s: Snapshot): string | null {
  const unconfirmed = s.statusBody !== null && !statusSaysOver(s.statusBody) && !TERMINAL_STATUSES.has(s.status);
  return unconfirmed ? null : s.finished_at;
}

/** The `end` event's data: `{status, finished_at, error, answer, metrics, last_index}` and unknown fields. */
export function endPayload(s: Snapshot, lastIndex: number | null, upstreamError: string | null): Record<string, unknown> {
  const out: Record<string, unknown> = { ...s.extra, status: s.status, finished_at: s.finished_at, error: s.error, answer: s.answer, metrics: s.metrics, last_index: lastIndex };
  if (upstreamError !== null) out.upstream_error = upstreamError;
  return out;
}

/**
 * A drop-in `/changes` 200 body (the upstream's TrajectoryChanges shape). Its `finished_at` as a status event's: a
 * claim of the end that `/status` denies is not passed on beside `running` (an SDK loop takes a non-null one as the
 * end: until 7 Dec 2026 one stopped at 17 of 150 events on such a claim, an audit found).
 */
export function changesBody(s: Snapshot, events: readonly UpstreamEvent[]): Record<string, unknown> {
  return { ...s.extra, status: s.status, started_at: s.started_at, finished_at: confirmedFinishedAt(s), error: s.error, answer: s.answer, metrics: s.metrics, new_events: events };
}

/**
 * A drop-in `/status` body: the upstream's last `/status` answer with what the
 * loop learnt since (status and error; `steps` from newer metrics; a
 * simplified upstream's snapshot fields), or the real API's shape built from
 * the snapshot when no `/status` answer is held.
 */
export function statusDropInBody(s: Snapshot): Record<string, unknown> {
  const steps = typeof s.metrics.steps === 'number' ? s.metrics.steps : undefined;
  if (s.statusBody === null) return { status: s.status, error: s.error, steps: steps ?? 0, usage_per_model: [], subagent_session_ids: [] };
  const out: Record<string, unknown> = { ...s.statusBody, status: s.status, error: s.error };
  // Steps only grow: the newer of the two counts.
  if (steps !== undefined && typeof out.steps === 'number') out.steps = Math.max(steps, out.steps);
  for (const key of ['started_at', 'finished_at', 'answer', 'metrics'] as const) if (key in out) out[key] = s[key];
  return out;
}
