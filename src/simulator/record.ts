/** One simulated session's state and its held long-polls (shared by the store and the dialects). */
import type { EventGenerator } from './generator.ts';
import type { AnyMetrics, SessionEvent } from './types.ts';

/** Why a held long-poll is woken up. */
export type ChangeReason = 'events' | 'status' | 'finished' | 'deleted' | 'closed';

/** A held changes request waiting for events at or after `fromIndex`. */
export interface Waiter {
  readonly fromIndex: number;
  onChange(reason: ChangeReason): void;
}

/** One session's whole state. */
export interface SessionRecord {
  readonly id: string;
  readonly createdSeq: number;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  answer: unknown;
  /** The generator's own metrics object, grown in place. */
  readonly metrics: AnyMetrics;
  readonly events: SessionEvent[];
  readonly waiters: Set<Waiter>;
  readonly generator: EventGenerator;
  emitTimer: NodeJS.Timeout | undefined;
}

