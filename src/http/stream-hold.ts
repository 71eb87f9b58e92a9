/**
 * A stream opened while the upstream cannot judge its caller's key
 * (AUTH=upstream during an outage). CONTRACT.md section 3 answers an outage
 * before the stream starts with `200` and a stream whose first `status`
 * carries `upstream_error` (EventSource gives up for good on anything else);
 * section 4 lets a key read a session only once the upstream accepted it. So
 * the stream opens at once and reads nothing: the key is asked about again
 * with backoff; accepted, the same response goes on as a normal stream from
 * the asked position; refused, it ends with `event: error` naming the
 * refusal (a session the key cannot see, with `event: end`, as a session
 * that proves not to exist), and EventSource's reconnect then gets the
 * refusal's own status code and stops.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { PollcastError, SessionNotFoundError, UpstreamUnavailableError } from '../errors.ts';
import { StreamConnection, type ConnectionOptions } from '../hub/connection.ts';
import { endFrame, retryFrame, statusFrameOf, statusJson } from '../hub/frames.ts';
import { taggedStatusOf } from '../hub/tagged.ts';
import { dropOpen, writeStreamHead, type StreamResponse } from '../hub/writer.ts';
import type { Stats } from '../metrics.ts';
import { encodeFrame } from '../sse.ts';
import { backoffDelayMs, sleep, type BackoffPolicy } from '../upstream/backoff.ts';
import { NOT_FOUND_TEXT } from '../upstream/refusal.ts';
import { statusPayload, UNKNOWN_SNAPSHOT } from '../upstream/snapshot.ts';
import type { Grant } from './auth.ts';
import type { AppDeps } from './deps.ts';
import { rejectionReason, statusFor } from './errors.ts';
import type { StreamSlot } from './limits.ts';

/** Asking again about a key the upstream could not judge: 1 s doubling to 15 s, jittered (at least 0.5–1 s), never sooner than the upstream's Retry-After. */
export const HOLD_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 15_000 };

/** Bytes a held stream may leave unsent (it writes a status and heartbeats only). */
const HELD_MAX_QUEUE_BYTES = 64 * 1024;

/** One held stream: its response, heartbeat and shutdown as any stream's, and nothing of a session. */
export class HeldStream extends StreamConnection {
  private readonly ids: readonly string[];
  private readonly multi: boolean;
  private readonly stats: Stats;
  private shownReason: string | null = null;

  constructor(res: StreamResponse, ids: readonly string[], multi: boolean, stats: Stats, onClose: ConnectionOptions['onClose']) {
    super(res, { maxQueueBytes: HELD_MAX_QUEUE_BYTES, onClose });
    this.ids = ids;
    this.multi = multi;
    this.stats = stats;
  }

  reads(sessionId: string): boolean {
    return this.ids.includes(sessionId);
  }

  /** The `status` of every session asked: nothing known, and why (written again only when the reason changes). */
  showUnavailable(reason: string, retry: Buffer | null): void {
    if (reason === this.shownReason) return;
    this.shownReason = reason;
    const parts: Buffer[] = retry ? [retry] : [];
    if (this.multi) for (const id of this.ids) parts.push(taggedStatusOf(id, statusPayload(UNKNOWN_SNAPSHOT, reason)));
    else parts.push(statusFrameOf(statusJson(UNKNOWN_SNAPSHOT, reason)));
    this.write(Buffer.concat(parts));
  }

  /**
   * Ends the stream on a refusal: `event: end` with the upstream's 404 for a
   * single session (as one that proves not to exist), else `event: error`
   * with the code, status and message a request would have got.
   */
  refuse(err: unknown): void {
    if (this.closed) return;
    // Counted as the request's refusal would have been (pollcast_requests_rejected_total).
    const reason = rejectionReason(err);
    this.stats.rejected[reason] = (this.stats.rejected[reason] ?? 0) + 1;
    if (err instanceof SessionNotFoundError && !this.multi) {
      this.write(endFrame(UNKNOWN_SNAPSHOT, null, NOT_FOUND_TEXT));
      this.close('end');
      return;
    }
    const data = err instanceof PollcastError ? { error: err.code, status: statusFor(err), message: err.message } : { error: 'internal', status: 500, message: 'internal error' };
    this.write(encodeFrame({ event: 'error', data: JSON.stringify(data) }));
    this.close(data.status === 401 || data.status === 403 ? 'revoked' : 'error');
  }

  /** Ends a granted stream that cannot go on (its feed could not be had): refused with `err`, or closed on shutdown. */
  abandon(err: unknown, shuttingDown: boolean): void {
    if (shuttingDown) this.close('shutdown');
    else this.refuse(err);
  }
}

/** How a held stream is opened. */
export interface HoldAsk {
  /** The sessions asked, in the stream's order. */
  ids: readonly string[];
  /** A multiplexed stream: every status carries its `session`. */
  multi: boolean;
  /** Headers set by middleware (CORS) that travel with the stream's head. */
  extraHeaders: OutgoingHttpHeaders;
  /** What the first check could not do. */
  unjudged: UpstreamUnavailableError;
  /** Asks for the grant again (the request's authorizer with its credentials). */
  judge: () => Promise<Grant>;
}

/** A held stream that was granted: its response goes on once `streams.handOver(held)` is called. */
export interface Judged {
  held: HeldStream;
  grant: Grant;
}

/**
 * Opens the stream on `res` and holds it until the upstream judges the key:
 * the grant (the caller then acquires the feed, hands the response over, or
 * refuses it with `held.refuse`), or null once the stream is closed (a
 * refusal written, the client gone, shutdown).
 */
export async function holdUntilJudged(res: StreamResponse, ask: HoldAsk, deps: Pick<AppDeps, 'streams' | 'config' | 'log' | 'stats' | 'isShuttingDown'>): Promise<Judged | null> {
  // Shutdown began while the key was asked about (it has closed every tracked stream): dropped, as any open then.
  if (deps.isShuttingDown()) {
    dropOpen(res);
    return null;
  }
  writeStreamHead(res, ask.extraHeaders);
  const held = new HeldStream(res, ask.ids, ask.multi, deps.stats, (conn, reason) => deps.streams.forget(conn, reason));
  deps.streams.adopt(held, undefined);
  deps.stats.streamsHeld++;
  deps.log.info({ sessions: ask.ids.length }, 'stream held: the upstream could not judge the key yet');
  held.showUnavailable(ask.unjudged.message, retryFrame(deps.config.sseRetryMs));
  // The upstream's own Retry-After is honoured; the 5 s pollcast tells a refused request is not (the backoff decides).
  const askedWait = (err: UpstreamUnavailableError) => (err.retryAfterFromUpstream ? err.retryAfterSeconds * 1000 : undefined);
  let retryAfterMs = askedWait(ask.unjudged);
  for (let attempt = 1; ; attempt++) {
    if (!(await sleep(backoffDelayMs(attempt, HOLD_BACKOFF, retryAfterMs), held.signal))) return null;
    try {
      const grant = await ask.judge();
      return held.closed ? null : { held, grant };
    } catch (err) {
      if (held.closed) return null;
      if (!(err instanceof UpstreamUnavailableError)) {
        held.refuse(err);
        return null;
      }
      retryAfterMs = askedWait(err);
      held.showUnavailable(err.message, null);
    }
  }
}

/**
 * Holds the stream (`holdUntilJudged`), then counts the granted stream
 * against its sessions' limit, reserved without them (a key the upstream may
 * yet refuse must not crowd out a session's accepted viewers); past it, the
 * stream ends with the 429 it would have got. Null, with `slot` given back,
 * when the stream goes no further.
 */
export async function holdAndClaim(res: StreamResponse, ask: HoldAsk, slot: StreamSlot, deps: Parameters<typeof holdUntilJudged>[2]): Promise<Judged | null> {
  const judged = await holdUntilJudged(res, ask, deps).catch((err: unknown) => {
    slot.release();
    throw err;
  });
  if (judged === null) {
    slot.release();
    return null;
  }
  try {
    slot.addSessions(ask.ids);
  } catch (err) {
    slot.release();
    judged.held.refuse(err);
    return null;
  }
  return judged;
}
