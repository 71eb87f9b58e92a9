/**
 * The loop for one session. First contact is a `/status` call (is there such
 * a session, is the key accepted); then it long-polls `changes` from the next
 * index, pages on at once while answers bring events, asks `/status` (the
 * authority on termination) when a long-poll comes back empty or a changes
 * answer disagrees with it, drains the last events once the session is over,
 * reads the final answer, and ends the sink. Faults back off with jitter; a
 * refusal that lasts (401/403/404) is shown and, past `giveUpMs`, ends the
 * stream. Stopped by its AbortSignal; never throws.
 */
import type { Logger } from 'pino';
import { backoffDelayMs, createRateGate, sleep, type BackoffPolicy } from './backoff.ts';
import { lastingSignal, type FailureOutcome, type StatusOutcome, type UpstreamClient } from './client.ts';
import { fetchPage, findHead, PageLimit } from './pager.ts';
import { NOT_FOUND_TEXT, refusalText } from './refusal.ts';
import { changesClaimOver, isKnown, statusSaysOver, withChanges, withStatus, type Snapshot } from './snapshot.ts';
import { retryAtPart, type EmptyAnswerStyle, type LoopSink } from './sink.ts';
import { GOING_ON_STATUSES, TERMINAL_STATUSES, type ChangesTop, type UpstreamEvent } from './types.ts';

/** How the first contact went: the caller answers 404/502 for the first two, and streams anyway for `unavailable`. */
export type FirstContact = { kind: 'ok' } | { kind: 'not-found' } | { kind: 'unauthorized'; status: number } | { kind: 'unavailable'; reason: string };

/** What the loop is doing now. */
export type PollerState = 'polling' | 'backoff' | 'draining' | 'stopped';

export interface PollerOptions {
  client: UpstreamClient;
  sink: LoopSink;
  /** `wait_for_seconds` of every waiting changes call. */
  waitSeconds: number;
  /** `limit` asked for (lowered for a while when answers pass the body cap). */
  pageSize: number;
  /** The client's body cap (bytes): pages well under it may grow back to `pageSize`. */
  maxBodyBytes: number;
  backoff: BackoffPolicy;
  /** How long a 401/403/404 may last, once the session was seen, before the stream is ended (ms). */
  giveUpMs: number;
  /** A held `/status` younger than this is not asked again on demand (ms; STATUS_FRESH_SECONDS). */
  statusFreshMs: number;
  log: Logger;
  /** Called once, when the first contact is known (before any update of a refused session). */
  onFirstContact?: (outcome: FirstContact) => void;
  /**
   * The session was already seen by an earlier loop (cluster mode: another
   * leader): a refusal is then retried and shown as `upstream_error`, as after
   * any first contact, instead of ending this loop as a refused open.
   */
  resumed?: boolean;
  /**
   * The session was seen going on before this loop (by the feed it writes into, or the instance's copy of the
   * cluster's log), whatever the snapshot it starts from says: an end it finds with no event read waits to settle.
   */
  seenGoingOn?: boolean;
  /**
   * An earlier loop of the session (a cluster's earlier leader, or the stopped loop of a feed kept idle) was told by a
   * Retry-After to wait this much longer (ms; a cluster counts the backoff it fell inside too); this loop makes no
   * call before it is over.
   */
  holdOffMs?: number;
  /**
   * Called with each wait a Retry-After brings (ms: the wait the loop keeps, its own backoff if longer; then the
   * upstream's own, capped as the loop caps it), so a later leader, or a later loop of the feed, can keep to it.
   */
  onRetryAfter?: (waitMs: number, retryAfterMs: number) => void;
  /** Called with the number of new events each answer brought (metrics). */
  onEvents?: (count: number) => void;
  /**
   * Asked at each refusal (401/403/404 after the first contact); true: the loop stops at once, the refusal shown as
   * `upstream_error` but with no `end`. Cluster mode on callers' keys: this loop's credentials are spent while
   * another instance's loop may still read the session, so ending it is not this loop's to decide.
   */
  leaveOnRefusal?: () => boolean;
  /** Called when the loop state changes (metrics). */
  onState?: (state: PollerState) => void;
  /** Called for an event larger than the body cap, relayed as a placeholder (metrics). */
  onOversized?: (index: number) => void;
  /**
   * The event just before the sink's start was read already (cluster mode: a leader that writes a new log from its
   * instance's copy, which holds events up to there): a first answer with nothing new is the session caught up, not a
   * start past its events, and the loop does not go back to read it from 0.
   */
  startKnown?: boolean;
  /**
   * The readers want status and `end` only: when the session's first page is
   * full, find its last event and start there instead of reading its history.
   * Asked at that first page (a reader from an index may have come meanwhile).
   */
  startAtHead?: () => boolean;
}

/**
 * Empty answers in a row that end a drain. One is not enough: a single stray
 * empty answer (a lagging replica, an injected fault) would otherwise end the
 * stream short and cache the truncated session as finished.
 */
export const DRAIN_EMPTY_ANSWERS_TO_END = 2;
/**
 * Consecutive failed calls after which a running stream's status shows `upstream_error` (a single blip stays quiet).
 * A call abandoned for silence is shown at once: it alone kept the stream silent for the wait plus the margin (a
 * dashboard audit, 7 Dec 2026: three hung long-polls left a card "live" for 108 s while its session went on).
 */
export const TRANSIENT_FAILURES_SHOWN_AFTER = 3;
/**
 * A `429` whose Retry-After asks for at least this long (ms) is shown at once: not a blip, the stream stays silent
 * that long (an audit, 7 Dec 2026: after `Retry-After: 20` three failures took a minute to show).
 */
export const LONG_RETRY_AFTER_SHOWN_MS = 5_000;
/**
 * A `/status` call still unanswered after this long is taken as hanging (ms): askers on demand are not made to wait
 * on it (each drop-in caller would wait its own bound, up to 1 s for `/changes`, 5 s for `/status`), and get the
 * status held. The loop itself still waits for it, within the client's timeout.
 */
export const STATUS_CHECK_HUNG_MS = 1000;
/**
 * How long a page whose status differs from the held one waits for the `/status` call asked before its events go
 * out (ms); a slower answer follows them.
 */
export const STATUS_BEFORE_EVENTS_MS = 1000;
/** While changes keeps claiming an end that `/status` denied, `/status` is asked again at most this often (ms). */
export const DISAGREEMENT_RECHECK_MS = 5000;
/**
 * A waiting long-poll the upstream has held this long shows it had nothing
 * new when the call arrived: the loop counts as caught up from then on (ms).
 * After a full page in the steady state the loop long-polls at once instead
 * of asking again with wait 0 (which cost an extra empty call after every
 * burst); this is what marks it caught up when nothing more came.
 */
export const HELD_MEANS_CAUGHT_UP_MS = 1000;

/**
 * How long a stream's opening waits for the loop's first changes answer (ms).
 * The opening normally waits for it, so the first `status` frame carries the
 * whole snapshot (`started_at`, `metrics`), not the few fields of `/status`;
 * an upstream whose first page hangs must not leave the caller without
 * response headers until that call is abandoned: past this, the stream opens
 * on the `/status` snapshot and the page's status follows when it comes.
 */
export const FIRST_ANSWER_GRACE_MS = 2000;
/** Attempts at the final changes call that reads the answer before `end` goes out without it. */
export const FINAL_BODY_ATTEMPTS = 3;
/**
 * How long a drained end that the upstream's changes answers contradict is checked again (ms, with backoff) before
 * `end` goes out with what was read: a changes side that lags `/status` (a replica), or a run of empty answers across
 * the end, ended sessions short for good until 7 Dec 2026 (an audit: 14 of 16 events, the answer lost, and cached).
 */
export const END_CONFIRM_MAX_MS = 60_000;
/** The pause between two such checks: 0.5 s doubling to 5 s (about fifteen checks in the minute, three calls each). */
const END_CONFIRM_BACKOFF = { baseMs: 500, maxMs: 5_000 };
/** How long an end with no event read must have been known before the upstream's "none" is taken (ms). */
export const EMPTY_END_SETTLE_MS = 3_000;

/** What the final changes call says of an end the drain reached; a number: read again in that many ms (an empty end settling). */
type EndVerdict = 'confirmed' | 'contradicted' | 'unknown' | number;

function failureText(outcome: FailureOutcome): string {
  if (outcome.kind === 'rate-limited') return 'upstream rate limited (429)';
  if (outcome.kind === 'too-large') return `upstream answer larger than ${outcome.maxBytes} bytes`;
  return `upstream unavailable: ${'reason' in outcome ? outcome.reason : outcome.kind}`;
}

/** What the loop carries from one answer to the next. */
interface LoopState {
  /**
   * The next call asks with wait 0: the first call reads what is there at once (a long-poll would leave "caught
   * up" unknown for its whole wait), and while catching up a page that may be capped is followed at once.
   */
  pageOn: boolean;
  /**
   * Contract section 5: the rate bound counts only calls that came back empty or failed. After an answer that
   * brought events the next long-poll goes at once (the upstream holds it while nothing is new), so pushing adds
   * no batching delay; after an empty or failed answer the call waits for a gate token, so an upstream answering
   * `204` or an empty `200` at once can never make the loop hot-loop.
   */
  ungated: boolean;
  /** Empty answers in a row while draining a finished session. */
  emptyDrains: number;
  /** No changes answer handled yet (the rebase and start-at-head decisions look at the first one). */
  firstAnswer: boolean;
}

/** One session's loop. */
export class Poller {
  private readonly opts: PollerOptions;
  private readonly signal: AbortSignal;
  private readonly gate = createRateGate();
  private readonly limit: PageLimit;
  private snapshot: Snapshot;
  private upstreamError: string | null = null;
  private synced = false;
  /** The latest changes call failed (backing off): what the loop holds may be behind, however `synced` last stood. */
  private changesFailing = false;
  /**
   * The fault shown came back at once (a changes call answered 5xx, reset, … within HELD_MEANS_CAUGHT_UP_MS): a call
   * held past that is the upstream answering again. Not so for a hang, nor for a call held and then failed (a proxy's
   * 504), nor for a failed `/status`: for those a held call proves nothing, and the fault stays shown until it answers.
   */
  private faultWasQuick = false;
  /** Caught up at least once: from then on a full page is followed by a long-poll, not a wait-0 call. */
  private everSynced = false;
  private emptyStyle: EmptyAnswerStyle | undefined;
  private over = false;
  /** When `/status` first said the session is over (performance.now()). */
  private overSinceMs = 0;
  private contacted = false;
  private failures = 0;
  private refusedSince: number | null = null;
  private largestPage = 0;
  private statusCheck: Promise<'ok' | 'stop' | FailureOutcome> | null = null;
  /** performance.now() when the `/status` call in flight (statusCheck) was made. */
  private statusCheckSince = 0;
  /**
   * Cuts the changes call in flight short (a status refresh found the end, or the loop stops). One serves call after
   * call until it is used, then a fresh one: no controller and no listener per call on the loop's path.
   */
  private callAbort = new AbortController();
  private callSignal = lastingSignal(this.callAbort);
  /** Whether a changes call of `loop` is in flight (what `callAbort` would cut). */
  private calling = false;
  private lastDisagreement = { key: '', atMs: 0 };
  private publishing: Promise<boolean> = Promise.resolve(true);
  private stopped = false;
  private readyReported = false;
  /**
   * A first `/status` answer (nothing known before it) not published yet: it goes out with the first changes
   * answer, whole (started_at, metrics, finished_at), or alone once that answer is slow (FIRST_ANSWER_GRACE_MS).
   * Published at once, it opened cluster streams with `/status`'s few fields (other instances follow the log).
   */
  private statusHeld = false;
  /** Streams opened already on an unavailable first contact (a failed or silent first `/status`): nothing is held then. */
  private openedUnavailable = false;
  /** No on-demand status call before this time (ms since the epoch): set by backoff and Retry-After. */
  private notBeforeMs = 0;
  /** While the loop waits before its next upstream call (a backoff, a Retry-After, a re-check of the end): when it ends. */
  private waitingUntilMs = 0;
  /** When the latest failure's backoff ends (ms since the epoch): what a failing update tells other instances. */
  private nextTryAtMs = 0;
  /** A `/status` answer said the session goes on (it was seen running before it was over). */
  private sawRunning = false;

  constructor(opts: PollerOptions, signal: AbortSignal) {
    this.opts = opts;
    this.signal = signal;
    this.snapshot = opts.sink.snapshot;
    // What was known before this loop counts: its sink's snapshot, and what its feed saw (a review found that only the
    // loop's own answers counted; a cluster audit, that a new leader after a graceful handover starts from a log whose
    // status says the end already). Either way such a loop ended a lagged session with none of its events.
    this.sawRunning = (isKnown(this.snapshot) && !TERMINAL_STATUSES.has(this.snapshot.status)) || opts.seenGoingOn === true;
    this.limit = new PageLimit(opts.pageSize);
    this.contacted = opts.resumed ?? false;
  }

  /**
   * While the loop waits before its next upstream call (a backoff, a Retry-After, an earlier leader's Retry-After
   * kept, a re-check of the end): when that wait ends (ms since the epoch); 0 when it is not waiting.
   */
  get retryAtMs(): number {
    return this.waitingUntilMs;
  }

  /**
   * With no event read, "none" from the final call is all there is to go by. For a session seen running (by this loop,
   * or in what its feed held before it), it is taken once the end has been known for EMPTY_END_SETTLE_MS (a changes
   * side lagging `/status` shows its first events by then): how long it has still to wait (ms), 0 once settled. A
   * session never seen running is taken at once (a late reader of a session that ended long ago does not wait); one
   * that ended moments before its first reader came, behind a lagging changes side, is the case this leaves open.
   * A review found a stream opened before a session's first event ended with none behind twelve 204s.
   */
  private emptyEndWaitMs(): number {
    if (!this.sawRunning) return 0;
    return Math.max(0, this.overSinceMs + EMPTY_END_SETTLE_MS - performance.now());
  }

  /** Sleeps `ms` as a wait before the next upstream call (what `retryAtMs` says meanwhile); false when stopped. */
  private async pause(ms: number): Promise<boolean> {
    this.waitingUntilMs = Date.now() + ms;
    try {
      return await sleep(ms, this.signal);
    } finally {
      this.waitingUntilMs = 0;
    }
  }

  /** Runs until the session ends, the loop is deposed, or `signal` aborts. */
  async run(): Promise<void> {
    const { log, sink } = this.opts;
    try {
      const holdOffMs = this.opts.holdOffMs ?? 0;
      if (holdOffMs > 0) {
        this.notBeforeMs = Date.now() + holdOffMs;
        this.opts.log.info({ session: sink.sessionId, holdOffMs }, 'keeping to the Retry-After an earlier loop was given');
        if (!(await this.pause(holdOffMs))) return;
      }
      if (!(await this.firstContact())) return;
      const stopCall = () => this.callAbort.abort();
      this.signal.addEventListener('abort', stopCall, { once: true });
      try {
        await this.loop();
      } finally {
        this.signal.removeEventListener('abort', stopCall);
      }
    } catch (err) {
      // A bug here must not take the process down; end the stream so clients see it.
      log.error({ session: sink.sessionId, err }, 'poller crashed');
      await this.publish([], sink.nextIndex, 'refused');
    } finally {
      this.stopped = true;
      this.setState('stopped');
    }
  }

  /**
   * Asks `/status` now unless an answer younger than `statusFreshMs`
   * is held (drop-in status pollers): many callers, at most one upstream call per interval.
   * `force` (a forwarded write changed the session) skips that interval, never backoff or Retry-After.
   */
  async refreshStatus(force = false): Promise<void> {
    const now = Date.now();
    // A backing-off loop (a fault, a Retry-After) is not asked around by pollers: they get the held status. Nor is
    // one whose calls are failing, between its backoffs too (a retry under way, perhaps hanging): a `/status` that
    // answered would reset its failures, its backoff and the trouble its streams show (a review found it).
    if (this.stopped || this.over || now < this.notBeforeMs || (!force && this.failures > 0)) return;
    if (!force && now - this.snapshot.statusAtMs < this.opts.statusFreshMs) return;
    if (!force && this.statusCheck !== null && performance.now() - this.statusCheckSince > STATUS_CHECK_HUNG_MS) return;
    // A forced refresh follows a write the caller just made: a check already in flight may have been
    // answered before that write, so it asks once more after it.
    if (force && this.statusCheck) await this.statusCheck.catch(() => undefined);
    if (this.stopped || this.over) return;
    const r = await this.checkStatus();
    if (r === 'ok' || r === 'stop' || r.kind === 'aborted') return;
    // A failed refresh spaces the next one like any failure, and honours the upstream's Retry-After.
    this.failures++;
    this.holdOff(r);
  }

  /**
   * The pause after the `attempt`-th failure in a row (by default the loop's `failures`; backoff, or the upstream's Retry-After): no on-demand
   * status call before it is over, and a Retry-After is reported so a later leader keeps to it. Returns it (ms).
   */
  private holdOff(outcome: FailureOutcome, attempt = this.failures): number {
    const retryAfterMs = outcome.kind === 'rate-limited' ? outcome.retryAfterMs : undefined;
    const delay = backoffDelayMs(attempt, this.opts.backoff, retryAfterMs);
    this.notBeforeMs = Math.max(this.notBeforeMs, Date.now() + delay);
    if (retryAfterMs !== undefined) this.opts.onRetryAfter?.(delay, Math.min(retryAfterMs, delay));
    return delay;
  }

  // Tells the opener the first contact succeeded, once; a held `/status` answer is published first (with what the
  // first changes answer brought, merged by the caller), so the opener finds the session described.
  private ready(): void {
    if (this.readyReported) return;
    this.readyReported = true;
    if (!this.statusHeld) return void this.opts.onFirstContact?.({ kind: 'ok' });
    void this.publish([], this.opts.sink.nextIndex).then(() => this.opts.onFirstContact?.({ kind: 'ok' }));
  }

  private setState(s: PollerState): void {
    this.opts.onState?.(s);
  }

  // Writes are chained so an on-demand status refresh never overtakes the loop's own writes.
  private publish(events: readonly UpstreamEvent[], fromIndex: number, end?: 'over' | 'refused'): Promise<boolean> {
    // Every update carries the whole snapshot, a held status answer with it.
    this.statusHeld = false;
    const update = { fromIndex, events, snapshot: this.snapshot, synced: this.synced, failing: this.changesFailing, ...retryAtPart(this.changesFailing, this.nextTryAtMs), upstreamError: this.upstreamError, ...(this.emptyStyle ? { emptyStyle: this.emptyStyle } : {}), ...(end ? { end } : {}) };
    this.publishing = this.publishing.then(async (ok) => ok && (await this.opts.sink.publish(update)));
    return this.publishing;
  }

  private async firstContact(): Promise<boolean> {
    // A first `/status` call that hangs opens the streams all the same once the grace is over (200 with an
    // upstream_error, as for an upstream that fails), instead of holding them until its deadline.
    const grace = this.contacted ? null : setTimeout(() => void this.unanswered(), FIRST_ANSWER_GRACE_MS);
    try {
      return await this.contact();
    } finally {
      if (grace !== null) clearTimeout(grace);
    }
  }

  /** The first `/status` call has not answered within the grace: reported as an upstream that is unavailable. */
  private async unanswered(): Promise<void> {
    if (this.contacted || this.stopped) return;
    this.contacted = true;
    this.upstreamError = `upstream unavailable: status: no answer within ${FIRST_ANSWER_GRACE_MS} ms`;
    this.openedUnavailable = true;
    this.opts.onFirstContact?.({ kind: 'unavailable', reason: this.upstreamError });
    await this.publish([], this.opts.sink.nextIndex);
  }

  private async contact(): Promise<boolean> {
    const { sink, onFirstContact } = this.opts;
    for (;;) {
      const s = await this.checkStatus();
      if (s === 'stop') return false;
      // Reported after the first changes answer, so a stream opens with the whole snapshot
      // (started_at, metrics), not the few fields `/status` carries.
      if (s === 'ok') return true;
      if (!this.contacted) {
        this.contacted = true;
        if (s.kind === 'not-found') return onFirstContact?.({ kind: 'not-found' }), false;
        if (s.kind === 'unauthorized') return onFirstContact?.({ kind: 'unauthorized', status: s.status }), false;
        this.upstreamError = failureText(s);
        this.openedUnavailable = true;
        onFirstContact?.({ kind: 'unavailable', reason: this.upstreamError });
        if (!(await this.publish([], sink.nextIndex))) return false;
      } else if (s.kind === 'not-found' && !isKnown(this.snapshot)) {
        // Never seen, and now the upstream says it does not exist: end the stream that opened during the outage.
        this.upstreamError = NOT_FOUND_TEXT;
        await this.publish([], sink.nextIndex, 'refused');
        return false;
      }
      if (!(await this.backOff(s, 'status'))) return false;
    }
  }

  /** `checkStatus`, waited for at most `ms` ('late' then: it goes on, and publishes when answered). */
  private async statusWithin(ms: number): Promise<'ok' | 'stop' | 'late' | FailureOutcome> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
    try {
      return await Promise.race([this.checkStatus(), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One `/status` call, merged and published, shared by concurrent askers; 'stop' when the loop must stop. */
  private checkStatus(): Promise<'ok' | 'stop' | FailureOutcome> {
    if (this.statusCheck === null) {
      this.statusCheckSince = performance.now();
      this.statusCheck = this.askStatus().finally(() => (this.statusCheck = null));
    }
    return this.statusCheck;
  }

  private async askStatus(): Promise<'ok' | 'stop' | FailureOutcome> {
    if (!(await this.gate.take(this.signal))) return 'stop';
    const s: StatusOutcome = await this.opts.client.status(this.opts.sink.sessionId, this.signal);
    if (s.kind !== 'state') return s.kind === 'aborted' ? 'stop' : s;
    this.contacted = true;
    const firstWord = !isKnown(this.snapshot);
    this.snapshot = withStatus(this.snapshot, s.body);
    this.recovered();
    if (!statusSaysOver(s.body)) this.sawRunning = true;
    if (statusSaysOver(s.body) && !this.over) {
      this.over = true;
      this.overSinceMs = performance.now();
      this.setState('draining');
      // A long-poll in flight would hold the drain for up to its whole wait.
      if (this.calling) this.callAbort.abort();
    }
    // Held (and kept held, a forced refresh after a forwarded write included) until the opener is told; once streams
    // opened on an unavailable first contact, the answer that ends it goes out at once.
    if ((firstWord || this.statusHeld) && !this.readyReported && !this.openedUnavailable) {
      this.statusHeld = true;
      return 'ok';
    }
    return (await this.publish([], this.opts.sink.nextIndex)) ? 'ok' : 'stop';
  }

  private recovered(): void {
    // Pairs with the 'backing off' warnings, so an operator sees when a fault ended.
    if (this.failures > 0) this.opts.log.info({ session: this.opts.sink.sessionId, faults: this.failures }, 'upstream recovered');
    this.failures = 0;
    this.refusedSince = null;
    this.upstreamError = null;
  }

  /**
   * Backs off after a failure; false when the loop must stop. `publishAnyway`: the failing flag changed, say so even if
   * the error shown did not. `quick`: a changes call that failed at once (see `faultWasQuick`).
   */
  private async backOff(outcome: FailureOutcome, endpoint: string, publishAnyway = false, quick = false): Promise<boolean> {
    const { log, sink } = this.opts;
    if (outcome.kind === 'aborted') return !this.signal.aborted;
    this.failures++;
    this.faultWasQuick = quick && !(outcome.kind === 'transient' && outcome.hung === true);
    const refusal = refusalText(outcome);
    const before = this.upstreamError;
    if (refusal !== null) {
      // A duration, so the monotonic clock: a wall-clock step (NTP) must not end a stream early or keep it late.
      this.refusedSince ??= performance.now();
      this.upstreamError = refusal;
      if (performance.now() - this.refusedSince >= this.opts.giveUpMs) {
        log.warn({ session: sink.sessionId, reason: refusal }, 'upstream refusal lasted past the give-up time; ending the stream');
        await this.publish([], sink.nextIndex, 'refused');
        return false;
      }
    } else if (!isKnown(this.snapshot) || this.failures >= TRANSIENT_FAILURES_SHOWN_AFTER || (outcome.kind === 'transient' && outcome.hung === true) || (outcome.kind === 'rate-limited' && (outcome.retryAfterMs ?? 0) >= LONG_RETRY_AFTER_SHOWN_MS)) {
      this.upstreamError = failureText(outcome);
    }
    const delay = this.holdOff(outcome);
    this.nextTryAtMs = Date.now() + delay;
    // While the changes calls fail, each backoff is said too: an instance that follows the log tells its drop-in
    // callers when to ask again from it (until 7 Dec 2026 they were told 2 s, whatever the wait).
    if ((this.upstreamError !== before || publishAnyway || this.changesFailing) && !(await this.publish([], sink.nextIndex))) return false;
    if (refusal !== null && this.opts.leaveOnRefusal?.() === true) {
      log.warn({ session: sink.sessionId, reason: refusal }, 'upstream refused every credential this loop holds; leaving the session to others');
      return false;
    }
    log.warn({ session: sink.sessionId, endpoint, outcome: outcome.kind, reason: 'reason' in outcome ? outcome.reason : undefined, attempt: this.failures, delayMs: delay }, 'upstream fault; backing off');
    this.setState('backoff');
    const slept = await this.pause(delay);
    this.setState(this.over ? 'draining' : 'polling');
    return slept;
  }

  private async loop(): Promise<void> {
    const state: LoopState = { pageOn: true, ungated: true, emptyDrains: 0, firstAnswer: true };
    this.setState(this.over ? 'draining' : 'polling');
    let contradictions = 0;
    let firstContradiction = 0;
    while (!this.signal.aborted) {
      // Each answer is handled in a call of its own, so nothing of it is still referenced from this frame while
      // the next long-poll waits: a page of screenshots would otherwise live through that whole wait, be
      // promoted to the old generation and wait there for a full collection (bench/RESULTS.md, issue 21, fourth round).
      const next = await this.step(state);
      if (next === 'stop') return;
      if (next !== 'end') continue;
      // The drain read nothing more twice: the final call reads the answer, and checks the end against what was read.
      const verdict = await this.readFinalBody();
      if (this.signal.aborted) break;
      if (typeof verdict === 'number') {
        // Nothing read and nothing given, for an end known for less than EMPTY_END_SETTLE_MS: read again once it is.
        if (!(await this.pause(verdict))) return;
        state.emptyDrains = 0;
        continue;
      }
      if (verdict !== 'contradicted') break;
      contradictions++;
      if (contradictions === 1) firstContradiction = performance.now();
      if (performance.now() - firstContradiction >= END_CONFIRM_MAX_MS) {
        this.opts.log.warn({ session: this.opts.sink.sessionId, index: this.opts.sink.nextIndex }, 'the upstream still contradicts the end it reported; ending with what was read');
        break;
      }
      this.opts.log.info({ session: this.opts.sink.sessionId, index: this.opts.sink.nextIndex, attempt: contradictions }, 'the upstream\'s changes contradict the end /status reported; reading on');
      state.emptyDrains = 0;
      if (!(await this.pause(backoffDelayMs(contradictions, END_CONFIRM_BACKOFF)))) return;
    }
    // Stopped while it read the final body (a leader paused while Redis is away): the next loop ends it, with the answer.
    if (this.signal.aborted) return;
    await this.publish([], this.opts.sink.nextIndex, 'over');
  }

  /**
   * One changes call and what its answer does: 'again' for the next call, 'end' when a drained session is over (the
   * final body and `end` follow), 'stop' to leave without ending the stream (stopped, deposed or refused for good).
   */
  private async step(state: LoopState): Promise<'again' | 'end' | 'stop'> {
    const { client, sink, log } = this.opts;
    const id = sink.sessionId;
    const from = sink.nextIndex;
    if (!state.ungated && !(await this.gate.take(this.signal))) return 'stop';
    // Stopped while it waited for the gate: no call (the loop's listener would find no call in flight to cut).
    if (this.signal.aborted) return 'stop';
    // After the gate: an end `/status` found meanwhile makes this call the drain's, not a long-poll.
    const wait = this.over || state.pageOn ? 0 : this.opts.waitSeconds;
    if (this.callSignal.aborted) {
      this.callAbort = new AbortController();
      this.callSignal = lastingSignal(this.callAbort);
    }
    const wasOver = this.over;
    const held = wait > 0 && (!this.synced || this.refusedSince !== null || this.changesFailing) ? setTimeout(() => this.heldLongEnough(), HELD_MEANS_CAUGHT_UP_MS) : null;
    // Not for a resume (base > 0): its first answer may move the start (rebasing), which the opening must see.
    const grace = this.readyReported || sink.baseIndex > 0 ? null : setTimeout(() => this.ready(), FIRST_ANSWER_GRACE_MS);
    const calledAt = performance.now();
    this.calling = true;
    const r = await fetchPage(client, id, { fromIndex: from, includeEvents: sink.includeEvents, waitSeconds: wait }, this.limit, this.callSignal);
    this.calling = false;
    if (held !== null) clearTimeout(held);
    if (grace !== null) clearTimeout(grace);
    if (this.signal.aborted) return 'stop';
    if (r.kind === 'aborted') return 'again'; // a status refresh found the end mid long-poll: drain now
    const rebasing = state.firstAnswer && r.kind !== 'oversized' && (r.kind === 'no-change' || (r.kind === 'events' && r.changes.new_events.length === 0)) && sink.baseIndex > 0 && sink.nextIndex === sink.baseIndex && this.opts.startKnown !== true;
    if (!rebasing) {
      // The first word goes out whole: the held `/status` answer with this answer's started_at, metrics, finished_at.
      if (this.statusHeld && r.kind === 'events') this.snapshot = withChanges(this.snapshot, r.changes.top);
      else if (this.statusHeld && r.kind === 'oversized' && r.top) this.snapshot = withChanges(this.snapshot, r.top);
      this.ready();
    }
    if (r.kind === 'oversized') {
      log.warn({ session: id, index: r.index, maxBytes: r.maxBytes }, 'upstream event larger than UPSTREAM_MAX_BODY_BYTES; relayed without its data');
      this.opts.onOversized?.(r.index);
      if (r.top) this.snapshot = withChanges(this.snapshot, r.top);
      this.recovered();
      state.pageOn = state.ungated = true;
      this.synced = false;
      this.changesFailing = false;
      if (!(await this.publish([r.event], r.index))) return 'stop';
      return 'again';
    }
    if (r.kind === 'events' || r.kind === 'no-change') {
      this.recovered();
      const events = r.kind === 'events' ? r.changes.new_events : [];
      const n = events.length;
      if (rebasing) {
        // The requested start lies beyond the session's events: read it from the beginning instead.
        sink.rebase(0);
        state.firstAnswer = false;
        return 'again';
      }
      const first = state.firstAnswer;
      state.firstAnswer = false;
      if (r.kind === 'events' && first && this.opts.startAtHead?.() === true && n >= this.limit.current && sink.nextIndex === sink.baseIndex) {
        const head = await findHead(client, id, from + n - 1, this.signal);
        if (typeof head === 'number' && head > from + n) {
          // Status-only readers need no history: start at the head (events before it are read if someone asks).
          this.snapshot = withChanges(this.snapshot, r.changes.top);
          sink.rebase(head);
          this.changesFailing = false;
          if (!(await this.publish([], head))) return 'stop';
          return 'again';
        }
      }
      // A page under another status than the one held (a resume, a pause, not a claimed end: the drain checks that
      // after the events) has /status asked before its events go out, for at most STATUS_BEFORE_EVENTS_MS, so they
      // go out under the status they came with: a drop-in long-poll woken by them answers that status.
      const disagrees = r.kind === 'events' && !wasOver && this.needsStatus(r.changes.top);
      const statusFirst = disagrees && !changesClaimOver(r.changes.top);
      if (statusFirst && (await this.statusWithin(STATUS_BEFORE_EVENTS_MS)) === 'stop') return 'stop';
      if (r.kind === 'events') {
        this.snapshot = withChanges(this.snapshot, r.changes.top);
        const asked = this.limit.current;
        this.limit.observe(r.bytes, this.opts.maxBodyBytes);
        const full = n >= asked;
        // Caught up means a 204 or an empty page, not a page shorter than asked: an upstream may cap
        // `limit` itself. Only a page shorter than one it already sent proves it held nothing more.
        if (n === 0 || (!full && n < this.largestPage)) this.synced = true;
        else if (full) this.synced = false;
        // A page that may be capped: while catching up (never synced yet) ask again at once with wait 0.
        // In the steady state the next long-poll comes back at once if more is waiting, and costs no extra
        // call if not (held long enough, it marks the loop caught up).
        state.pageOn = n > 0 && !this.everSynced && (full || !this.synced);
        this.largestPage = Math.max(this.largestPage, n);
        if (n === 0) this.emptyStyle = '200';
      } else {
        state.pageOn = false;
        this.synced = true;
        this.emptyStyle = '204';
      }
      if (this.synced) this.everSynced = true;
      state.ungated = n > 0;
      if (n > 0) this.opts.onEvents?.(n);
      // The loop reads the upstream again: said with this answer's events, not before them (a `/status` published
      // meanwhile, above, must not say "not failing" while they are still unpublished: a drop-in would answer 204).
      this.changesFailing = false;
      if (!(await this.publish(events, from))) return 'stop';
      if (wasOver) {
        state.emptyDrains = n === 0 ? state.emptyDrains + 1 : 0;
        if (state.emptyDrains >= DRAIN_EMPTY_ANSWERS_TO_END) return 'end';
        return 'again';
      }
      if (this.over) return 'again'; // a refresh confirmed the end during this call: drain from here
      // A session may finish, pause or go idle with no new event, which an empty long-poll alone would never show.
      if (n === 0 && wait > 0 && !statusFirst && (await this.checkStatus()) === 'stop') return 'stop';
      if (disagrees && !statusFirst && (await this.checkStatus()) === 'stop') return 'stop';
      return 'again';
    }
    state.ungated = false;
    // Said at once, whatever the status shows yet (a known session's first failures are not shown): a drop-in caller
    // must not be told "nothing new" while the loop cannot read (the upstream may have events).
    const flagged = !this.changesFailing;
    this.changesFailing = true;
    const quick = performance.now() - calledAt < HELD_MEANS_CAUGHT_UP_MS;
    return (await this.backOff(r, 'changes', flagged, quick)) ? 'again' : 'stop';
  }

  // A waiting call still unanswered after HELD_MEANS_CAUGHT_UP_MS: the upstream had nothing new for it, and
  // did not refuse it (a 401/403/404 comes back at once). After a refusal the next call is a long-poll, which
  // may be held for the whole wait: without this the refusal would be shown, and age, until it answers.
  private heldLongEnough(): void {
    if (this.stopped || this.signal.aborted) return;
    const wasRefused = this.refusedSince !== null;
    if (this.synced && !wasRefused && !this.changesFailing) return;
    this.synced = true;
    this.changesFailing = false;
    // The upstream holds the call where it failed at once before: it answers again, and the fault shown is over. Until
    // 7 Dec 2026 such a fault (503s) stayed shown until the held call came back, up to the whole wait on a quiet session
    // (a dashboard audit). The count of failures stays until an answer: a call that fails after all backs off further.
    if (wasRefused) this.recovered();
    else if (this.upstreamError !== null && this.faultWasQuick) this.upstreamError = null;
    void this.publish([], this.opts.sink.nextIndex);
  }

  /** A changes answer that disagrees with `/status` (another status, or a claimed end) sends the loop to ask it. */
  private needsStatus(top: ChangesTop): boolean {
    if (top.status === this.snapshot.status && !changesClaimOver(top)) return false;
    const key = `${top.status}|${top.finished_at}`;
    // Already asked about this very disagreement moments ago (a lagging side): ask again only after a while.
    if (key === this.lastDisagreement.key && Date.now() - this.lastDisagreement.atMs < DISAGREEMENT_RECHECK_MS) return false;
    this.lastDisagreement = { key, atMs: Date.now() };
    return true;
  }

  /**
   * The answer and finished_at come only in a changes body, and after the end
   * the upstream answers "nothing new" with a bare 204: ask again for the last
   * event held, without its data, to get that body. The same answer checks the
   * end: from the last event held, with room for two, exactly that one comes
   * back, under a status that does not say the session goes on; from 0 (none
   * held) none. Otherwise the upstream has more than was read (a changes side
   * that lags `/status`, empty answers that were not true): 'contradicted'.
   */
  private async readFinalBody(): Promise<EndVerdict> {
    const { client, sink } = this.opts;
    const held = sink.nextIndex;
    for (let attempt = 1; attempt <= FINAL_BODY_ATTEMPTS && !this.signal.aborted; attempt++) {
      if (!(await this.gate.take(this.signal))) return 'unknown';
      const r = await client.changes(sink.sessionId, { fromIndex: Math.max(0, held - 1), limit: held > 0 ? 2 : 1, includeEvents: false, waitSeconds: 0 }, this.signal);
      if (r.kind === 'events') {
        const top = r.changes.top;
        if (r.changes.new_events.length !== Math.min(held, 1) || (GOING_ON_STATUSES.has(top.status) && top.finished_at === null)) return 'contradicted';
        const settling = held === 0 ? this.emptyEndWaitMs() : 0;
        if (settling > 0) return settling;
        this.snapshot = withChanges(this.snapshot, top);
        return 'confirmed';
      }
      if (r.kind === 'no-change') return held > 0 ? 'contradicted' : this.emptyEndWaitMs() || 'confirmed';
      if (r.kind === 'not-found' || r.kind === 'aborted') return 'unknown';
      // Kept to as every failure is (a 429's Retry-After included): drop-in callers and a later leader are told. Not
      // after the last attempt, which is not followed by a call.
      if (attempt === FINAL_BODY_ATTEMPTS) break;
      if (!(await this.pause(this.holdOff(r, attempt)))) return 'unknown';
    }
    this.opts.log.warn({ session: sink.sessionId }, 'could not read the final answer; ending without it');
    return 'unknown';
  }
}
