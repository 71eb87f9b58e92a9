/** One measured row of the results table (a scenario against one target), and what every row shares. */
import type { Scenario } from './scenarios.ts';
import type { TargetName } from './targets.ts';

/** Upstream requests of a row's sessions, by kind (simulator counters). */
export interface UpstreamCalls {
  changes: number;
  /** Changes calls with wait_for_seconds=0 (paging, catching up). */
  zeroWait: number;
  /** Changes calls that asked to wait (long-polls). */
  waiting: number;
  status: number;
}

/** One row of the results table. */
export interface Row {
  scenario: string;
  title: string;
  target: TargetName;
  schedule: Scenario['schedule'];
  sessions: number;
  streams: number;
  /** The scenario asked for more streams than the open-files limit allows; `streams` is the capped count. */
  fdCapped: boolean;
  opened: number;
  failedOpens: number;
  failures: Record<string, number>;
  /** Streams that closed early or errored after opening. */
  closedEarly: number;
  deliveries: number;
  windowMs: number;
  deliveriesPerSec: number;
  /**
   * Body bytes a client read per event delivered in the window (status frames and comments included): what the
   * load client had to parse, which sets latency where the client's core is the bottleneck (SAT).
   */
  bytesPerDelivery: number | null;
  serverCpuMs: number;
  /** Kernel share of the server's CPU time in the window. */
  serverSysShare: number;
  /** Time the server's core spent on anything but the server in the window, as a share of the window (interference). */
  serverCoreOtherShare: number | null;
  /** `--busy-neighbour`: share of a core the spinner took during the window (left out of serverCoreOtherShare). */
  neighbourCoreShare?: number | null;
  /** Time the client's core spent on anything but the load client, simulator and orchestrator, as a share of the window. */
  clientCoreOtherShare: number | null;
  cpuUsPerDelivery: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** Resume schedule: per stream, request sent → first event after its Last-Event-ID (median and slowest stream). */
  firstEventP50Ms: number | null;
  firstEventMaxMs: number | null;
  /** VmRSS (KB) after start, before any stream. */
  rssIdleKb: number;
  /** VmRSS (KB) once the streams opened (and settled). */
  rssOpenKb: number;
  /** VmRSS (KB) at the end of the measured window. */
  rssEndKb: number;
  /** VmHWM (KB): the highest RSS of the process's life, read at the end of the window. */
  rssPeakKb: number;
  rssKbPerStream: number;
  /**
   * Idle schedule: growth of the machine's kernel slab per stream while the streams opened, halved (on loopback
   * both ends are sockets of this kernel). Machine-wide, so other work moves it; NaN for other schedules.
   */
  kernelKbPerStream: number;
  serverFds: number;
  lost: number;
  duplicated: number;
  /** Event frames sent before a stream's resume point: history the client already had. */
  stale: number;
  upstreamRequests: number;
  upstreamCalls: UpstreamCalls;
  upstreamPerSessionMinute: number;
  /** Changes calls alone per session per minute (the naive server makes no status call). */
  upstreamChangesPerSessionMinute: number;
  /**
   * Changes calls per session per minute inside the measured window only (after the warm-up): the steady
   * state's rate, without the calls of a loop's start (its first-contact read) that a short window inflates.
   */
  upstreamChangesInWindowPerSessionMinute: number;
  /**
   * Changes calls per session from the measured window's start until every delivery arrived, as a count: both servers read the same sessions
   * through the same schedule of events, so counts compare like for like, where a rate divides by a window
   * that ends with each server's own last delivery (a slower tail lowers the rate).
   */
  upstreamChangesInWindowPerSession: number;
  /** Upstream requests per session per appended batch (null when nothing was appended). */
  upstreamPerBatch: number | null;
  /** Most changes calls of one session in flight at once (1 = one loop per session). */
  upstreamMaxInFlight: number;
  clientCpuShare: number;
  /** Highest event-loop utilization of one client process over one slice (≥ 100 ms) of the window. */
  clientBusiestSliceShare: number;
  clientSaturated: boolean;
  /** CPU of the simulator and of this orchestrator over the window, as shares of one core (they share the client core). */
  simCpuShare: number;
  orchestratorCpuShare: number;
  load1Start: number;
  load1End: number;
  /** Measurements folded into this row (medians; errors are the worst run's). */
  runs: number;
  /** Server-side processes measured together (a cluster: its pollcast processes and redis-server). */
  serverProcesses: number;
  /** The redis-server's CPU time in the window (cluster only; included in serverCpuMs). */
  redisCpuMs: number | null;
  /**
   * Each run's figure, in run order (a folded row; one value for a single run), for the spread (min–median–max)
   * and for the per-run verdicts of issue 21 (run k of pollcast against run k of the baseline).
   */
  each?: Partial<Record<SpreadField, Array<number | null>>>;
  /** Extra figures of the scenarios that are not fan-out (forwarding, session list), by name. */
  extra?: Record<string, number | null>;
  /** Each run's extra figures, in run order (a folded row). */
  eachExtra?: Record<string, Array<number | null>>;
  /** `--memory` runs: where the memory of the open streams went (see memory-probe.ts); null otherwise. */
  memory: MemoryBreakdown | null;
}

/** Per stream (KB): how the growth from before the streams to after them splits (process.memoryUsage and V8 heap spaces). */
export interface MemoryBreakdown {
  rss: number;
  /** Live JS objects after a full GC. */
  heapUsedAfterGc: number;
  /** Heap reserved before that GC (live + garbage + slack). */
  heapTotal: number;
  /** Physical memory of the young generation (grown by allocation churn, kept by RSS). */
  newSpacePhysical: number;
  /** Physical memory of the old generation and the other spaces. */
  oldSpacesPhysical: number;
  /** Memory of C++ objects bound to JS (buffers included). */
  external: number;
  /** RSS not accounted for by the V8 heap or external memory (native: sockets' libuv/http-parser state, malloc). */
  otherNative: number;
}

/** The figures whose spread over runs the report shows and the goals of issue 21 judge run by run. */
export const SPREAD_FIELDS = ['bytesPerDelivery', 'cpuUsPerDelivery', 'p50Ms', 'p99Ms', 'rssKbPerStream', 'rssPeakKb', 'upstreamPerSessionMinute', 'upstreamChangesPerSessionMinute', 'upstreamChangesInWindowPerSessionMinute', 'upstreamChangesInWindowPerSession', 'serverCoreOtherShare', 'clientCoreOtherShare'] as const;
export type SpreadField = (typeof SPREAD_FIELDS)[number];

/** A number, or null where the measurement did not produce one. */
export const nullIfNaN = (n: number): number | null => (Number.isNaN(n) ? null : n);
