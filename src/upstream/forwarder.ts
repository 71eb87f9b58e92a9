/**
 * The pass-through's own undici pool to the upstream origin: requests go out
 * as the caller sent them (method, raw target, headers, streamed body) and the
 * answer comes back unparsed and streamed. It is a separate pool from the
 * sessions client's on purpose: this one has no credential of its own, so the
 * operator's UPSTREAM_API_KEY can never ride along on a forwarded request.
 * Redirects are never followed (undici's pool does not follow them).
 */
import type { Readable } from 'node:stream';
import { Pool, errors as undiciErrors } from 'undici';

/** Longest wait for a TCP (and TLS) connection to the upstream (ms); past it: 502. */
export const FORWARD_CONNECT_TIMEOUT_MS = 10_000;
/** Longest wait for the upstream's response head once the request is sent (ms); a silent upstream: 502. */
export const FORWARD_HEADERS_TIMEOUT_MS = 60_000;
/** Longest silence between two chunks of the upstream's body (ms); past it the answer is cut. */
export const FORWARD_BODY_TIMEOUT_MS = 60_000;
/** Connections the pass-through pool keeps to the upstream origin at most (more requests queue). */
export const FORWARD_MAX_CONNECTIONS = 256;
/**
 * Largest answer head (status line and headers) taken from the upstream: past it, 502. undici's default is 16 KiB, below
 * what pollcast takes from its own callers (MAX_HEADER_BYTES, 32 KiB): an answer with a 20 KB `Set-Cookie` that
 * reached a caller directly was a 502 through pollcast (audit, 7 Dec 2026). Browsers take heads of this order.
 */
export const FORWARD_MAX_RESPONSE_HEAD_BYTES = 256 * 1024;

/** One request to forward: `target` is the path and raw query exactly as the caller sent them. */
export interface ForwardRequest {
  method: string;
  target: string;
  /** Flat `[name, value, name, value, …]`, already cleaned of hop-by-hop headers and Host. */
  headers: string[];
  /** The request body: streamed as it arrives (its length declared), read whole (no length declared), or null when there is none. */
  body: Readable | Buffer | null;
  signal: AbortSignal;
}

/** The upstream's answer, unparsed: status, raw header list (order and case kept) and the body stream. */
export interface ForwardResponse {
  status: number;
  headers: string[];
  body: Readable;
}

/** Why a forward got no answer: the caller answers 502 for these. */
export type ForwardFailure = 'connect' | 'timeout' | 'reset' | 'aborted' | 'body' | 'head';

/** A failure of `Forwarder.forward` that names its kind. */
export class ForwardError extends Error {
  readonly kind: ForwardFailure;
  constructor(kind: ForwardFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ForwardError';
    this.kind = kind;
  }
}

/** Forwards requests to one upstream origin. */
export interface Forwarder {
  forward(request: ForwardRequest): Promise<ForwardResponse>;
  close(): Promise<void>;
}

function classify(err: unknown, signal: AbortSignal): ForwardError {
  if (err instanceof ForwardError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (signal.aborted) return new ForwardError('aborted', 'the caller went away', { cause: err });
  if (err instanceof undiciErrors.ConnectTimeoutError) return new ForwardError('timeout', 'connecting to the upstream timed out', { cause: err });
  if (err instanceof undiciErrors.HeadersTimeoutError) return new ForwardError('timeout', 'the upstream sent no answer in time', { cause: err });
  if (err instanceof undiciErrors.SocketError) return new ForwardError('reset', 'the upstream closed the connection', { cause: err });
  if (err instanceof undiciErrors.RequestContentLengthMismatchError) return new ForwardError('body', 'the request body ended early', { cause: err });
  if (err instanceof undiciErrors.HeadersOverflowError) return new ForwardError('head', `the upstream's answer head is larger than pollcast takes (${FORWARD_MAX_RESPONSE_HEAD_BYTES / 1024} KiB)`, { cause: err });
  if (err instanceof undiciErrors.ResponseContentLengthMismatchError) return new ForwardError('head', "the upstream's answer has a Content-Length its body does not match (or more than one)", { cause: err });
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ECONNRESET|EPIPE)$/.test(code)) {
    return new ForwardError(code === 'ECONNRESET' || code === 'EPIPE' ? 'reset' : 'connect', `the upstream is unreachable (${code})`, { cause: err });
  }
  return new ForwardError('body', `forwarding failed: ${message}`, { cause: err });
}

/** Timeouts of a forwarder (ms); the defaults are the FORWARD_* constants (tests shorten them). */
export interface ForwarderTimeouts {
  connectMs?: number;
  headersMs?: number;
  bodyMs?: number;
}

/** Creates the pass-through pool for `origin` (scheme, host and port of UPSTREAM_URL). */
export function createForwarder(origin: string, timeouts: ForwarderTimeouts = {}): Forwarder {
  const pool = new Pool(origin, {
    connections: FORWARD_MAX_CONNECTIONS,
    connect: { timeout: timeouts.connectMs ?? FORWARD_CONNECT_TIMEOUT_MS },
    headersTimeout: timeouts.headersMs ?? FORWARD_HEADERS_TIMEOUT_MS,
    bodyTimeout: timeouts.bodyMs ?? FORWARD_BODY_TIMEOUT_MS,
    maxHeaderSize: FORWARD_MAX_RESPONSE_HEAD_BYTES,
  });
  return {
    async forward({ method, target, headers, body, signal }) {
      try {
        const res = await pool.request({ method, path: target, headers, body, signal, responseHeaders: 'raw' });
        return { status: res.statusCode, headers: (res.headers as unknown as Buffer[] | string[]).map(String), body: res.body };
      } catch (err) {
        throw classify(err, signal);
      }
    },
    async close() {
      await pool.close().catch(() => pool.destroy());
    },
  };
}
