/** Per-model usage inside `metrics.cost_per_model`. */
export interface ModelCost {
  model: string;
  input_tokens: number;
  output_tokens: number;
  cost: number;
}

/** Usage and cost rolled up to the moment of a response (CONTRACT §1). */
export interface Metrics {
  steps: number;
  total_cost: number;
  input_cost: number;
  output_cost: number;
  cost_per_model: ModelCost[];
}

/** One session event as it appears in `new_events`. */
export interface SessionEvent {
  type: string;
  data: Record<string, unknown>;
  timestamp: string;
}

/** The body of `GET /sessions/{id}/status`. */
export interface SessionSnapshot {
  status: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  answer: unknown;
  metrics: Metrics;
}

/** The 200 body of `GET /sessions/{id}/changes`. */
export interface TrajectoryChanges extends SessionSnapshot {
  new_events: SessionEvent[];
}

/** How a test session is created and driven (all fields optional). */
export interface SessionSpec {
  /** Events that already exist at creation (default 0). */
  initialEvents?: number;
  /** Create already finished (after initialEvents): status 'completed', answer set. */
  finished?: boolean;
  /** If set, a timer appends `batchSize` events every emitEveryMs. */
  emitEveryMs?: number;
  /** Events per timer tick (default 1; a burst is a big batch). */
  batchSize?: number;
  /** The timer stops once it emitted this many events. */
  emitCount?: number;
  /** Finish once emitCount is reached (default true when emitCount is set). */
  finishAfterEmit?: boolean;
  /** Approximate size in bytes of each event's `data.details` (default 200). */
  detailBytes?: number;
}

/** Request counters for one session id (counted even for unknown ids). */
export interface SessionStats {
  changes: number;
  status: number;
  inFlightChanges: number;
  maxInFlightChanges: number;
  changesByWait: { zero: number; waiting: number };
  faultsServed: number;
}

/** How many session ids have counters: existing sessions, and unknown or deleted ids (bounded). */
export interface StatsSize {
  sessions: number;
  unknown: number;
}

/** Counters over every session, plus requests that name no session. */
export interface TotalStats extends SessionStats {
  requests: number;
}

/** One row of `GET /sessions` and `listSessions()`. */
export interface SessionSummary {
  id: string;
  status: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  events: number;
  steps: number;
  total_cost: number;
}

/** Which sessions API endpoint a fault applies to. */
export type FaultEndpoint = 'changes' | 'status' | 'any';

/** One injected failure, as the client will see it. */
export type Fault =
  | { kind: 'http'; status: number; message?: string }
  | { kind: 'rate-limit'; retryAfterSeconds: number }
  | { kind: 'reset' }
  | { kind: 'hang' }
  | { kind: 'slow-body'; chunkDelayMs: number; chunks?: number }
  | { kind: 'invalid-json' }
  | { kind: 'truncated' }
  | { kind: 'no-change' }
  | { kind: 'short-limit'; max: number }
  /** A normal 200 answer with `body` merged over it (top level), to make endpoints disagree. */
  | { kind: 'patch'; body: Record<string, unknown> };

/** Which requests a fault rule matches: one session or all, one endpoint or both. */
export interface FaultScope {
  session?: string;
  endpoint?: FaultEndpoint;
}

/** A seeded random fault rule: each matching request fails with probability `rate`. */
export interface RandomFaultOptions extends FaultScope {
  seed: number;
  rate: number;
  kinds: Fault[];
}

/** Scripted and random fault injection for the sessions API. */
export interface FaultController {
  /** Queues faults, consumed one per matching request in order. */
  script(faults: Fault[], scope?: FaultScope): void;
  /** Adds a seeded random rule; rules are evaluated after scripted faults. */
  random(options: RandomFaultOptions): void;
  /** Drops every queued fault and random rule. */
  clear(): void;
  /** Scripted faults not yet consumed. */
  pending(): number;
}

/** Options of `createSimulator`. */
export interface SimulatorOptions {
  port?: number;
  host?: string;
  demo?: boolean;
  seed?: number;
  maxWaitSeconds?: number;
  maxLimit?: number;
  apiKey?: string;
  authHeader?: string;
}

/** The running simulator: its URL, the in-process control API and `close()`. */
export interface Simulator {
  readonly url: string;
  createSession(id: string, spec?: SessionSpec): void;
  appendEvents(id: string, count?: number): number[];
  finish(id: string, outcome?: { error?: string; answer?: unknown }): void;
  setStatus(id: string, patch: { status?: string; metrics?: Partial<Metrics> }): void;
  deleteSession(id: string): void;
  eventCount(id: string): number;
  events(id: string): SessionEvent[];
  listSessions(): SessionSummary[];
  stats(id: string): SessionStats;
  allStats(): Record<string, SessionStats>;
  /** Ids with counters now; unknown ids are kept in a bounded LRU (UNKNOWN_STATS_MAX_IDS). */
  statsSize(): StatsSize;
  totals(): TotalStats;
  totalRequests(): number;
  resetStats(): void;
  readonly faults: FaultController;
  close(): Promise<void>;
}
