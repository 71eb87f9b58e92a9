/**
 * The sessions API client: one undici keep-alive pool per upstream origin,
 * every outcome classified into a typed result (never a thrown string).
 */
import { Pool } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { parseChanges, parseRetryAfterMs, parseStatusBody } from './parse.ts';
import type { StatusBody, TrajectoryChanges } from './types.ts';
import type { UpstreamCredential } from './credential.ts';

/** Why a call did not produce data. */
export type FailureOutcome =
  | { kind: 'not-found' }
  | { kind: 'unauthorized'; status: number }
  | { kind: 'rate-limited'; retryAfterMs: number | undefined }
  | { kind: 'transient'; reason: string; status?: number }
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
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  bytes: number;
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
}

/** Time an answer may take beyond the long-poll wait before the request is abandoned. */
export const DEFAULT_TIMEOUT_MARGIN_MS = 10_000;
/** Largest upstream body read (bytes); larger → too-large, and the caller asks for fewer events. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Talks to one sessions API. */
export interface UpstreamClient {
  changes(sessionId: string, query: ChangesQuery, signal?: AbortSignal): Promise<ChangesOutcome>;
  status(sessionId: string, signal?: AbortSignal): Promise<StatusOutcome>;
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

async function readBody(body: AsyncIterable<Buffer>, maxBytes: number): Promise<{ text: string; bytes: number }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxBytes) throw new BodyTooLarge(`body larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return { text: Buffer.concat(chunks, size).toString('utf8'), bytes: size };
}

/** Creates a client with its own connection pool to `baseUrl`'s origin. */
export function createUpstreamClient(options: UpstreamClientOptions): UpstreamClient {
  const base = new URL(options.baseUrl);
  const basePath = base.pathname.replace(/\/+$/, '');
  const marginMs = options.timeoutMarginMs ?? DEFAULT_TIMEOUT_MARGIN_MS;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const pool = new Pool(base.origin, { keepAliveTimeout: 30_000, keepAliveMaxTimeout: 120_000, pipelining: 1 });
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'pollcast' };
  if (options.apiKey) {
    if (options.authHeader) headers[options.authHeader.toLowerCase()] = options.apiKey;
    else headers.authorization = `Bearer ${options.apiKey}`;
  }
  let closed = false;

  function pathFor(sessionId: string, endpoint: string, params?: URLSearchParams): string {
    // encodeURIComponent keeps any id inside its one path segment, whatever it holds.
    const path = `${basePath}/sessions/${encodeURIComponent(sessionId)}/${endpoint}`;
    return params ? `${path}?${params.toString()}` : path;
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
    // The overall deadline catches a body that trickles forever, which the
    // per-chunk bodyTimeout alone would not. A plain timer cleared in `finally`
    // (not AbortSignal.timeout/any, which keep each call's signals alive until
    // the deadline) so a loop's finished calls leave nothing behind.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), budgetMs + marginMs);
    const onAbort = () => deadline.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const combined = deadline.signal;
    try {
      const res = await pool.request({
        method: 'GET',
        path,
        // A caller's own credential replaces the operator's key, never joins it.
        headers: credential ? { accept: headers.accept!, 'user-agent': headers['user-agent']!, [credential.header]: credential.value } : headers,
        signal: combined,
        headersTimeout: budgetMs,
        bodyTimeout: marginMs,
      });
      // Only a 200 carries events; an oversized error page is no reason to ask for smaller pages.
      const ok = res.statusCode === 200;
      const { text, bytes } = await readBody(res.body as AsyncIterable<Buffer>, ok ? maxBodyBytes : ERROR_BODY_MAX_BYTES).catch((err: unknown) => {
        res.body.destroy();
        if (!ok && err instanceof BodyTooLarge) return { text: '', bytes: 0 };
        throw err;
      });
      return { status: res.statusCode, headers: res.headers as IncomingHttpHeaders, text, bytes };
    } catch (err) {
      if (signal?.aborted || closed) return { kind: 'aborted' };
      if (err instanceof BodyTooLarge) return { kind: 'too-large', maxBytes: maxBodyBytes };
      const e = err as { code?: string; message?: string; name?: string };
      const reason = deadline.signal.aborted ? `no answer within ${budgetMs + marginMs} ms` : (e.code ?? e.name ?? 'error');
      return { kind: 'transient', reason: `${endpoint}: ${reason}` };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  const classifyFailure = failureOf;
  const parseJson = parseJsonText;

  function timed<T extends { kind: string }>(endpoint: UpstreamEndpoint, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    return run().then((outcome) => {
      options.observe?.(endpoint, outcome.kind, (performance.now() - started) / 1000);
      return outcome;
    });
  }

  return {
    changes(sessionId, query, signal) {
      return timed('changes', async (): Promise<ChangesOutcome> => {
        const params = new URLSearchParams({
          from_index: String(query.fromIndex),
          limit: String(query.limit),
          include_events: String(query.includeEvents),
          wait_for_seconds: String(query.waitSeconds),
        });
        const res = await call('changes', pathFor(sessionId, 'changes', params), query.waitSeconds, signal);
        if ('kind' in res) return res;
        if (res.status === 204) return { kind: 'no-change' };
        if (res.status !== 200) return classifyFailure(res.status, res.headers);
        const json = parseJson(res.text);
        if (!json.ok) return { kind: 'bad-body', reason: 'changes: body is not valid JSON' };
        const parsed = parseChanges(json.value);
        if (!parsed.ok) return { kind: 'bad-body', reason: `changes: ${parsed.reason}` };
        return { kind: 'events', changes: parsed.value, bytes: res.bytes };
      });
    },
    status(sessionId, signal) {
      return timed('status', async (): Promise<StatusOutcome> => {
        const res = await call('status', pathFor(sessionId, 'status'), 0, signal);
        if ('kind' in res) return res;
        if (res.status !== 200) return classifyFailure(res.status, res.headers);
        const json = parseJson(res.text);
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
