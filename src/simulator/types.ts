/** Which dialect the simulator speaks: the real Agent API (`/api/v2`, 204 after the end) or the simplified one. */
export type ApiDialectName = 'real' | 'simple';

/** Statuses after which a session never changes again (CONTRACT §1). */
export type TerminalStatus = 'completed' | 'failed' | 'timed_out' | 'interrupted';

/** Per-model usage inside `metrics.cost_per_model` (simple dialect). */
export interface ModelCost {
  model: string;
  input_tokens: number;
  output_tokens: number;
  cost: number;
}

/** Per-model usage inside `metrics.cost_per_model` (real dialect, as the Agent API names it). */
export interface RealModelCost {
  name: string;
  input_tokens: number;
  output_tokens: number;
  total_cost: number;
}

/** Usage and cost rolled up to the moment of a response (CONTRACT §1); rows differ by dialect. */
export interface Metrics<Row = ModelCost> {
  steps: number;
  total_cost: number;
  input_cost: number;
  output_cost: number;
  cost_per_model: Row[];
}

/** Metrics as the real dialect reports them. */
export type RealMetrics = Metrics<RealModelCost>;

/** Metrics of either dialect (what a session record holds). */
export type AnyMetrics = Metrics<ModelCost | RealModelCost>;

/** One session event as stored (and as it appears in `new_events` with details included). */
export interface SessionEvent {
  type: string;
  data: Record<string, unknown>;
  timestamp: string;
}

/** An event on the wire of the real dialect: `include_events=false` turns `data` into null. */
export interface RealWireEvent {
  type: string;
  data: Record<string, unknown> | null;
  timestamp: string;
}

/** The body of `GET /sessions/{id}/status` in the simple dialect (and the control API's snapshot). */
export interface SessionSnapshot<M = Metrics> {
  status: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  answer: unknown;
  metrics: M;
}

/** The 200 body of `GET /sessions/{id}/changes` (simple dialect by default). */
export interface TrajectoryChanges<M = Metrics, E = SessionEvent> extends SessionSnapshot<M> {
  new_events: E[];
}

/** The 200 body of `GET /api/v2/sessions/{id}/changes` in the real dialect. */
export type RealTrajectoryChanges = TrajectoryChanges<RealMetrics, RealWireEvent>;

/** One row of `usage_per_model` in the real dialect's status. */
export interface ModelUsage {
  name: string;
  input_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
}

/** The body of `GET /api/v2/sessions/{id}/status` in the real dialect: exactly these fields. */
export interface RealSessionStatus {
  status: string;
  error: string | null;
  steps: number;
  usage_per_model: ModelUsage[];
  subagent_session_ids: string[];
}

/** How `finish` ends a session: status defaults to 'completed', or 'failed' when `error` is given. */
export interface FinishOutcome {
  status?: TerminalStatus;
  /** Default for failed, timed_out and interrupted: a fixed message naming the status. */
  error?: string;
  /** Only for completed (default: the task's answer) and timed_out (default: none). */
  answer?: unknown;
  /** Append the trajectory's closing events first (e.g. answer_event, AgentCompletionEvent); default false. */
  closingEvents?: boolean;
}

/** What `setStatus` changes; the real dialect allows only pending, running, idle and paused, before the end. */
export interface StatusPatch {
  status?: string;
  metrics?: Partial<AnyMetrics>;
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
  /** Simple dialect: approximate size in bytes of each event's `data.details` (default 200). */
  detailBytes?: number;
  /** Real dialect: approximate length of each screenshot's base64 in `data.image` (default 4096; 0 = no screenshot). */
  imageBytes?: number;
  /** The organisation whose keys (`apiKeys`) see the session; absent: every key sees it. */
  organisation?: string;
  /** The `SessionRequest` the REST API shows (default `{agent: 'simulated-web-agent'}`). */
  request?: Record<string, unknown>;
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

/** Which sessions API endpoint a fault applies to: `any` is changes and status (not the list, `GET /sessions`, real dialect). */
export type FaultEndpoint = 'changes' | 'status' | 'list' | 'any';

/** One injected failure, as the client will see it. */
export type Fault =
  /** `detail`: the body is FastAPI's `{"detail": …}` (as the real API's 422s), instead of `{"error": message}`. */
  | { kind: 'http'; status: number; message?: string; detail?: unknown }
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

/** One request body the REST API received for a session (`messages`, `tool_results`): its size and digest. */
export interface ReceivedBody {
  readonly route: 'messages' | 'tool_results';
  readonly bytes: number;
  /** Hex sha256 of the body's bytes exactly as they arrived. */
  readonly sha256: string;
  readonly at: string;
}

/** One sessions-API request as it reached the simulator: the raw request target and headers, byte for byte. */
export interface LoggedRequest {
  readonly method: string;
  /** The request target exactly as sent (path and raw query, repeated keys and their order kept). */
  readonly target: string;
  /** Header names (lower-cased) and values as received; a repeated header keeps every value. */
  readonly headers: Record<string, string[]>;
}

/** Options of `createSimulator`. */
export interface SimulatorOptions {
  /** The dialect served (default 'simple'). */
  api?: ApiDialectName;
  port?: number;
  host?: string;
  demo?: boolean;
  seed?: number;
  maxWaitSeconds?: number;
  maxLimit?: number;
  /** One key that sees every session (today's single key). */
  apiKey?: string;
  /** Keys scoped to an organisation, `{ key: organisation }`: a key sees only its organisation's sessions (and those created with none); another's answers 404. */
  apiKeys?: Record<string, string>;
  authHeader?: string;
  /** Pacing of the runs `POST /sessions` starts (real dialect). */
  run?: { eventEveryMs?: number; events?: number };
}

/** The running simulator: its URLs, the in-process control API and `close()`. */
export interface Simulator {
  /** The API base a client uses: `http://127.0.0.1:PORT/api/v2` (real) or `http://127.0.0.1:PORT` (simple). */
  readonly url: string;
  /** `http://127.0.0.1:PORT`, whatever the dialect. */
  readonly origin: string;
  readonly api: ApiDialectName;
  createSession(id: string, spec?: SessionSpec): void;
  /** Appends the next `count` generated events (real dialect: the next trajectory events). */
  appendEvents(id: string, count?: number): number[];
  /** Ends a session without appending an event (see FinishOutcome). */
  finish(id: string, outcome?: FinishOutcome): void;
  /** Changes status and/or metrics without appending an event. */
  setStatus(id: string, patch: StatusPatch): void;
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
  /** Accepts `key` for `organisation` from now on (real and simple dialects). */
  addKey(key: string, organisation: string): void;
  /** Refuses `key` with 401 from now on (a scoped key or the wide `apiKey`). */
  revokeKey(key: string): void;
  /** The last API requests received (REQUEST_LOG_MAX), as sent: raw target and headers. */
  requests(): LoggedRequest[];
  clearRequests(): void;
  /** The bodies `messages` and `tool_results` received for a session (size and sha256), oldest first. */
  received(id: string): ReceivedBody[];
  /** The organisation that owns a session (undefined: every key sees it). */
  organisationOf(id: string): string | undefined;
  readonly faults: FaultController;
  close(): Promise<void>;
}
