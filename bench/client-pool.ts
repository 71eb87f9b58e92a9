/**
 * The orchestrator's side of the load client: several client processes on the
 * client core (one process holds at most PER_PROCESS_STREAMS sockets, under the
 * descriptor limit), driven together and their reports merged.
 */
import { LatencyHistogram } from './latency-histogram.ts';
import { LineChild } from './line-child.ts';
import { startService, stopProcess } from './processes.ts';
import type { ClientCommand, OpenReply, StatsReply, StreamSpec } from './client-protocol.ts';

/** Streams one client process opens at most (its sockets must fit the descriptor limit). */
export const PER_PROCESS_STREAMS = 10_000;
/** Connections each client process opens at once. */
const OPEN_CONCURRENCY = 128;

type ClientProcess = LineChild<ClientCommand>;

/** Merged answer of every client process. */
export interface PoolStats {
  streams: number;
  open: number;
  closedEarly: number;
  receivedTotal: number;
  receivedWindow: number;
  /** Body bytes the streams carried since `mark`. */
  bytesWindow: number;
  lost: number;
  duplicated: number;
  /** Event frames before a stream's resume point (history the client already had). */
  stale: number;
  complete: number;
  ended: number;
  histogram: LatencyHistogram;
  /** Per stream: request sent → first wanted event (ms). */
  firstEvent: LatencyHistogram;
  /** Highest CPU use of one client process over the window, as a share of one core. */
  maxCpuShare: number;
  /** CPU time of all client processes over the window (µs). */
  totalCpuUs: number;
  /** Highest event-loop utilization of one client process over one slice of the window (0..1). */
  busiestSliceShare: number;
}

/** The load client processes of one measurement. */
export class ClientPool {
  private readonly procs: ClientProcess[];

  private constructor(procs: ClientProcess[]) {
    this.procs = procs;
  }

  /** Starts enough client processes for `streams` streams on `core`. */
  static start(streams: number, core: number | null, cwd: string): ClientPool {
    const count = Math.max(1, Math.ceil(streams / PER_PROCESS_STREAMS));
    const procs: ClientProcess[] = [];
    for (let i = 0; i < count; i++) procs.push(new LineChild<ClientCommand>(startService({ name: `client${i}`, core, script: 'bench/client.ts', cwd }), 'client'));
    return new ClientPool(procs);
  }

  /** Opens the streams, spread evenly over the processes. */
  async open(host: string, port: number, specs: StreamSpec[], localAddresses: string[]): Promise<{ opened: number; failed: number; failures: Record<string, number>; ms: number }> {
    const shares: StreamSpec[][] = this.procs.map(() => []);
    for (const spec of specs) {
      const base = Math.floor(spec.count / this.procs.length);
      let extra = spec.count % this.procs.length;
      for (const share of shares) {
        const n = base + (extra-- > 0 ? 1 : 0);
        if (n > 0) share.push({ ...spec, count: n });
      }
    }
    const replies = await Promise.all(this.procs.map((p, i) => p.send<OpenReply>({ op: 'open', host, port, streams: shares[i]!, concurrency: OPEN_CONCURRENCY, localAddresses })));
    const failures: Record<string, number> = {};
    for (const r of replies) for (const [k, n] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + n;
    return {
      opened: replies.reduce((n, r) => n + r.opened, 0),
      failed: replies.reduce((n, r) => n + r.failed, 0),
      failures,
      ms: Math.max(...replies.map((r) => r.ms)),
    };
  }

  /** Starts the measured window in every process. */
  async mark(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.send({ op: 'mark' })));
  }

  /** Merged counters; `expect` maps each path to the index its streams should reach. */
  async stats(expect: Record<string, number>, histogram: boolean): Promise<PoolStats> {
    const replies = await Promise.all(this.procs.map((p) => p.send<StatsReply>({ op: 'stats', expect, histogram })));
    const merged = new LatencyHistogram();
    const first = new LatencyHistogram();
    for (const r of replies) {
      if (r.histogram) merged.merge(r.histogram);
      if (r.firstEvent) first.merge(r.firstEvent);
    }
    const sum = (k: keyof StatsReply) => replies.reduce((n, r) => n + (r[k] as number), 0);
    return {
      streams: sum('streams'),
      open: sum('open'),
      closedEarly: sum('closedEarly'),
      receivedTotal: sum('receivedTotal'),
      receivedWindow: sum('receivedWindow'),
      bytesWindow: sum('bytesWindow'),
      lost: sum('lost'),
      duplicated: sum('duplicated'),
      stale: sum('stale'),
      complete: sum('complete'),
      ended: sum('ended'),
      histogram: merged,
      firstEvent: first,
      maxCpuShare: Math.max(...replies.map((r) => (r.wallMs > 0 ? r.cpuUs / 1000 / r.wallMs : 0))),
      totalCpuUs: sum('cpuUs'),
      busiestSliceShare: Math.max(...replies.map((r) => r.busiestSliceShare)),
    };
  }

  /** Closes every stream and stops the processes. */
  async close(): Promise<void> {
    await Promise.all(
      this.procs.map(async (p) => {
        await Promise.race([p.send({ op: 'close' }).catch(() => undefined), new Promise((r) => setTimeout(r, 5_000))]);
        await stopProcess(p.child, 'SIGKILL', 1_000);
      }),
    );
  }
}
