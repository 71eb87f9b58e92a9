/**
 * What a leader's loop writes into in cluster mode: each LoopUpdate becomes
 * one APPEND script call (events, then the status when it changed, then the
 * end), fenced by the leader's lease. While Redis is unreachable the write is
 * retried, holding the loop (no upstream call is made that could not be
 * recorded) until it lands or the lease term ends; a refusal stops the loop.
 */
import type { Logger } from 'pino';
import type { LoopSink, LoopUpdate } from '../upstream/sink.ts';
import { utf8Of } from '../upstream/body.ts';
import { RAW_EVENT_JSON, type UpstreamEvent } from '../upstream/types.ts';
import type { Snapshot } from '../upstream/snapshot.ts';
import { sleep } from '../upstream/backoff.ts';
import { statusJson } from '../hub/frames.ts';
import { APPEND, logStateOf, type LogKeys, type LogState } from './redis-log.ts';
import { isOutOfMemory, type RedisConn } from './redis-conn.ts';

/** Pause between two attempts at a write Redis did not take (ms, doubled up to the max). */
export const APPEND_RETRY_MIN_MS = 100;
export const APPEND_RETRY_MAX_MS = 1000;

/** Where the log stands when a lease term starts. */
export interface SinkStart {
  sessionId: string;
  includeEvents: boolean;
  nextIndex: number;
  baseIndex: number;
  snapshot: Snapshot;
  /** The state last written (JSON), so an unchanged one is not written again. */
  stateJson: string;
}

export interface SinkTerm {
  keys: LogKeys;
  /** `<token>:<instance>`, what the lease key must hold for a write to land. */
  leaseValue: string;
  token: number;
  maxEntries: number;
  retentionMs: number;
  /** Aborts when the lease term ends: a write still retrying then gives up. */
  signal: AbortSignal;
}

/** The JSON of an update's status side, as the log stores it. */
export function stateJsonOf(update: Pick<LoopUpdate, 'snapshot' | 'upstreamError' | 'synced' | 'failing' | 'retryAtMs' | 'emptyStyle'>): string {
  return JSON.stringify(logStateOf(update));
}

/**
 * What readers of a state see, as a string to compare: the state without the time of the last `/status`
 * answer, so a refresh that changed nothing else writes no entry (it would push events out of the
 * trimmed log and wake every reader).
 */
export function visibleStateOf(stateJson: string): string {
  if (stateJson === '') return '';
  const state = JSON.parse(stateJson) as LogState;
  return JSON.stringify({ ...state, snapshot: { ...state.snapshot, statusAtMs: 0 } });
}

/** The status readers see of a state (the feed's status frame JSON), as a string to compare; '' for none. */
function shownStatusOf(stateJson: string): string {
  if (stateJson === '') return '';
  const state = JSON.parse(stateJson) as LogState;
  return statusJson(state.snapshot, state.upstreamError);
}

/** An event's log entry: the upstream's own text of it where the client kept one (no parse, no re-serialising), else its JSON. */
function logEntry(e: UpstreamEvent): string {
  const text = e[RAW_EVENT_JSON];
  return text === undefined ? JSON.stringify(e) : utf8Of(text);
}

/** A leader's writer for one lease term. */
export class RedisLogSink implements LoopSink {
  readonly sessionId: string;
  readonly includeEvents: boolean;
  /** Set when Redis refused a write (this instance no longer leads); the loop has stopped. */
  refused = false;
  /** Set once a write carrying the session's end landed. */
  wroteEnd = false;
  /** Set when Redis refused a write for want of memory (maxmemory reached); the loop has stopped. */
  outOfMemory = false;
  private next: number;
  private base: number;
  private snap: Snapshot;
  private visible: string;
  private shown: string;
  private readonly redis: RedisConn;
  private readonly term: SinkTerm;
  private readonly log: Logger;

  constructor(redis: RedisConn, start: SinkStart, term: SinkTerm, log: Logger) {
    this.redis = redis;
    this.term = term;
    this.log = log;
    this.sessionId = start.sessionId;
    this.includeEvents = start.includeEvents;
    this.next = start.nextIndex;
    this.base = start.baseIndex;
    this.snap = start.snapshot;
    this.visible = visibleStateOf(start.stateJson);
    this.shown = shownStatusOf(start.stateJson);
  }

  get nextIndex(): number {
    return this.next;
  }
  get baseIndex(): number {
    return this.base;
  }
  get snapshot(): Snapshot {
    return this.snap;
  }

  rebase(index: number): void {
    if (this.next === this.base) this.next = this.base = index;
  }

  async publish(update: LoopUpdate): Promise<boolean> {
    // Events below the next index are already in the log (a repeated answer): skip them here.
    const skip = Math.max(0, this.next - update.fromIndex);
    const events = update.events.slice(skip);
    const fromIndex = update.fromIndex + skip;
    const stateJson = stateJsonOf(update);
    const visible = visibleStateOf(stateJson);
    const stateChanged = visible !== this.visible;
    if (events.length === 0 && !stateChanged && !update.end) return true;
    // The log dates a status when what readers see of it changes (not on a `synced` flip): see APPEND. Nothing of it
    // changed when the state did not.
    const shown = stateChanged ? statusJson(update.snapshot, update.upstreamError) : this.shown;
    const { keys, leaseValue, token, maxEntries, retentionMs, signal } = this.term;
    // An empty log takes the sink's start (it may have moved back: the requested start was past the session's events).
    const resetTo = this.next === this.base ? String(this.next) : '';
    const args = [leaseValue, String(token), resetTo, String(fromIndex), String(maxEntries), String(retentionMs), stateChanged || update.end ? stateJson : '', update.end ?? '', shown !== this.shown ? '1' : '0', ...events.map(logEntry)];
    for (let delay = APPEND_RETRY_MIN_MS; !signal.aborted; delay = Math.min(APPEND_RETRY_MAX_MS, delay * 2)) {
      let reply: [string, number?];
      try {
        reply = await this.redis.run<[string, number?]>('append', APPEND, [keys.lease, keys.meta, keys.log], args);
      } catch (err) {
        // Full: retrying the same batch while the lease lasts would freeze the session (and the renewals
        // would keep the full log alive). Stop; the supply serves its feed from the upstream meanwhile.
        if (isOutOfMemory(err)) {
          this.outOfMemory = true;
          return false;
        }
        // Unreachable or slow: the write may or may not have landed. Retrying is safe: a landed
        // one makes the retry an 'index' refusal, which ends this term and the next resumes from the log.
        this.log.debug({ session: this.sessionId, err: (err as Error).message }, 'log append failed; retrying');
        if (!(await sleep(delay, signal))) break;
        continue;
      }
      if (reply[0] === 'ok') {
        this.next = Number(reply[1]);
        this.snap = update.snapshot;
        this.visible = visible;
        this.shown = shown;
        if (update.end) this.wroteEnd = true;
        return true;
      }
      this.refused = true;
      this.log.warn({ session: this.sessionId, details: this.includeEvents, refusal: reply[0], logNext: reply[1], from: fromIndex }, 'log append refused: this instance no longer leads the session; its loop stops');
      return false;
    }
    return false;
  }
}
