/**
 * One error family: every failure that reaches an HTTP answer is a PollcastError
 * with a stable `code`; the HTTP status is chosen in one place (http/errors.ts).
 */
export class PollcastError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The request itself is malformed (bad id, index, query value). */
export class BadRequestError extends PollcastError {
  constructor(message: string) {
    super('bad_request', message);
  }
}

/** The upstream says the session (or every session of a multiplexed stream) does not exist. */
export class SessionNotFoundError extends PollcastError {
  constructor(sessionId: string | readonly string[]) {
    const one = typeof sessionId === 'string' ? sessionId : sessionId.length === 1 ? sessionId[0]! : null;
    const message = one !== null ? `session ${JSON.stringify(one)} not found upstream` : `none of the ${sessionId.length} sessions asked for exists upstream`;
    super('session_not_found', message);
  }
}

/** The upstream rejected pollcast's own credential (401/403): an operator problem, not the subscriber's. */
export class UpstreamAuthError extends PollcastError {
  readonly upstreamStatus: number;
  constructor(upstreamStatus: number) {
    super('upstream_auth', `the sessions API rejected pollcast's credential (HTTP ${upstreamStatus})`);
    this.upstreamStatus = upstreamStatus;
  }
}

/** The upstream could not be reached or kept failing; the caller may retry after `retryAfterSeconds`. */
export class UpstreamUnavailableError extends PollcastError {
  readonly retryAfterSeconds: number;
  /** Whether the upstream asked for that wait itself (a `429`'s Retry-After), rather than pollcast choosing it. */
  readonly retryAfterFromUpstream: boolean;
  constructor(reason: string, retryAfterSeconds: number, options?: { cause?: unknown; retryAfterFromUpstream?: boolean }) {
    super('upstream_unavailable', `the sessions API is unavailable: ${reason}`, options);
    this.retryAfterSeconds = retryAfterSeconds;
    this.retryAfterFromUpstream = options?.retryAfterFromUpstream ?? false;
  }
}

/** A forwarded request got no answer from the upstream: unreachable, silent, or cut off (502). */
export class BadGatewayError extends PollcastError {
  constructor(reason: string, options?: { cause?: unknown }) {
    super('bad_gateway', `the upstream did not answer the forwarded request: ${reason}`, options);
  }
}

/** No or invalid subscriber token. */
export class UnauthorizedError extends PollcastError {
  constructor(message = 'a valid access token is required') {
    super('unauthorized', message);
  }
}

/** A valid token that does not cover the requested session. */
export class ForbiddenError extends PollcastError {
  constructor(message: string) {
    super('forbidden', message);
  }
}

/** A limit was reached; retry after `retryAfterSeconds`. */
export class TooManyRequestsError extends PollcastError {
  readonly retryAfterSeconds: number;
  /** Which limit refused (counted as the rejection's reason): `rate_limit`, `streams_per_ip`, … */
  readonly limit: string;
  constructor(message: string, retryAfterSeconds: number, limit = 'too_many_requests') {
    super('too_many_requests', message);
    this.retryAfterSeconds = retryAfterSeconds;
    this.limit = limit;
  }
}

/** The request body is larger than the route accepts (413). */
export class PayloadTooLargeError extends PollcastError {
  constructor(maxBytes: number) {
    super('payload_too_large', `request body larger than ${maxBytes} bytes`);
  }
}

/** The request body stopped arriving: no byte for BODY_TIMEOUT_SECONDS (408). */
export class RequestTimeoutError extends PollcastError {
  constructor(idleSeconds: number) {
    super('request_timeout', `the request body stopped arriving (nothing for ${idleSeconds} s)`);
  }
}

/** The request target is longer than MAX_URL_BYTES (414). */
export class UriTooLongError extends PollcastError {
  constructor(maxBytes: number) {
    super('uri_too_long', `request URL longer than ${maxBytes} bytes`);
  }
}

/** A Durable offset past what this instance has read of a live session, which another instance may have given (503, retry). */
export class BehindOffsetError extends PollcastError {
  constructor() {
    super('behind_offset', 'this instance has not read the session up to that offset yet; retry');
  }
}

/** The server is shutting down and accepts no new streams. */
export class ShuttingDownError extends PollcastError {
  constructor() {
    super('shutting_down', 'pollcast is shutting down; retry on another instance');
  }
}
