/** The one place where errors become HTTP answers: status + JSON `{"error": "..."}`. */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Logger } from 'pino';
import {
  BadRequestError,
  ForbiddenError,
  PayloadTooLargeError,
  PollcastError,
  SessionNotFoundError,
  ShuttingDownError,
  TooManyRequestsError,
  UnauthorizedError,
  UpstreamAuthError,
  UpstreamUnavailableError,
  UriTooLongError,
} from '../errors.ts';

/** HTTP status for each error of the family. */
export function statusFor(err: PollcastError): 400 | 401 | 403 | 404 | 413 | 414 | 429 | 502 | 503 | 500 {
  if (err instanceof BadRequestError) return 400;
  if (err instanceof UnauthorizedError) return 401;
  if (err instanceof ForbiddenError) return 403;
  if (err instanceof SessionNotFoundError) return 404;
  if (err instanceof PayloadTooLargeError) return 413;
  if (err instanceof UriTooLongError) return 414;
  if (err instanceof TooManyRequestsError) return 429;
  if (err instanceof UpstreamAuthError) return 502;
  if (err instanceof UpstreamUnavailableError || err instanceof ShuttingDownError) return 503;
  return 500;
}

/** Builds the JSON error answer (never a stack, never a secret). */
export function errorResponse(c: Context, err: unknown, log: Logger): Response {
  if (err instanceof PollcastError) {
    const status = statusFor(err);
    if (err instanceof TooManyRequestsError || err instanceof UpstreamUnavailableError) c.header('Retry-After', String(err.retryAfterSeconds));
    if (err instanceof ShuttingDownError) c.header('Retry-After', '1');
    if (err instanceof UnauthorizedError) c.header('WWW-Authenticate', 'Bearer');
    return c.json({ error: err.message, code: err.code }, status);
  }
  if (err instanceof HTTPException) {
    return c.json({ error: err.message || 'request refused', code: 'http_error' }, err.status);
  }
  log.error({ err }, 'unhandled error');
  return c.json({ error: 'internal error', code: 'internal' }, 500);
}
