/**
 * Where a loop writes what it learns. The upstream side owns this interface;
 * the in-process feed implements it, and in cluster mode a writer to the
 * shared log does, so the loop never depends on who reads.
 */
import type { Snapshot } from './snapshot.ts';
import type { UpstreamEvent } from './types.ts';

/** How the upstream answers "nothing new": `204`, or (simplified upstreams) a `200` with no events. */
export type EmptyAnswerStyle = '204' | '200';

/** One step of the loop: events (possibly none) and the state after them. */
export interface LoopUpdate {
  /** Index of events[0]; events below the sink's nextIndex are already held and skipped. */
  fromIndex: number;
  events: readonly UpstreamEvent[];
  snapshot: Snapshot;
  /** True when the loop's latest answer showed it holds everything the upstream has (a 204 or an empty page). */
  synced: boolean;
  /**
   * True while the loop's latest changes call failed (it is backing off): what it holds may be behind the upstream,
   * however `synced` last stood. Absent: false.
   */
  failing?: boolean;
  /**
   * While `failing`: when the loop calls the upstream again (ms since the epoch, wall clock: the instances of a
   * cluster tell their callers alike). Absent: not said.
   */
  retryAtMs?: number;
  /** Set while the upstream fails or refuses; null once it answers again. */
  upstreamError: string | null;
  /** How the upstream answered its latest "nothing new", once seen. */
  emptyStyle?: EmptyAnswerStyle;
  /**
   * When the status this update shows was first recorded (ms since the epoch), on a clock every instance shares
   * (cluster mode: Redis's, carried by the shared log), so each instance dates the same status alike. Absent (a
   * loop's own update): the status is dated when the sink first shows it.
   */
  statusSinceMs?: number;
  /**
   * Set on the last update: `end` goes out after the events. 'over': the
   * session is over and drained; 'refused': the upstream kept refusing (such
   * a session is not cached as finished).
   */
  end?: 'over' | 'refused';
}

/** The `retryAtMs` field of an update or a log state: said only while failing, and only when known. */
export function retryAtPart(failing: boolean | undefined, retryAtMs: number | undefined): { retryAtMs?: number } {
  return failing === true && retryAtMs !== undefined && retryAtMs > 0 ? { retryAtMs } : {};
}

/** What a loop writes into. */
export interface LoopSink {
  readonly sessionId: string;
  /** The `include_events` value the loop asks with. */
  readonly includeEvents: boolean;
  /** Index the loop continues from. */
  readonly nextIndex: number;
  /** Index of the oldest event held (where a fresh sink was asked to start). */
  readonly baseIndex: number;
  /** The snapshot the loop starts from (kept from an earlier loop of the same session). */
  readonly snapshot: Snapshot;
  /**
   * Records one step. Resolves false when the write was refused (cluster
   * mode: this loop lost its lease), and the loop must stop.
   */
  publish(update: LoopUpdate): boolean | Promise<boolean>;
  /** Moves the start of an empty sink (the loop found the requested start beyond the session's events). */
  rebase(index: number): void;
}
