/** The benchmark's scenarios, full size and in miniature (`--quick`). */
import type { TargetName } from './targets.ts';

/** How events reach a scenario's sessions. */
export type Schedule =
  /** `eventsPerSecond` single events per session, spread evenly over sessions. */
  | 'rate'
  /** All of a phase's events appended at once (one simulator tick), per session. */
  | 'burst'
  /** No events: streams stay open and idle for `holdMs`. */
  | 'idle'
  /**
   * Sessions already hold `historyEvents` events; streams open with
   * `Last-Event-ID` = history − `resumeBack`, and `measuredEvents` live events
   * are appended the moment every stream has its response head.
   */
  | 'resume'
  /** No stream: `measuredEvents` requests forwarded through pollcast, each against the same request made directly (bench/paths.ts). */
  | 'forwarding'
  /** `sessions` x `streamsPerSession` dashboards watch `GET /sessions/events` for `holdMs`; upstream list calls counted (bench/paths.ts). */
  | 'list';

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
  /** Events per session inside the measured window (resume: the live events). */
  measuredEvents: number;
  /** Idle schedule: how long the open streams are held before measuring (ms). */
  holdMs: number;
  /** Wanted stream count when the descriptor limit may cap it (the max-streams scenario). */
  cappedByFdLimit: boolean;
  /** Simulator (simple dialect): approximate bytes of each event's `data.details`; undefined = its default (200). */
  detailBytes?: number;
  /** Resume schedule: events each session holds before any stream opens. */
  historyEvents: number;
  /** Resume schedule: streams resume this many events before the end of the history. */
  resumeBack: number;
  /** Time allowed, past the emission, for every stream to get every event (ms); undefined = DRAIN_TIMEOUT_MS. */
  drainTimeoutMs?: number;
  /** Also measure the upstream hop alone (a `hop` row: a probe long-polling the simulator as the servers do). */
  hopProbe?: boolean;
  /** The targets this scenario compares, when not those of --targets (the cluster scenario: one pollcast against three on Redis). */
  targets?: TargetName[];
}

/** Every scenario key, in run order. */
export const SCENARIO_KEYS = ['one-session', 'push-delay', 'many-sessions', 'payload', 'burst', 'idle', 'idle-sessions', 'max-streams', 'resume-short', 'resume-long', 'cluster', 'forwarding', 'session-list'] as const;

/** The scenarios of issue 21's new paths: pollcast alone (the naive server has neither). */
export const POLLCAST_ONLY: TargetName[] = ['pollcast'];

/** What the cluster scenario compares: the same load on one pollcast and on three pollcast processes sharing one redis-server. */
export const CLUSTER_TARGETS: TargetName[] = ['pollcast', 'cluster'];

/** The real API's screenshots are base64 of tens to hundreds of KB; the payload scenario's events carry this much (bytes). */
export const PAYLOAD_DETAIL_BYTES = 100_000;
/** Details of the resume scenarios' history events: small, so 100,000 of them stay cheap to create and hold (bytes). */
const HISTORY_DETAIL_BYTES = 20;
/** The naive server reads a 100,000-event history page by page and sends all of it to every stream: allow it that long (ms). */
const LONG_HISTORY_DRAIN_MS = 180_000;

const base = { eventsPerSecond: 0, warmupEvents: 0, measuredEvents: 0, holdMs: 0, cappedByFdLimit: false, historyEvents: 0, resumeBack: 0 };

/** Full-size scenarios (each target within a minute or two). */
export const FULL: Scenario[] = [
  // The rate rows measure 30 s (40 s with ~100 KB events), not 15-20 s: a window that short hid the memory a running
  // session's replay buffer grows to (bench/RESULTS.md, fifteenth round: payload peak RSS 0.95x at 20 s, 1.30x at 40 s).
  // The hop row gives the upstream's own delivery at 20 ev/s: what pollcast adds over it is issue 21's "no batching" figure.
  { ...base, key: 'one-session', title: '1 session x 2,000 streams @ 20 ev/s', sessions: 1, streamsPerSession: 2000, schedule: 'rate', eventsPerSecond: 20, warmupEvents: 20, measuredEvents: 600, hopProbe: true },
  // The same rate with few subscribers: what the bridge itself adds to the upstream's delivery, without the time
  // one core takes to write each event to 2,000 sockets (which the naive server pays as well).
  { ...base, key: 'push-delay', title: '1 session x 20 streams @ 20 ev/s', sessions: 1, streamsPerSession: 20, schedule: 'rate', eventsPerSecond: 20, warmupEvents: 20, measuredEvents: 600, hopProbe: true },
  { ...base, key: 'many-sessions', title: '100 sessions x 20 streams @ 2 ev/s', sessions: 100, streamsPerSession: 20, schedule: 'rate', eventsPerSecond: 2, warmupEvents: 2, measuredEvents: 60, hopProbe: true },
  // 0.5 ev/s per session: 1,000 deliveries/s of ~100 KB (~100 MB/s) is what one client core can read while the
  // simulator on the same core builds and serves 50 such events a second.
  { ...base, key: 'payload', title: '100 sessions x 20 streams @ 0.5 ev/s, ~100 KB events', sessions: 100, streamsPerSession: 20, schedule: 'rate', eventsPerSecond: 0.5, warmupEvents: 1, measuredEvents: 20, detailBytes: PAYLOAD_DETAIL_BYTES, hopProbe: true },
  { ...base, key: 'burst', title: '1 session x 1,000 streams, burst of 1,000', sessions: 1, streamsPerSession: 1000, schedule: 'burst', warmupEvents: 100, measuredEvents: 1000 },
  { ...base, key: 'idle', title: '10,000 idle streams on 1 session', sessions: 1, streamsPerSession: 10_000, schedule: 'idle', holdMs: 5_000 },
  { ...base, key: 'idle-sessions', title: '10,000 idle streams over 100 sessions', sessions: 100, streamsPerSession: 100, schedule: 'idle', holdMs: 5_000 },
  { ...base, key: 'max-streams', title: '20,000 streams @ 1 ev/s', sessions: 1, streamsPerSession: 20_000, schedule: 'rate', eventsPerSecond: 1, warmupEvents: 2, measuredEvents: 10, cappedByFdLimit: true },
  { ...base, key: 'resume-short', title: '10 streams resume 10 before the end of 1,000 events, 1 live event', sessions: 1, streamsPerSession: 10, schedule: 'resume', historyEvents: 1_000, resumeBack: 10, measuredEvents: 1, detailBytes: HISTORY_DETAIL_BYTES },
  { ...base, key: 'resume-long', title: '10 streams resume 10 before the end of 100,000 events, 1 live event', sessions: 1, streamsPerSession: 10, schedule: 'resume', historyEvents: 100_000, resumeBack: 10, measuredEvents: 1, detailBytes: HISTORY_DETAIL_BYTES, drainTimeoutMs: LONG_HISTORY_DRAIN_MS },
  // 2 ev/s per session stays under the loop's own rate gate (4 requests/s per session), which would otherwise batch
  // events and hide the hop being measured.
  { ...base, key: 'cluster', title: '20 sessions x 50 streams @ 2 ev/s: 1 process vs 3 on one Redis', sessions: 20, streamsPerSession: 50, schedule: 'rate', eventsPerSecond: 2, warmupEvents: 4, measuredEvents: 40, targets: CLUSTER_TARGETS },
  { ...base, key: 'forwarding', title: '2,000 GET /api/v2/sessions forwarded vs direct, loopback', sessions: 5, streamsPerSession: 0, schedule: 'forwarding', measuredEvents: 2_000, targets: POLLCAST_ONLY },
  { ...base, key: 'session-list', title: '100 dashboards on GET /sessions/events for 30 s', sessions: 1, streamsPerSession: 100, schedule: 'list', holdMs: 30_000, targets: POLLCAST_ONLY },
];

/** The same scenarios in miniature: a smoke run of a few seconds each. */
export const QUICK: Scenario[] = [
  { ...base, key: 'one-session', title: '1 session x 50 streams @ 20 ev/s', sessions: 1, streamsPerSession: 50, schedule: 'rate', eventsPerSecond: 20, warmupEvents: 5, measuredEvents: 20, hopProbe: true },
  { ...base, key: 'push-delay', title: '1 session x 5 streams @ 20 ev/s', sessions: 1, streamsPerSession: 5, schedule: 'rate', eventsPerSecond: 20, warmupEvents: 5, measuredEvents: 20, hopProbe: true },
  { ...base, key: 'many-sessions', title: '10 sessions x 5 streams @ 2 ev/s', sessions: 10, streamsPerSession: 5, schedule: 'rate', eventsPerSecond: 2, warmupEvents: 1, measuredEvents: 3, hopProbe: true },
  { ...base, key: 'payload', title: '5 sessions x 4 streams @ 2 ev/s, ~100 KB events', sessions: 5, streamsPerSession: 4, schedule: 'rate', eventsPerSecond: 2, warmupEvents: 1, measuredEvents: 3, detailBytes: PAYLOAD_DETAIL_BYTES, hopProbe: true },
  { ...base, key: 'burst', title: '1 session x 50 streams, burst of 200', sessions: 1, streamsPerSession: 50, schedule: 'burst', warmupEvents: 20, measuredEvents: 200 },
  { ...base, key: 'idle', title: '200 idle streams on 1 session', sessions: 1, streamsPerSession: 200, schedule: 'idle', holdMs: 500 },
  { ...base, key: 'idle-sessions', title: '200 idle streams over 10 sessions', sessions: 10, streamsPerSession: 20, schedule: 'idle', holdMs: 500 },
  { ...base, key: 'max-streams', title: '300 streams @ 2 ev/s', sessions: 1, streamsPerSession: 300, schedule: 'rate', eventsPerSecond: 2, warmupEvents: 1, measuredEvents: 3, cappedByFdLimit: true },
  { ...base, key: 'resume-short', title: '3 streams resume 10 before the end of 1,000 events, 1 live event', sessions: 1, streamsPerSession: 3, schedule: 'resume', historyEvents: 1_000, resumeBack: 10, measuredEvents: 1, detailBytes: HISTORY_DETAIL_BYTES },
  { ...base, key: 'resume-long', title: '3 streams resume 10 before the end of 10,000 events, 1 live event', sessions: 1, streamsPerSession: 3, schedule: 'resume', historyEvents: 10_000, resumeBack: 10, measuredEvents: 1, detailBytes: HISTORY_DETAIL_BYTES },
  { ...base, key: 'cluster', title: '3 sessions x 12 streams @ 2 ev/s: 1 process vs 3 on one Redis', sessions: 3, streamsPerSession: 12, schedule: 'rate', eventsPerSecond: 2, warmupEvents: 2, measuredEvents: 4, targets: CLUSTER_TARGETS },
  { ...base, key: 'forwarding', title: '50 GET /api/v2/sessions forwarded vs direct, loopback', sessions: 3, streamsPerSession: 0, schedule: 'forwarding', measuredEvents: 50, targets: POLLCAST_ONLY },
  { ...base, key: 'session-list', title: '10 dashboards on GET /sessions/events for 4 s', sessions: 1, streamsPerSession: 10, schedule: 'list', holdMs: 4_000, targets: POLLCAST_ONLY },
];
