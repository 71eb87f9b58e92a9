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

/** The state of a session, as `/status` returns it. */
export interface SessionState {
  status: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  answer: unknown;
  metrics: SessionMetrics;
}

/** One event as the upstream sends it; its index is implied by its position. */
export interface UpstreamEvent {
  type: string;
  data: unknown;
  timestamp: string;
}

/** A 200 answer of `/changes`. */
export interface TrajectoryChanges extends SessionState {
  new_events: UpstreamEvent[];
}
