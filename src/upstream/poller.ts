/**
 * The loop for one session: long-polls `changes` from the next index, pages
 * on at once after a full page, confirms the end with `status`, drains the
 * last events, then ends the feed. Faults back off with jitter; a refusal
 * that lasts (401/403/404) is shown to subscribers and, past `giveUpMs`,
 * ends the stream. Stopped by its AbortSignal.
 */
import type { Logger } from 'pino';
import { backoffDelayMs, createRateGate, sleep, type BackoffPolicy } from './backoff.ts';
import type { FailureOutcome, UpstreamClient } from './client.ts';
import type { SessionState } from './types.ts';
import type { Feed } from '../hub/feed.ts';

export interface PollerOptions {
  client: UpstreamClient;
  feed: Feed;
  /** `wait_for_seconds` of every waiting changes call. */
  waitSeconds: number;
  /** `limit` asked for; a full page means more are waiting. */
  pageSize: number;
  backoff: BackoffPolicy;
  /** How long a 401/403/404 may last before the stream is ended (ms). */
  giveUpMs: number;
  /** The first-contact status already said the session is over: drain at once. */
  startFinished?: boolean;
  log: Logger;
  /** Called with the number of new events each answer brought (metrics). */
  onEvents?: (count: number) => void;
  /** Called when the loop state changes (metrics). */
  onState?: (state: PollerState) => void;
}

/** What the loop is doing now. */
export type PollerState = 'polling' | 'backoff' | 'draining' | 'stopped';

/**
 * Empty answers in a row that end a drain. One is not enough: a single stray
 * empty answer (a 204 or an empty page from a lagging replica, an injected
 * fault) would otherwise end the stream short and cache the truncated
 * session as finished; the confirming call is one wait-0 request per session end.
 */
export const DRAIN_EMPTY_ANSWERS_TO_END = 2;

function refusalText(outcome: FailureOutcome): string | null {
  if (outcome.kind === 'not-found') return 'session not found upstream (404)';
  if (outcome.kind === 'unauthorized') return `upstream rejected the credential (${outcome.status})`;
  return null;
}

/** Runs the loop until the session ends or `signal` aborts. Never throws. */
export async function runPoller(opts: PollerOptions, signal: AbortSignal): Promise<void> {
  const { client, feed, log } = opts;
  const id = feed.sessionId;
  let attempt = 0;
  let refusedSince: number | null = null;
  let pageOn = false;
  let draining = opts.startFinished === true;
  let emptyDrainAnswers = 0;

  const gate = createRateGate();
  const setState = (s: PollerState) => opts.onState?.(s);

  /** Backs off after a failure; returns false when the loop must stop. */
  async function fail(outcome: FailureOutcome, endpoint: string): Promise<boolean> {
    if (outcome.kind === 'aborted') return false;
    const refusal = refusalText(outcome);
    if (refusal !== null) {
      refusedSince ??= Date.now();
      feed.setUpstreamError(refusal);
      if (Date.now() - refusedSince >= opts.giveUpMs) {
        log.warn({ session: id, reason: refusal }, 'upstream refusal lasted past the give-up time; ending the stream');
        feed.end(feed.state);
        return false;
      }
    }
    attempt++;
    const retryAfterMs = outcome.kind === 'rate-limited' ? outcome.retryAfterMs : undefined;
    const delay = backoffDelayMs(attempt, opts.backoff, retryAfterMs);
    log.warn({ session: id, endpoint, outcome: outcome.kind, reason: 'reason' in outcome ? outcome.reason : undefined, attempt, delayMs: delay }, 'upstream fault; backing off');
    setState('backoff');
    const slept = await sleep(delay, signal);
    setState(draining ? 'draining' : 'polling');
    return slept;
  }

  function recovered(): void {
    // Pairs with the 'backing off' warnings, so an operator sees when a fault ended.
    if (attempt > 0) log.info({ session: id, faults: attempt }, 'upstream recovered');
    attempt = 0;
    if (refusedSince !== null) {
      refusedSince = null;
      feed.setUpstreamError(null);
    }
  }

  /** Confirms the end with `status`; true when the session is over. */
  async function confirmFinished(): Promise<boolean | 'stop'> {
    for (;;) {
      if (!(await gate.take(signal))) return 'stop';
      const s = await client.status(id, signal);
      if (s.kind === 'state') {
        recovered();
        feed.applyState(s.state);
        return s.state.finished_at !== null;
      }
      if (!(await fail(s, 'status'))) return 'stop';
    }
  }

  /** Asks `status` whether the session is over and starts the drain if so; false when the loop must stop. */
  async function checkEnd(): Promise<boolean> {
    const done = await confirmFinished();
    if (done === 'stop') return false;
    if (done) {
      draining = true;
      setState('draining');
    }
    return true;
  }

  setState(draining ? 'draining' : 'polling');
  try {
    while (!signal.aborted && !feed.ended) {
      const from = feed.nextIndex;
      const wait = draining || pageOn ? 0 : opts.waitSeconds;
      // Paging calls carry a full page of real data, so only the others are rate-gated.
      if (!pageOn && !(await gate.take(signal))) return;
      const r = await client.changes(id, { fromIndex: from, limit: opts.pageSize, includeDetails: feed.includeDetails, waitSeconds: wait }, signal);
      if (r.kind === 'events') {
        recovered();
        const changes = r.changes;
        const state: SessionState = changes;
        const chunk = feed.apply(from, changes.new_events, state);
        if (chunk && chunk.frames.length > 0) opts.onEvents?.(chunk.frames.length);
        pageOn = changes.new_events.length >= opts.pageSize;
        feed.synced = !pageOn;
        if (draining) {
          // An upstream may answer short pages (its own limit): drain until answers bring nothing.
          emptyDrainAnswers = changes.new_events.length === 0 ? emptyDrainAnswers + 1 : 0;
          if (emptyDrainAnswers >= DRAIN_EMPTY_ANSWERS_TO_END) break;
          continue;
        }
        if (pageOn) continue;
        if (changes.finished_at !== null && !(await checkEnd())) return;
        continue;
      }
      if (r.kind === 'no-change') {
        recovered();
        pageOn = false;
        feed.synced = true;
        if (draining) {
          if (++emptyDrainAnswers >= DRAIN_EMPTY_ANSWERS_TO_END) break;
          continue;
        }
        // The status endpoint is authoritative for termination: a session can
        // finish without a new event, which a 204 alone would never reveal.
        if (!(await checkEnd())) return;
        continue;
      }
      if (!(await fail(r, 'changes'))) return;
    }
    if (draining && !signal.aborted) feed.end(feed.state);
  } catch (err) {
    // A bug here must not take the process down; end the stream so clients see it.
    log.error({ session: id, err }, 'poller crashed');
    feed.end(feed.state);
  } finally {
    setState('stopped');
  }
}
