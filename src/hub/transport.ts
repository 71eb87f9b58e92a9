/**
 * Where a feed's events come from and who runs its loop, behind one narrow
 * interface owned by the hub that uses it (`transport/` implements it):
 * `transport/memory.ts` runs the loop in this process (the default); cluster
 * mode runs it wherever the session's lease is and carries events through a
 * shared log. The hub depends on this interface only.
 */
import type { Feed } from './feed.ts';
import type { FailureOutcome } from '../upstream/client.ts';
import type { FirstContact, PollerState } from '../upstream/poller.ts';
import type { UpstreamEvent } from '../upstream/types.ts';

/** A feed being kept up to date. */
export interface Supply {
  /** Resolves once the first contact is known (the session exists, or the upstream could not say yet). */
  readonly firstContact: Promise<FirstContact>;
  /** Resolves when the supply stopped: the session ended, or its signal aborted. */
  readonly done: Promise<void>;
  /** What the loop is doing ('stopped' where it runs elsewhere). */
  readonly loopState: PollerState;
  /** When a waiting loop calls the upstream again (ms since the epoch: backoff or Retry-After); 0 when it is not waiting or runs elsewhere. */
  readonly retryAtMs: number;
  /**
   * Asks for a fresher `/status` (drop-in status pollers); resolves when answered or when not possible.
   * `force`: the session was just changed through pollcast, so the minimum interval between refreshes is skipped.
   */
  refreshStatus(force?: boolean): Promise<void>;
}

/** The source of every feed of the process. */
export interface Transport {
  /** Keeps `feed` up to date until the session ends or `signal` aborts. */
  supply(feed: Feed, signal: AbortSignal): Supply;
  /** Events from `from` on (at most `to - from`, at least one when any exist), for a subscriber behind the buffer. */
  history(feed: Feed, from: number, to: number, signal: AbortSignal): Promise<UpstreamEvent[] | FailureOutcome>;
  /**
   * A write made through this instance changed `sessionId` (pause, messages, …): the loops that run it in other
   * processes ask `/status` at once (cluster mode). The hub refreshes this process's own loops itself.
   */
  nudge?(sessionId: string): void;
  /** Stops everything the transport runs (idempotent). */
  close(): Promise<void>;
  /** True when a session's feed may come from a log other processes' loops write (cluster mode). */
  readonly shared?: boolean;
  /** The state of the store it depends on, for readiness ('ok', 'unreachable', ...); absent when there is none. */
  storeState?(): string;
  /**
   * Whether this process may be behind another one of its cluster for a while: it cannot read the shared store
   * now, or reads it again since less than a lease (a leader may not be writing it yet). Absent when alone.
   */
  mayLag?(): boolean;
}
