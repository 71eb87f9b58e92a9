/**
 * What the orchestrator and a load-client process say to each other: one JSON
 * object per line, commands on the client's stdin, replies on its stdout,
 * matched by `seq`.
 */
import type { HistogramData } from './latency-histogram.ts';

/** Streams to open on one path (`count` connections). */
export interface StreamSpec {
  path: string;
  count: number;
  /** Sent as `Last-Event-ID`: the stream resumes after this index (its counter starts at the next one). */
  lastEventId?: number;
  /** Only events at or after this index are timed (a resume's replayed history was emitted long before). */
  latencyFromIndex?: number;
}

/** Opens streams; resolves once each got its response head (or failed). */
export interface OpenCommand {
  op: 'open';
  seq: number;
  host: string;
  port: number;
  streams: StreamSpec[];
  /** Connections being opened at once. */
  concurrency: number;
  /** Source addresses used in turn (loopback 127.0.0.x spreads the ephemeral port space). */
  localAddresses: string[];
}

/** Starts the measured window: latency samples, window counters and CPU restart from zero. */
export interface MarkCommand {
  op: 'mark';
  seq: number;
}

/** Reports counters; `expect` maps a path to the index its streams should have reached. */
export interface StatsCommand {
  op: 'stats';
  seq: number;
  expect: Record<string, number>;
  histogram: boolean;
}

/** Destroys every stream and exits. */
export interface CloseCommand {
  op: 'close';
  seq: number;
}

export type ClientCommand = OpenCommand | MarkCommand | StatsCommand | CloseCommand;

/** Answer to `open`. */
export interface OpenReply {
  seq: number;
  opened: number;
  failed: number;
  /** Failure causes (`http 429`, `ECONNRESET`, …) and their counts. */
  failures: Record<string, number>;
  ms: number;
}

/** Answer to `stats`. */
export interface StatsReply {
  seq: number;
  /** Streams opened with a 200. */
  streams: number;
  /** Streams whose connection is still open. */
  open: number;
  /** Streams that closed before an `end` frame (or errored) after opening. */
  closedEarly: number;
  receivedTotal: number;
  /** Event frames received since `mark`. */
  receivedWindow: number;
  /** Body bytes read since `mark` (every frame the streams carried, status and comments included). */
  bytesWindow: number;
  lost: number;
  duplicated: number;
  /** Event frames before a stream's resume point (history it already had). */
  stale: number;
  /** Streams that reached their expected index. */
  complete: number;
  ended: number;
  histogram: HistogramData | null;
  /** Per stream, from sending its request to its first wanted event (ms); with `histogram`. */
  firstEvent: HistogramData | null;
  /** This process's CPU time since `mark` (µs, user + system). */
  cpuUs: number;
  /** Wall time since `mark` (ms). */
  wallMs: number;
  /**
   * Highest event-loop utilization over one slice (≥ 100 ms) since `mark`: near 1 when the process had
   * unread streams for a whole slice, however idle it was on average over the window.
   */
  busiestSliceShare: number;
}

/** Generic acknowledgement (`mark`, `close`). */
export interface AckReply {
  seq: number;
  ok: true;
}
