/** One simulated session's state and its held long-polls (shared by the store and the dialects). */
import type { EventGenerator } from './generator.ts';
import type { AnyMetrics, ReceivedBody, SessionEvent } from './types.ts';

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
  /** ISO 8601 creation time (the REST API's `created_at`). */
  readonly createdAt: string;
  /** The organisation whose keys see this session; undefined: every key sees it. */
  readonly organisation: string | undefined;
  /** The `SessionRequest` it was created with (the REST API's `request`). */
  readonly request: Record<string, unknown>;
  /** Made publicly readable by `POST …/share`. */
  shared: boolean;
  /** Bodies received by `messages` and `tool_results`, newest last (bounded), so tests can check bytes arrived intact. */
  readonly received: ReceivedBody[];
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


