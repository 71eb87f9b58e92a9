/** The one place where errors become HTTP answers: status + JSON `{"error": "..."}`. */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Logger } from 'pino';
import {
  BadGatewayError,
  BadRequestError,
  BehindOffsetError,
  ForbiddenError,
  PayloadTooLargeError,
  PollcastError,
  RequestTimeoutError,
  SessionNotFoundError,
  ShuttingDownError,
  TooManyRequestsError,
  UnauthorizedError,
  UpstreamAuthError,
  UpstreamUnavailableError,
  UriTooLongError,
} from '../errors.ts';

/** HTTP status for each error of the family. */
export function statusFor(err: PollcastError): 400 | 401 | 403 | 404 | 408 | 413 | 414 | 429 | 502 | 503 | 500 {
  if (err instanceof BadRequestError) return 400;
  if (err instanceof UnauthorizedError) return 401;
  if (err instanceof ForbiddenError) return 403;
  if (err instanceof SessionNotFoundError) return 404;
  if (err instanceof RequestTimeoutError) return 408;
  if (err instanceof PayloadTooLargeError) return 413;
  if (err instanceof UriTooLongError) return 414;
  if (err instanceof TooManyRequestsError) return 429;
  if (err instanceof UpstreamAuthError || err instanceof BadGatewayError) return 502;
  if (err instanceof UpstreamUnavailableError || err instanceof ShuttingDownError || err instanceof BehindOffsetError) return 503;
  return 500;
}

/** An error answer as plain data: what hono's onError and the stream fast path both send. */
export interface ErrorAnswer {
  status: number;
  headers: Record<string, string>;
  body: { error: string; code: string };
}

/** The stable code a refusal is counted under (`pollcast_requests_rejected_total{reason}`). */
export function rejectionReason(err: unknown): string {
  if (err instanceof TooManyRequestsError) return err.limit;
  return err instanceof PollcastError ? err.code : err instanceof HTTPException ? 'http_error' : 'internal';
}

/** The JSON error answer for `err` (never a stack, never a secret); anything unexpected is logged and answered 500. */
export function errorAnswer(err: unknown, log: Logger): ErrorAnswer {
  if (err instanceof PollcastError) {
    // A refusal is of its moment (a session not found yet, a loop not read up to date): no cache keeps it, a CDN that
    // caches errors included (Durable Streams audit, 7 Dec 2026: its 404, 400 and 503 said nothing).
    const headers: Record<string, string> = { 'cache-control': 'no-store' };
    if (err instanceof TooManyRequestsError || err instanceof UpstreamUnavailableError) headers['retry-after'] = String(err.retryAfterSeconds);
    if (err instanceof ShuttingDownError || err instanceof BehindOffsetError) headers['retry-after'] = '1';
    if (err instanceof UnauthorizedError) headers['www-authenticate'] = 'Bearer';
    return { status: statusFor(err), headers, body: { error: err.message, code: err.code } };
  }
  if (err instanceof HTTPException) return { status: err.status, headers: { 'cache-control': 'no-store' }, body: { error: err.message || 'request refused', code: 'http_error' } };
  log.error({ err }, 'unhandled error');
  return { status: 500, headers: { 'cache-control': 'no-store' }, body: { error: 'internal error', code: 'internal' } };
}

/** Builds the JSON error answer of a hono request. */
export function errorResponse(c: Context, err: unknown, log: Logger): Response {
  const answer = errorAnswer(err, log);
  for (const [name, value] of Object.entries(answer.headers)) c.header(name, value);
  return c.json(answer.body, answer.status as 400);
}
