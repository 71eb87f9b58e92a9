/**
 * The sessions API client: one undici keep-alive pool per upstream origin,
 * every outcome classified into a typed result (never a thrown string).
 */
import { Pool, type Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { parseChanges, parseRetryAfterMs, parseStatusBody } from './parse.ts';
import { attachEventText } from './event-spans.ts';
import { Body } from './body.ts';
import type { StatusBody, TrajectoryChanges } from './types.ts';
import type { UpstreamCredential } from './credential.ts';

/** Why a call did not produce data. */
export type FailureOutcome =
  | { kind: 'not-found' }
  | { kind: 'unauthorized'; status: number }
  | { kind: 'rate-limited'; retryAfterMs: number | undefined }
  /** `filterRefused`: a list's 400/422 naming the viewer's own filters (list-client.ts), the viewer's to fix. */
  /** `hung`: the call got no answer (or its answer stalled) until it was abandoned: the wait plus the margin went by in silence. */
  | { kind: 'transient'; reason: string; status?: number; filterRefused?: true; hung?: true }
  | { kind: 'bad-body'; reason: string }
  /** The body passed the size cap: ask for fewer events (the caller's job, it knows the limit). */
  | { kind: 'too-large'; maxBytes: number }
  | { kind: 'aborted' };

/** Outcome of `GET /sessions/{id}/changes`. */
export type ChangesOutcome = { kind: 'events'; changes: TrajectoryChanges; bytes: number } | { kind: 'no-change' } | FailureOutcome;

/** Outcome of `GET /sessions/{id}/status`. */
export type StatusOutcome = { kind: 'state'; body: StatusBody } | FailureOutcome;

/** Parameters of one changes call. */
export interface ChangesQuery {
  fromIndex: number;
  limit: number;
  /** `include_events`: whether event details are included. */
  includeEvents: boolean;
  waitSeconds: number;
}

/** The upstream endpoints pollcast calls itself (a metrics label). */
export type UpstreamEndpoint = 'changes' | 'status' | 'list';

/** Called once per finished upstream request (metrics). */
export type UpstreamObserver = (endpoint: UpstreamEndpoint, outcome: string, seconds: number) => void;

/** A raw answer: status, headers and the body read (within the size cap). */
export interface RawAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The body's UTF-8 decoding, made on each read (read it once). */
  readonly text: string;
  readonly bytes: number;
  /** The body as read, in its chunks: changes answers locate their events' own JSON text in it. */
  readonly body: Body;
}

/**
 * An answer as the handler hands it over. Its text is decoded when read, not
 * kept: the promises a long-poll resolves were made seconds earlier and sit
 * in the old generation, and a dead old object's pointers keep what they
 * reach alive through every young collection until the next full one. Kept
 * here, a screenshot's ~100 KB of text would be promoted with each answer;
 * the body is outside the JS heap and is not copied by a collection.
 */
class BodyAnswer implements RawAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly bytes: number;
  readonly body: Body;

  constructor(status: number, headers: IncomingHttpHeaders, bytes: number, body: Body) {
    this.status = status;
    this.headers = headers;
    this.bytes = bytes;
    this.body = body;
  }

  get text(): string {
    return this.body.text();
  }
}

export interface UpstreamClientOptions {
  baseUrl: string;
  apiKey?: string | undefined;
  /** Send the key raw in this header instead of `Authorization: Bearer`. */
  authHeader?: string | undefined;
  /** Added to `wait_for_seconds` before a silent connection is abandoned. */
  timeoutMarginMs?: number;
  /** Bodies larger than this are abandoned as `too-large`. */
  maxBodyBytes?: number;
  observe?: UpstreamObserver;
  /** A 404 that names no session (a route the upstream does not have: UPSTREAM_URL likely lacks the API's path). */
  onRouteNotFound?: (path: string) => void;
}

/** Time an answer may take beyond the long-poll wait before the request is abandoned. */
/**
 * Whether a 404 body says the route is missing rather than the session: not JSON (a web server's or a
 * proxy's page), a framework's bare "Not Found", or a "no route" message.
 */
export function isRouteNotFound(text: string): boolean {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return true;
  }
  if (typeof body !== 'object' || body === null) return true;
  const said = (body as { detail?: unknown; error?: unknown; message?: unknown });
  const message = [said.detail, said.error, said.message].find((v) => typeof v === 'string') as string | undefined;
  return message === undefined ? false : /^not found$|^no route/i.test(message.trim());
}

export const DEFAULT_TIMEOUT_MARGIN_MS = 10_000;
/** Largest upstream body read (bytes); larger → too-large, and the caller asks for fewer events. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

/**
 * Talks to one sessions API. A call given a `credential` (a caller's own
 * upstream key, AUTH=upstream) sends it in place of the operator's key.
 */
export interface UpstreamClient {
  changes(sessionId: string, query: ChangesQuery, signal?: AbortSignal, credential?: UpstreamCredential): Promise<ChangesOutcome>;
  status(sessionId: string, signal?: AbortSignal, credential?: UpstreamCredential): Promise<StatusOutcome>;
  /**
   * A plain GET of `path` below the base URL's path (e.g. `/sessions?page=1`), on the same pool, budget
   * and body cap, sent with `credential` instead of the operator's key when given; other calls
   * (the session list) build on it and classify the answer with `failureOf` and `parseJsonText`.
   */
  get(endpoint: UpstreamEndpoint, path: string, credential: UpstreamCredential | undefined, signal?: AbortSignal): Promise<RawAnswer | FailureOutcome>;
  /** Reports a finished call of `get` to the observer (metrics), with the outcome its caller classified. */
  observe(endpoint: UpstreamEndpoint, outcome: string, seconds: number): void;
  close(): Promise<void>;
}

/** The failure a non-200 status stands for. */
export function failureOf(status: number, resHeaders: IncomingHttpHeaders): FailureOutcome {
  if (status === 404) return { kind: 'not-found' };
  if (status === 401 || status === 403) return { kind: 'unauthorized', status };
  if (status === 429) return { kind: 'rate-limited', retryAfterMs: parseRetryAfterMs(resHeaders['retry-after']) };
  return { kind: 'transient', reason: `HTTP ${status}`, status };
}

/** Whether a 422 body is FastAPI's validation error for a path parameter (`{"detail": [{"loc": ["path", …]}]}`). */
export function refusesPathParameter(text: string): boolean {
  const json = parseJsonText(text);
  if (!json.ok || typeof json.value !== 'object' || json.value === null) return false;
  const detail = (json.value as { detail?: unknown }).detail;
  return Array.isArray(detail) && detail.some((d) => typeof d === 'object' && d !== null && Array.isArray((d as { loc?: unknown }).loc) && (d as { loc: unknown[] }).loc[0] === 'path');
}

/** Socket and undici error codes in words a status banner can show (the system's own `E…` codes kept beside them). */
const FAILURE_WORDS: Readonly<Record<string, string>> = {
  UND_ERR_CONNECT_TIMEOUT: 'could not connect in time',
  UND_ERR_SOCKET: 'connection lost',
  UND_ERR_CLOSED: 'connection closed',
  ECONNREFUSED: 'connection refused (ECONNREFUSED)',
  ECONNRESET: 'connection reset (ECONNRESET)',
  EPIPE: 'connection lost (EPIPE)',
  ENOTFOUND: 'host not found (ENOTFOUND)',
  EAI_AGAIN: 'host name lookup failed (EAI_AGAIN)',
  EHOSTUNREACH: 'host unreachable (EHOSTUNREACH)',
  ENETUNREACH: 'network unreachable (ENETUNREACH)',
};

/** What a failed call's error code says (undici's own codes are not for users: UND_ERR_HEADERS_TIMEOUT reached dashboards). */
export function failureWords(code: string, headersTimeoutMs: number, bodyTimeoutMs: number): string {
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return `no answer within ${headersTimeoutMs} ms`;
  if (code === 'UND_ERR_BODY_TIMEOUT') return `the answer stalled for ${bodyTimeoutMs} ms`;
  return FAILURE_WORDS[code] ?? code;
}

/**
 * What a 400 or 422 body says of the query parameters `names` (FastAPI's `{"detail": [{"loc": ["query", name], "msg"}]}`),
 * as `name: msg` pairs, short, control and format characters out; empty when it names none of them. Nothing else of
 * the body is shown: it may speak of the request's key or headers, which are not the caller's to see.
 */
export function queryComplaint(text: string, names: ReadonlySet<string>): string {
  const json = parseJsonText(text);
  const detail = json.ok && typeof json.value === 'object' && json.value !== null ? (json.value as { detail?: unknown }).detail : undefined;
  if (!Array.isArray(detail)) return '';
  const rows: string[] = [];
  for (const d of detail) {
    if (typeof d !== 'object' || d === null) continue;
    const { loc, msg } = d as { loc?: unknown; msg?: unknown };
    if (!Array.isArray(loc) || loc[0] !== 'query' || typeof loc[1] !== 'string' || !names.has(loc[1]) || typeof msg !== 'string') continue;
    rows.push(`${loc[1]}: ${msg}`);
  }
  const out = rows.join('; ').replace(/[\p{Cc}\p{Cf}]+/gu, ' ');
  return out.length > COMPLAINT_MAX_CHARS ? `${out.slice(0, COMPLAINT_MAX_CHARS)}…` : out;
}

/** Most of an upstream's complaint shown (characters). */
const COMPLAINT_MAX_CHARS = 300;

/** JSON.parse without a throw. */
export function parseJsonText(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/** Most of a non-200 body read (bytes); it is only ever logged by its status. */
const ERROR_BODY_MAX_BYTES = 64 * 1024;

class BodyTooLarge extends Error {}

const EMPTY_BODY = new Body([]);

/**
 * One GET as an undici dispatch handler: the body is gathered from its chunks
 * and checked against the cap as they come, with no response stream, async
 * iterator or per-call abort plumbing. The loops' calls are long-polls in
 * flight for seconds: what each one allocates lives through young-generation
 * collections and is promoted, so this is where pollcast's GC time went
 * (bench/RESULTS.md, issue 21).
 */
class AnswerHandler implements Dispatcher.DispatchHandler {
  private readonly resolve: (answer: RawAnswer | Error) => void;
  private readonly okMaxBytes: number;
  private controller: Dispatcher.DispatchController | null = null;
  private abortReason: Error | null = null;
  private status = 0;
  private headers: IncomingHttpHeaders = {};
  private chunks: Buffer[] = [];
  private size = 0;
  private maxBytes = 0;
  private settled = false;

  constructor(okMaxBytes: number, resolve: (answer: RawAnswer | Error) => void) {
    this.okMaxBytes = okMaxBytes;
    this.resolve = resolve;
  }

  /** Abandons the call (deadline, the caller's signal); its outcome is then the error. */
  abort(reason: Error): void {
    if (this.settled) return;
    if (this.controller !== null) this.controller.abort(reason);
    else this.abortReason = reason;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortReason !== null) controller.abort(this.abortReason);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.status = statusCode;
    this.headers = headers;
    // Only a 200 carries events; an oversized error page is no reason to ask for smaller pages.
    this.maxBytes = statusCode === 200 ? this.okMaxBytes : ERROR_BODY_MAX_BYTES;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size > this.maxBytes) {
      if (this.status !== 200) {
        // An error page is judged by its status: what was read is enough.
        this.finish(new BodyAnswer(this.status, this.headers, 0, EMPTY_BODY));
        controller.abort(new BodyTooLarge('error body over the cap'));
        return;
      }
      controller.abort(new BodyTooLarge(`body larger than ${this.maxBytes} bytes`));
      return;
    }
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    const body = new Body(this.chunks);
    this.chunks = [];
    this.finish(new BodyAnswer(this.status, this.headers, this.size, body));
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error): void {
    this.chunks = [];
    this.finish(error);
  }

  private finish(answer: RawAnswer | Error): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(answer);
  }
}

/**
 * Signals a caller passes call after call (a loop's): the calls in flight on each, and one listener per signal that
 * abandons them when it aborts, instead of a listener added and removed per call (EventTarget work on every event's
 * path: bench/RESULTS.md, issue 21, thirty-third round). Only plain controllers' signals: Node keeps a timeout or
 * `AbortSignal.any` signal that has an abort listener alive until it fires, so any other signal is listened to per call.
 */
const callsOn = new WeakMap<AbortSignal, Set<AnswerHandler>>();

/** `controller`'s signal, marked to be passed to many calls: one abort listener for its life. */
export function lastingSignal(controller: AbortController): AbortSignal {
  const { signal } = controller;
  if (!callsOn.has(signal)) {
    const calls = new Set<AnswerHandler>();
    callsOn.set(signal, calls);
    signal.addEventListener(
      'abort',
      () => {
        for (const h of calls) h.abort(new Error('aborted'));
        calls.clear();
      },
      { once: true },
    );
  }
  return signal;
}

/** Registers `handler` as in flight on `signal`; returns how to leave once it settles. */
function watchSignal(signal: AbortSignal, handler: AnswerHandler): () => void {
  const calls = callsOn.get(signal);
  if (calls !== undefined) {
    calls.add(handler);
    return () => calls.delete(handler);
  }
  const onAbort = () => handler.abort(new Error('aborted'));
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/** Creates a client with its own connection pool to `baseUrl`'s origin. */
export function createUpstreamClient(options: UpstreamClientOptions): UpstreamClient {
  const base = new URL(options.baseUrl);
  const basePath = base.pathname.replace(/\/+$/, '');
  const marginMs = options.timeoutMarginMs ?? DEFAULT_TIMEOUT_MARGIN_MS;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const pool = new Pool(base.origin, { keepAliveTimeout: 30_000, keepAliveMaxTimeout: 120_000, pipelining: 1 });
  const plainHeaders: Record<string, string> = { accept: 'application/json', 'user-agent': 'pollcast' };
  const headers: Record<string, string> = { ...plainHeaders };
  if (options.apiKey) {
    if (options.authHeader) headers[options.authHeader.toLowerCase()] = options.apiKey;
    else headers.authorization = `Bearer ${options.apiKey}`;
  }
  let closed = false;

  function pathFor(sessionId: string, endpoint: string, query?: string): string {
    // encodeURIComponent keeps any id inside its one path segment, whatever it holds; a ':' (which the contract's
    // pattern allows) is a legal path character (RFC 3986 §3.3) and goes as it is, for an upstream that does not decode.
    const path = `${basePath}/sessions/${encodeURIComponent(sessionId).replaceAll('%3A', ':')}/${endpoint}`;
    return query ? `${path}?${query}` : path;
  }

  // The caller's credential replaces the operator's key: the upstream judges that caller, not pollcast.
  function headersFor(credential: UpstreamCredential | undefined): Record<string, string> {
    return credential === undefined ? headers : { ...plainHeaders, [credential.header]: credential.value };
  }

  async function call(
    endpoint: UpstreamEndpoint,
    path: string,
    waitSeconds: number,
    signal: AbortSignal | undefined,
    credential?: UpstreamCredential,
  ): Promise<RawAnswer | FailureOutcome> {
    if (closed || signal?.aborted) return { kind: 'aborted' };
    const budgetMs = waitSeconds * 1000 + marginMs;
    let handler!: AnswerHandler;
    const answer = new Promise<RawAnswer | Error>((resolve) => (handler = new AnswerHandler(maxBodyBytes, resolve)));
    // The overall deadline catches a body that trickles forever, which the per-chunk bodyTimeout alone
    // would not. A plain timer cleared at the end (not AbortSignal.timeout/any, which keep each call's
    // signals alive until the deadline) so a loop's finished calls leave nothing behind.
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      handler.abort(new Error('deadline'));
    }, budgetMs + marginMs);
    const leave = signal === undefined ? null : watchSignal(signal, handler);
    try {
      try {
        pool.dispatch({ method: 'GET', path, headers: headersFor(credential), headersTimeout: budgetMs, bodyTimeout: marginMs }, handler);
      } catch (err) {
        // A pool closed meanwhile throws instead of calling the handler.
        handler.onResponseError(null, err as Error);
      }
      const res = await answer;
      if (!(res instanceof Error)) return res;
      if (signal?.aborted || closed) return { kind: 'aborted' };
      if (res instanceof BodyTooLarge) return { kind: 'too-large', maxBytes: maxBodyBytes };
      const e = res as { code?: string; name?: string };
      const reason = timedOut ? `no answer within ${budgetMs + marginMs} ms` : failureWords(e.code ?? e.name ?? 'error', budgetMs, marginMs);
      const hung = timedOut || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT';
      return { kind: 'transient', reason: `${endpoint}: ${reason}`, ...(hung ? { hung: true as const } : {}) };
    } finally {
      clearTimeout(timer);
      leave?.();
    }
  }

  // A 404 whose body says the route (not the session) is unknown: UPSTREAM_URL probably lacks the API's path.
  function classifyFailure(status: number, resHeaders: IncomingHttpHeaders, text = '', path = ''): FailureOutcome {
    if (status === 404 && isRouteNotFound(text)) options.onRouteNotFound?.(path);
    // The API refuses an id not of its form (a UUID) with FastAPI's 422 naming the path: no such session can
    // exist, a lasting answer, not a fault to retry (until 6 Dec 2026 drop-ins answered it 503, retry later).
    if (status === 422 && refusesPathParameter(text)) return { kind: 'not-found' };
    return failureOf(status, resHeaders);
  }
  const parseJson = parseJsonText;

  function timed<T extends { kind: string }>(endpoint: UpstreamEndpoint, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    return run().then((outcome) => {
      options.observe?.(endpoint, outcome.kind, (performance.now() - started) / 1000);
      return outcome;
    });
  }

  return {
    changes(sessionId, query, signal, credential) {
      return timed('changes', async (): Promise<ChangesOutcome> => {
        // Numbers and a boolean: nothing in them needs escaping (no URLSearchParams per call on the loop's path).
        const params = `from_index=${query.fromIndex}&limit=${query.limit}&include_events=${query.includeEvents}&wait_for_seconds=${query.waitSeconds}`;
        const res = await call('changes', pathFor(sessionId, 'changes', params), query.waitSeconds, signal, credential);
        if ('kind' in res) return res;
        if (res.status === 204) return { kind: 'no-change' };
        const text = res.text;
        if (res.status !== 200) return classifyFailure(res.status, res.headers, text, `/sessions/${sessionId}/changes`);
        const json = parseJson(text);
        if (!json.ok) return { kind: 'bad-body', reason: 'changes: body is not valid JSON' };
        const parsed = parseChanges(json.value);
        if (!parsed.ok) return { kind: 'bad-body', reason: `changes: ${parsed.reason}` };
        attachEventText(res.body, text, (json.value as { new_events?: unknown }).new_events, parsed.value.new_events);
        return { kind: 'events', changes: parsed.value, bytes: res.bytes };
      });
    },
    status(sessionId, signal, credential) {
      return timed('status', async (): Promise<StatusOutcome> => {
        const res = await call('status', pathFor(sessionId, 'status'), 0, signal, credential);
        if ('kind' in res) return res;
        const text = res.text;
        if (res.status !== 200) return classifyFailure(res.status, res.headers, text, `/sessions/${sessionId}/status`);
        const json = parseJson(text);
        if (!json.ok) return { kind: 'bad-body', reason: 'status: body is not valid JSON' };
        const parsed = parseStatusBody(json.value);
        if (!parsed.ok) return { kind: 'bad-body', reason: `status: ${parsed.reason}` };
        return { kind: 'state', body: parsed.value };
      });
    },
    get(endpoint, path, credential, signal) {
      return call(endpoint, `${basePath}${path}`, 0, signal, credential);
    },
    observe(endpoint, outcome, seconds) {
      options.observe?.(endpoint, outcome, seconds);
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.destroy().catch(() => {});
    },
  };
}
