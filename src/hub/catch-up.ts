/**
 * Replay, then live, with no gap, for one reader of one feed (a
 * single-session stream, or one session of a multiplexed stream): what the
 * buffer no longer holds is fetched again from upstream, the buffer is
 * replayed in slices paced by the connection, then the reader is registered
 * for live chunks.
 */
import type { Logger } from 'pino';
import type { FeedListener } from './feed.ts';
import { eventFrame, type Frame } from './frames.ts';
import { historyFailureSettled, type FeedEntry, type Hub } from './hub.ts';
import type { CloseReason } from './connection.ts';
import { backoffDelayMs, sleep, DEFAULT_BACKOFF } from '../upstream/backoff.ts';
import { LONG_RETRY_AFTER_SHOWN_MS } from '../upstream/poller.ts';
import type { Stats } from '../metrics.ts';

/** The longest a reader catching up waits between history reads past the feed's hold on them (ms). */
const HISTORY_RETRY_MAX_MS = 2000;

/** Failed reads of held-out history in a row before its reader is told (`historyTrouble`), or closed where it cannot be. */
export const HISTORY_FETCH_ATTEMPTS = 4;
/**
 * Bytes of buffered history written to a replaying subscriber at once; the
 * next slice waits for its socket to drain, so however long the history, a
 * replay holds about this much (or one history page) per subscriber.
 */
export const REPLAY_SLICE_BYTES = 64 * 1024;
/** A replaying subscriber whose socket takes nothing for this long is dropped as slow (it resumes by Last-Event-ID). */
export const REPLAY_DRAIN_TIMEOUT_MS = 30_000;

/** What replay-then-live needs from one reader of one feed. */
export interface FeedReader extends FeedListener {
  /** Index of the next event the reader needs. */
  readonly next: number;
  readonly closed: boolean;
  /** Aborts when the reader's stream closes. */
  readonly signal: AbortSignal;
  /** The last status frame written (shared bytes, compared by identity). */
  readonly statusSent: Buffer | null;
  /** Writes replayed events [next, next + frames.length) (frames as the feed holds them) and moves `next` on. */
  writeEvents(frames: readonly Frame[]): void;
  /** Writes a status frame the reader has not seen. */
  writeStatus(frame: Buffer): void;
  /** Resolves true once the connection took the earlier writes; false if the stream closed or stalled. */
  drained(timeoutMs: number): Promise<boolean>;
  /** Closes the reader's stream. */
  close(reason: CloseReason): void;
  /**
   * Its history cannot be read (failures in a row, a long Retry-After): it is told why (shown as its
   * `upstream_error`) and keeps trying, as a stream opened while the loop fails does. A reader without it is closed
   * instead (its client resumes by Last-Event-ID).
   */
  historyTrouble?(reason: string): void;
  /**
   * Such a reader whose session's history the upstream refuses for good (a 404 that lasted): it ends alone, as a
   * lane whose session proves not to exist at its open does, while the stream goes on.
   */
  historyRefused?(): void;
}

/** Per feed, the failure of its history reads last warned of (its time heard): see catchUp. */
const warnedFailure = new WeakMap<object, number>();

/** What a catch-up uses. */
export interface CatchUpDeps {
  hub: Hub;
  stats: Stats;
  log: Logger;
}

/**
 * Brings `reader` up to the feed and registers it. The last check and the
 * registration run in one synchronous block, so no event can be appended in
 * between; after every wait all is checked again (the buffer may have been
 * trimmed past the reader meanwhile).
 */
export async function catchUp(deps: CatchUpDeps, entry: FeedEntry, reader: FeedReader): Promise<void> {
  const { feed } = entry;
  const { stats } = deps;
  let failures = 0;
  let fromBuffer = false;
  while (!reader.closed) {
    if (reader.next < feed.baseIndex) {
      const from = reader.next;
      const r = await deps.hub.fetchHistory(entry, from, feed.baseIndex, reader.signal);
      if (reader.closed) return;
      if (Array.isArray(r) && r.length > 0) {
        stats.replayFromUpstream++;
        failures = 0;
        // In slices paced by the socket, as buffer replays are: a page of screenshots written at once
        // would sit unsent against the slow-reader bound when a live frame (another lane) or a heartbeat follows.
        const frames = r.map((e, k) => eventFrame(from + k, e));
        for (let at = 0; at < frames.length; ) {
          let end = at + 1;
          let bytes = frames[at]!.length;
          while (end < frames.length && bytes + frames[end]!.length <= REPLAY_SLICE_BYTES) bytes += frames[end++]!.length;
          reader.writeEvents(frames.slice(at, end));
          at = end;
          if (!(await reader.drained(REPLAY_DRAIN_TIMEOUT_MS))) return;
        }
        continue;
      }
      const kind = Array.isArray(r) ? 'empty' : r.kind;
      // Aborted for this reader only when it closed; otherwise (the upstream client closing, say) it counts as a failure.
      if (kind === 'aborted' && reader.closed) return;
      failures++;
      // The upstream's refusal, once a 404 has lasted (historyFailureSettled): until then it is retried as a failure.
      const refused = !Array.isArray(r) && (r.kind === 'unauthorized' || (r.kind === 'not-found' && historyFailureSettled(r.failing)));
      // Not before the hold on the feed's history reads ends (a 429's Retry-After): sooner gets the same failure again.
      const heldMs = Array.isArray(r) || r.failing === undefined ? 0 : r.failing.retryAtMs - Date.now();
      // A wait of seconds is said at once, as the loop says a long Retry-After: not silence until it ends (a review).
      const longWait = heldMs >= LONG_RETRY_AFTER_SHOWN_MS;
      // A lane of a session gone ends alone; until 7 Dec 2026 it kept trying for good (an audit: 335 s and more).
      // (Not where loops run on callers' keys: there a 404 says only that some keys cannot see the session.)
      if (refused && r.kind === 'not-found' && reader.historyRefused && deps.hub.notFoundIsGone) {
        deps.log.warn({ session: feed.sessionId, from }, 'history refused upstream (404); this session of the stream ends');
        reader.historyRefused();
        return;
      }
      if (failures >= HISTORY_FETCH_ATTEMPTS || refused || longWait) {
        // One warning per failure heard from the upstream; its readers served it again (joined to the read, or held
        // afterwards) say it at debug level: each reconnect during a long Retry-After added a warning line (an audit,
        // 7 Dec 2026: 150 lines in 15 s for six readers).
        const heardAt = Array.isArray(r) || r.failing === undefined ? undefined : r.failing.lastMs;
        const say = (fields: Record<string, unknown>, msg: string): void => {
          if (heardAt !== undefined && warnedFailure.get(feed) === heardAt) return deps.log.debug(fields, msg);
          if (heardAt !== undefined) warnedFailure.set(feed, heardAt);
          deps.log.warn(fields, msg);
        };
        // A refusal (401/403, a 404 that lasted) keeps trying only where the reader shares its stream (a lane, which
        // can end alone: historyRefused): a single stream is closed, and its reconnect is answered as an open is.
        if (reader.historyTrouble && (!refused || reader.historyRefused)) {
          if (failures === HISTORY_FETCH_ATTEMPTS || refused || longWait) {
            say({ session: feed.sessionId, from, outcome: kind }, 'history fetch failed; this session of the stream keeps trying');
          }
          reader.historyTrouble(`history unavailable upstream (${kind}); retrying`);
        } else {
          say({ session: feed.sessionId, from, outcome: kind }, 'history fetch failed; closing so the client resumes later');
          reader.close('upstream');
          return;
        }
      }
      // The hold bounds what its readers cost the upstream: a reader past it asks again within HISTORY_RETRY_MAX_MS, not
      // on a backoff grown for minutes (lanes recovered up to 15 s after the upstream, an audit found).
      if (!(await sleep(Math.max(Math.min(backoffDelayMs(failures, DEFAULT_BACKOFF), HISTORY_RETRY_MAX_MS), heldMs), reader.signal))) return;
      continue;
    }
    const frames = reader.next < feed.nextIndex ? feed.heldFrames(reader.next, REPLAY_SLICE_BYTES) : null;
    if (frames) {
      reader.writeEvents(frames);
      fromBuffer = true;
      if (!(await reader.drained(REPLAY_DRAIN_TIMEOUT_MS))) return;
      continue;
    }
    if (fromBuffer) stats.replayFromBuffer++;
    // The status may have changed while the replay waited on the socket: a reader
    // registered without it would show a stale status until the next change (maybe never).
    if (feed.statusFrame !== reader.statusSent) reader.writeStatus(feed.statusFrame);
    // That write may have closed it (past its bound): a closed reader is never registered again.
    if (reader.closed) return;
    if (feed.endFrame) reader.onEnd(feed.endFrame);
    else feed.listeners.add(reader);
    return;
  }
}
