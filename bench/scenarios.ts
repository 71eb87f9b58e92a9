/** The benchmark's scenarios, full size and in miniature (`--quick`). */
import type { TargetName } from './targets.ts';

/** How events reach a scenario's sessions. */
export type Schedule =
  /** `eventsPerSecond` single events per session, spread evenly over sessions. */
  | 'rate'
  /** All of a phase's events appended at once (one simulator tick), per session. */
  | 'burst'
  /** No events: streams stay open and idle for `holdMs`. */
  | 'idle';

export interface Scenario {
  /** Stable key (tests and JSON rows refer to it). */
  key: string;
  title: string;
  sessions: number;
  streamsPerSession: number;
  schedule: Schedule;
  /** Per session (rate schedule). */
  eventsPerSecond: number;
  /** Events per session before the measured window (JIT warm-up, connections settled). */
  warmupEvents: number;
  /** Events per session inside the measured window. */
  measuredEvents: number;
  /** Idle schedule: how long the open streams are held before measuring (ms). */
  holdMs: number;
  /** Wanted stream count when the descriptor limit may cap it (the max-streams scenario). */
  cappedByFdLimit: boolean;
  /** The targets this scenario compares, when not those of --targets (the cluster scenario: one pollcast against three on Redis). */
  targets?: TargetName[];
}

/** Every scenario key, in run order. */
export const SCENARIO_KEYS = ['one-session', 'many-sessions', 'burst', 'idle', 'max-streams', 'cluster'] as const;

/** What the cluster scenario compares: the same load on one pollcast and on three pollcast processes sharing one redis-server. */
export const CLUSTER_TARGETS: TargetName[] = ['pollcast', 'cluster'];

const base = { eventsPerSecond: 0, warmupEvents: 0, measuredEvents: 0, holdMs: 0, cappedByFdLimit: false };

/** Full-size scenarios (each target well under a minute). */
export const FULL: Scenario[] = [
  { ...base, key: 'one-session', title: '1 session x 2,000 streams @ 20 ev/s', sessions: 1, streamsPerSession: 2000, schedule: 'rate', eventsPerSecond: 20, warmupEvents: 20, measuredEvents: 300 },
  { ...base, key: 'many-sessions', title: '100 sessions x 20 streams @ 2 ev/s', sessions: 100, streamsPerSession: 20, schedule: 'rate', eventsPerSecond: 2, warmupEvents: 2, measuredEvents: 30 },
  { ...base, key: 'burst', title: '1 session x 1,000 streams, burst of 1,000', sessions: 1, streamsPerSession: 1000, schedule: 'burst', warmupEvents: 100, measuredEvents: 1000 },
  { ...base, key: 'idle', title: '10,000 idle streams', sessions: 1, streamsPerSession: 10_000, schedule: 'idle', holdMs: 5_000 },
  { ...base, key: 'max-streams', title: '20,000 streams @ 1 ev/s', sessions: 1, streamsPerSession: 20_000, schedule: 'rate', eventsPerSecond: 1, warmupEvents: 2, measuredEvents: 10, cappedByFdLimit: true },
  // 2 ev/s per session stays under the loop's own rate gate (4 requests/s per session), which would otherwise batch
  // events and hide the hop being measured.
  { ...base, key: 'cluster', title: '20 sessions x 50 streams @ 2 ev/s: 1 process vs 3 on one Redis', sessions: 20, streamsPerSession: 50, schedule: 'rate', eventsPerSecond: 2, warmupEvents: 4, measuredEvents: 40, targets: CLUSTER_TARGETS },
];

/** The same scenarios in miniature: a smoke run of a few seconds each. */
export const QUICK: Scenario[] = [
  { ...base, key: 'one-session', title: '1 session x 50 streams @ 20 ev/s', sessions: 1, streamsPerSession: 50, schedule: 'rate', eventsPerSecond: 20, warmupEvents: 5, measuredEvents: 20 },
  { ...base, key: 'many-sessions', title: '10 sessions x 5 streams @ 2 ev/s', sessions: 10, streamsPerSession: 5, schedule: 'rate', eventsPerSecond: 2, warmupEvents: 1, measuredEvents: 3 },
  { ...base, key: 'burst', title: '1 session x 50 streams, burst of 200', sessions: 1, streamsPerSession: 50, schedule: 'burst', warmupEvents: 20, measuredEvents: 200 },
  { ...base, key: 'idle', title: '200 idle streams', sessions: 1, streamsPerSession: 200, schedule: 'idle', holdMs: 500 },
  { ...base, key: 'max-streams', title: '300 streams @ 2 ev/s', sessions: 1, streamsPerSession: 300, schedule: 'rate', eventsPerSecond: 2, warmupEvents: 1, measuredEvents: 3, cappedByFdLimit: true },
  { ...base, key: 'cluster', title: '3 sessions x 12 streams @ 2 ev/s: 1 process vs 3 on one Redis', sessions: 3, streamsPerSession: 12, schedule: 'rate', eventsPerSecond: 2, warmupEvents: 2, measuredEvents: 4, targets: CLUSTER_TARGETS },
];
