/** What the orchestrator and the hop probe (bench/hop-probe.ts) say to each other: JSON lines matched by `seq`. */
import type { HistogramData } from './latency-histogram.ts';

/** Starts one long-poll loop per session. */
export interface HopStartCommand {
  op: 'start';
  seq: number;
  sessions: string[];
}

/** Starts the measured window: latency samples, window counters and CPU restart from zero. */
export interface HopMarkCommand {
  op: 'mark';
  seq: number;
}

/** Reports counters; `expect` is the index every session's loop should have reached. */
export interface HopStatsCommand {
  op: 'stats';
  seq: number;
  expect: number;
  histogram: boolean;
}

/** Stops the loops and exits. */
export interface HopCloseCommand {
  op: 'close';
  seq: number;
}

export type HopCommand = HopStartCommand | HopMarkCommand | HopStatsCommand | HopCloseCommand;

/** Answer to `stats`. */
export interface HopStatsReply {
  seq: number;
  /** Events received since `mark`. */
  receivedWindow: number;
  /** Sessions whose loop reached `expect`. */
  complete: number;
  /** Events short of `expect`, over all sessions. */
  missing: number;
  /** Failed upstream calls (errors, non-200/204 answers). */
  failures: number;
  histogram: HistogramData | null;
  /** This process's CPU time since `mark` (µs). */
  cpuUs: number;
  wallMs: number;
}
