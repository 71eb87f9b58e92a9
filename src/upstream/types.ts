/** Shapes of the sessions API (CONTRACT.md section 1). */

/** Usage and cost rolled up to the moment of the response. */
export interface SessionMetrics {
  steps?: number;
  total_cost?: number;
  input_cost?: number;
  output_cost?: number;
  cost_per_model?: unknown[];
  [key: string]: unknown;
}

/**
 * The top-level fields of a `/changes` 200 answer (everything but
 * `new_events`). Fields pollcast does not know (`outcome`, `error_code`, …)
 * are kept in `extra` and passed through.
 */
export interface ChangesTop {
  status: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  answer: unknown;
  metrics: SessionMetrics;
  extra: Record<string, unknown>;
}

/**
 * A `/status` answer as the upstream sent it: the real API's
 * `{status, error, steps, usage_per_model, subagent_session_ids}`, or a
 * simplified upstream's whole snapshot. Only `status` is required.
 */
export interface StatusBody {
  status: string;
  error?: string | null;
  finished_at?: string | null;
  [key: string]: unknown;
}

/**
 * The key of an event's own JSON text in the body it came in (views on the body's chunks, in
 * order, not a copy), set by
 * the client only where that text can stand for the event (src/upstream/event-spans.ts).
 * A symbol, so JSON.stringify (the cluster log) never writes it.
 */
export const RAW_EVENT_JSON: unique symbol = Symbol('raw event JSON');

/** One event as the upstream sends it; its index is implied by its position. */
export interface UpstreamEvent {
  type: string;
  data: unknown;
  timestamp: string;
  /** Set by pollcast for an event it could not relay (larger than the body cap): why its data is missing. */
  omitted?: string;
  /** The upstream's own text of exactly `{type, data, timestamp}` (its bytes in parts), when the body allowed it to be located. */
  [RAW_EVENT_JSON]?: readonly Buffer[];
}

/** A 200 answer of `/changes`. */
export interface TrajectoryChanges {
  top: ChangesTop;
  new_events: UpstreamEvent[];
}

/** Statuses after which a session never changes again (contract section 1). */
export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(['completed', 'failed', 'timed_out', 'interrupted']);
/** Statuses of a session that goes on (contract section 1: not the end). */
export const GOING_ON_STATUSES: ReadonlySet<string> = new Set(['pending', 'running', 'paused', 'idle']);
