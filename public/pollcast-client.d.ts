// Types of pollcast-client.js (hand-written; the wire format is docs/stream-format.md).

/**
 * Usage and cost of a session, as the sessions API reports it: `{}` until the first changes answer, and the
 * API's own field names per model (the Agent API: `name` and `total_cost`; a simplified API: `model` and `cost`).
 */
export interface PollcastMetrics {
  steps?: number;
  total_cost?: number;
  input_cost?: number;
  output_cost?: number;
  cost_per_model?: Array<{ name?: string; model?: string; input_tokens?: number; output_tokens?: number; total_cost?: number; cost?: number; [key: string]: unknown }>;
  [key: string]: unknown;
}

/** One session event (an SSE message without `event:`; its SSE id is `index`). */
export interface PollcastEvent {
  /** Position in the session, from 0, never reused. */
  index: number;
  type: string;
  data: unknown;
  /** ISO 8601. */
  timestamp: string;
}

/** `event: status`: sent first (the snapshot), then on each change of status or metrics. */
export interface PollcastStatus {
  status: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  metrics: PollcastMetrics;
  /** Present while the upstream refuses pollcast (401/403/404); cleared by a later status. */
  upstream_error?: string;
}

/** `event: end`: the session is over and every event was sent; the stream closes. */
export interface PollcastEnd {
  status: string;
  finished_at: string | null;
  error: string | null;
  answer: unknown;
  metrics: PollcastMetrics;
  /** Index of the session's last event, or null when it had none. */
  last_index: number | null;
  /** Present when the stream ended because the upstream kept refusing (lasting 401/403/404). */
  upstream_error?: string;
}

/** Why the stream stopped without `end`. */
export interface PollcastError {
  /**
   * `refused`: the server answered with something other than a stream (404, 401, 403, 429, 503…), or ended it
   * with an `event: error` other than `token_expired`; `expired`: the token expired and `accessToken` is a string,
   * so no fresh one could be had (give a function to renew).
   */
  reason: 'refused' | 'expired';
  /** Last event index received before, or -1. */
  lastIndex: number;
  /**
   * The code of the server's `event: error` (`token_expired`, `access_revoked`…), of a refused open's JSON answer
   * (`session_not_found`, `unauthorized`…), or `token_unavailable` when the token function failed.
   */
  error?: string;
  /** A refused open: the answer's HTTP status (asked again with fetch; EventSource hides it), when it could be learnt. */
  status?: number;
  /** A refused open: the server's words (its JSON `error`), when they could be learnt. */
  message?: string;
}

/**
 * The subscriber token: a string, or a function giving a fresh one (or a promise of it), asked at the
 * first open, when the server says the token expired (`event: error` `token_expired`) and when an open
 * is refused with 401; the stream then resumes where it was, so no event is missed or repeated. A
 * function may return '' or undefined when the token travels in a cookie it has just refreshed.
 */
export type AccessToken = string | (() => string | undefined | Promise<string | undefined>);

export interface ConnectOptions {
  /** JWT sent as `access_token` when pollcast checks tokens (AUTH_JWT_SECRET, AUTH_JWKS_URL). */
  accessToken?: AccessToken;
  /** Send cookies to pollcast on another origin (`EventSource` `withCredentials`), for a token in the AUTH_COOKIE_NAME cookie. */
  withCredentials?: boolean;
  /** First event index wanted (default 0: the whole history). */
  fromIndex?: number;
  /** `false` asks for events without their `details` (smaller frames). Default true. */
  includeDetails?: boolean;
  onEvent: (event: PollcastEvent) => void;
  onStatus: (status: PollcastStatus) => void;
  onEnd: (end: PollcastEnd) => void;
  /** The connection (or a reconnection) is open. */
  onOpen?: () => void;
  /** The connection dropped (the browser reconnects by itself), or the token is being renewed; it resumes after the last event. */
  onReconnecting?: () => void;
  /** The stream stopped for good without `end`; reconnect later yourself if it makes sense. */
  onError?: (error: PollcastError) => void;
}

/** An open stream. */
export interface PollcastStream {
  /** Index of the last event received, or fromIndex - 1 (-1) before the first. */
  readonly lastIndex: number;
  /** True after `end`, `close()` or a refusal. */
  readonly closed: boolean;
  /** Closes the stream (idempotent). */
  close(): void;
}

/** The stream URL of a session (`baseUrl` '' or '/' means this page's origin); `lastEventId` resumes after that index. */
export function streamUrl(baseUrl: string, sessionId: string, options?: { accessToken?: string; fromIndex?: number; includeDetails?: boolean; lastEventId?: number }): string;

/** Opens the stream of one session; it closes itself on `end`. */
export function connect(baseUrl: string, sessionId: string, options: ConnectOptions): PollcastStream;

/** A session event of a multiplexed stream: which session, then the event as `connect` gives it. */
export interface SessionEvent extends PollcastEvent {
  session: string;
}

/** A `status` of a multiplexed stream. */
export interface SessionStatus extends PollcastStatus {
  session: string;
}

/** An `end` of a multiplexed stream (a session that the upstream does not know ends at once with `upstream_error`). */
export interface SessionEnd extends PollcastEnd {
  session: string;
}

/** Why a multiplexed stream stopped without every `end`. */
export interface PollcastManyError {
  /** `refused`: the server answered with something other than a stream (400, 401, 403, 404, 414, 429, 503…) or ended it with an `event: error`; `expired`: the token expired and `accessToken` is a string. */
  reason: 'refused' | 'expired';
  /** As PollcastError's. */
  error?: string;
  /** As PollcastError's. */
  status?: number;
  /** As PollcastError's. */
  message?: string;
}

export interface ConnectManyOptions {
  /** JWT sent as `access_token`; it must cover every session. A function is asked again on expiry and on 401 (see AccessToken). */
  accessToken?: AccessToken;
  /** Send cookies to pollcast on another origin (`EventSource` `withCredentials`). */
  withCredentials?: boolean;
  /** Status and `end` only, no events: cheap live figures (status, steps, cost) for many sessions. */
  overview?: boolean;
  /** First event index wanted in every session (default 0: the whole history). */
  fromIndex?: number;
  /** `false` asks for events without their `details` (smaller frames). Default true. */
  includeDetails?: boolean;
  /** Each session event, once, in index order per session. */
  onEvent?: (event: SessionEvent) => void;
  /** A session's status: first its snapshot, then each change. */
  onStatus?: (status: SessionStatus) => void;
  /** A session is over and every event was sent. */
  onEnd?: (end: SessionEnd) => void;
  /** Every session ended; the stream is closed. */
  onDone?: () => void;
  /** The connection (or a reconnection, or the new connection of `add()`) is open. */
  onOpen?: () => void;
  /** The connection dropped; the browser reconnects by itself and every session resumes where it was. */
  onReconnecting?: () => void;
  /** The stream stopped for good without every `end`. */
  onError?: (error: PollcastManyError) => void;
}

/** An open multiplexed stream. */
export interface PollcastManyStream {
  /** The sessions of the stream, duplicates dropped, in the order given (those added later last). */
  readonly sessions: readonly string[];
  /** Index of the last event received for a session, or fromIndex - 1 (-1) before the first. */
  lastIndex(sessionId: string): number;
  /** True once the session's `end` arrived. */
  ended(sessionId: string): boolean;
  /** True after every `end`, `close()` or a refusal. */
  readonly closed: boolean;
  /**
   * Puts more sessions on the stream (ids it follows already are ignored; one whose `end` came is followed again,
   * from `fromIndex`, its `end` included). The
   * connection is replaced by one for the sessions still open plus the new
   * ones, so no callback misses or repeats anything; but in events mode the
   * sessions it already had are sent again from `fromIndex` and skipped here,
   * so their history crosses the network twice: for sessions with a long
   * history prefer another `connectMany`. Cheap in overview mode (a status per
   * session). `onOpen` runs again. Returns false, adding nothing, once the
   * stream is closed (open another one then).
   */
  add(sessionIds: readonly string[]): boolean;
  /** Closes the stream (idempotent). */
  close(): void;
}

/** The URL of one stream carrying several sessions (`?sessions=a,b`; `baseUrl` '' or '/' means this page's origin). */
export function manyStreamUrl(baseUrl: string, sessionIds: readonly string[], options?: { accessToken?: string; fromIndex?: number; includeDetails?: boolean; overview?: boolean; lastEventId?: string }): string;

/**
 * Opens ONE stream for several sessions; it closes itself once every session
 * ended. A frame that is not a JSON object naming one of its sessions (and, for
 * an event, an integer `index`) is ignored.
 */
export function connectMany(baseUrl: string, sessionIds: readonly string[], options: ConnectManyOptions): PollcastManyStream;

/** Why pollcast refused a stream URL (asked again with fetch): its status and JSON error; undefined when it now streams. */
export function refusalOf(url: string, withCredentials?: boolean): Promise<{ status: number; error: string; code: string } | undefined>;

/** Filters of the session list (`GET /sessions/events`): the upstream list's own (`status` may repeat). */
export type SessionListFilters = Record<string, string | readonly string[] | undefined>;

/** The URL of the live session list with its filters and, for EventSource, the token. */
export function sessionListUrl(baseUrl: string, options?: { filters?: SessionListFilters; accessToken?: string; lastEventId?: string }): string;

/** One session of the list: the upstream's summary, with pollcast's live `status` and `metrics` where a loop runs. */
export interface SessionSummary {
  id: string;
  status: string;
  created_at?: string;
  started_at?: string | null;
  finished_at?: string | null;
  metrics?: { steps?: number; total_cost?: number; [key: string]: unknown };
  [key: string]: unknown;
}

export interface WatchSessionsOptions {
  filters?: SessionListFilters;
  /** A token, or a function asked again when it expires or an open is refused with 401 (as for `connect`). */
  accessToken?: AccessToken;
  /** Send cookies to pollcast on another origin (`EventSource` `withCredentials`), for a token in the AUTH_COOKIE_NAME cookie. */
  withCredentials?: boolean;
  /** The whole list: first, and again when a fresh snapshot replaced the changes missed. */
  onSnapshot?: (list: { items: SessionSummary[]; total: number }) => void;
  onUpsert?: (summary: SessionSummary) => void;
  onRemove?: (removed: { id: string }) => void;
  /** The count of the filter's sessions (the upstream's, for the whole filter when a page is watched) changed. */
  onTotal?: (total: number) => void;
  /** The upstream's list failed (its error) or recovered (null). */
  onTrouble?: (upstreamError: string | null) => void;
  onOpen?: () => void;
  onReconnecting?: () => void;
  /** The list stopped: refused (with the answer's status and error), `token_expired` (a string token) or `access_revoked`. */
  onError?: (error: { reason: string; status?: number; error?: string; code?: string }) => void;
}

/** Watches the live session list; reconnects resume without a repeated change. */
export function watchSessions(baseUrl: string, options: WatchSessionsOptions): { readonly closed: boolean; close(): void };
