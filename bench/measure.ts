/**
 * One scenario against one target: a fresh server process, the streams opened
 * by the load client, a warm-up, then the measured window (server CPU from
 * /proc, deliveries, latency, loss) and the upstream request count.
 */
import { ClientPool, type PoolStats } from './client-pool.ts';
import { emitPhase } from './emitter.ts';
import { coreTicks, delay, loadAverage1, processCpu, processFdCount, processRssKb, ticksToUs, waitForQuiet } from './processes.ts';
import type { Scenario } from './scenarios.ts';
import type { SimControl } from './sim-control.ts';
import { startTarget, type Target, type TargetName, type TargetOptions } from './targets.ts';

/** How often the client is asked whether every stream got everything (ms). */
const POLL_MS = 100;
/** Extra time, past the emission itself, for the last events to arrive (ms). */
const DRAIN_TIMEOUT_MS = 30_000;
/** Machine-wide busy share under which the machine counts as quiet (both cores; 0.15 = 30% of one core). */
const QUIET_BUSY_SHARE = 0.15;

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
  serverCpuMs: number;
  /** Kernel share of the server's CPU time in the window. */
  serverSysShare: number;
  /** Time the server's core spent on anything but the server in the window, as a share of the window (interference). */
  serverCoreOtherShare: number | null;
  /** Time the client's core spent on anything but the load client, simulator and orchestrator, as a share of the window. */
  clientCoreOtherShare: number | null;
  cpuUsPerDelivery: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  rssIdleKb: number;
  rssOpenKb: number;
  rssKbPerStream: number;
  serverFds: number;
  lost: number;
  duplicated: number;
  upstreamRequests: number;
  upstreamPerSessionMinute: number;
  /** Upstream requests per session per appended batch (null when nothing was appended). */
  upstreamPerBatch: number | null;
  /** Most changes calls of one session in flight at once (1 = one loop per session). */
  upstreamMaxInFlight: number;
  clientCpuShare: number;
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
}

export interface MeasureContext {
  sim: SimControl;
  targetOptions: TargetOptions;
  clientCore: number | null;
  serverCore: number | null;
  /** The simulator's pid (its CPU time is ours on the client core). */
  simPid: number;
  /** Before each measurement, wait (up to the given ms) for the machine to be nearly idle; null: do not wait. */
  quietWaitMs: number | null;
  cwd: string;
  runId: string;
  /** Streams this run actually opens (the scenario's, possibly capped). */
  streamsPerSession: number;
  /** Pause after the server started and after the streams opened, before RSS is read (ms). */
  settleMs: number;
  log: (line: string) => void;
}

/** Opens `perPath` streams on every path, spread evenly over the target's ports (a cluster's instances). */
async function openSpread(pool: ClientPool, target: Target, paths: string[], perPath: number, localAddresses: string[]): Promise<{ opened: number; failed: number; failures: Record<string, number>; ms: number }> {
  const out = { opened: 0, failed: 0, failures: {} as Record<string, number>, ms: 0 };
  const n = target.ports.length;
  for (const [k, port] of target.ports.entries()) {
    const count = Math.floor(perPath / n) + (k < perPath % n ? 1 : 0);
    if (count === 0) continue;
    const r = await pool.open(target.host, port, paths.map((path) => ({ path, count })), localAddresses);
    out.opened += r.opened;
    out.failed += r.failed;
    out.ms += r.ms;
    for (const [key, v] of Object.entries(r.failures)) out.failures[key] = (out.failures[key] ?? 0) + v;
  }
  return out;
}

async function waitComplete(pool: ClientPool, expect: Record<string, number>, want: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const s = await pool.stats(expect, false);
    if (s.complete >= want || s.open === 0) return;
    await delay(POLL_MS);
  }
}

const nullIfNaN = (n: number): number | null => (Number.isNaN(n) ? null : n);

/** Runs `scenario` against a fresh `target` process. */
export async function measure(scenario: Scenario, targetName: TargetName, ctx: MeasureContext): Promise<Row> {
  const { sim, log } = ctx;
  if (ctx.quietWaitMs !== null) {
    const busy = await waitForQuiet(QUIET_BUSY_SHARE, ctx.quietWaitMs);
    if (busy > QUIET_BUSY_SHARE) log(`  (machine still ${(busy * 100).toFixed(0)}% busy after ${ctx.quietWaitMs / 1000} s of waiting; measuring anyway)`);
  }
  const load1Start = loadAverage1();
  const ids = Array.from({ length: scenario.sessions }, (_, i) => `${ctx.runId}-${scenario.key}-${targetName}-${i}`);
  for (const id of ids) await sim.createSession(id);
  const paths = ids.map((id) => `/sessions/${id}/events`);
  const total = ctx.streamsPerSession * scenario.sessions;

  const target = await startTarget(targetName, ctx.targetOptions);
  let pool: ClientPool | undefined;
  try {
    await sim.resetStats();
    const upstreamStart = performance.now();
    await delay(ctx.settleMs / 2);
    const sumOver = (f: (pid: number) => number) => target.pids.reduce((n, pid) => n + f(pid), 0);
    const serverCpu = () => target.pids.map(processCpu).reduce((a, b) => ({ userUs: a.userUs + b.userUs, sysUs: a.sysUs + b.sysUs }));
    const rssIdleKb = sumOver(processRssKb);
    pool = ClientPool.start(total, ctx.clientCore, ctx.cwd);
    const localAddresses = total > 25_000 ? ['127.0.0.1', '127.0.0.2', '127.0.0.3'] : ['127.0.0.1'];
    const open = await openSpread(pool, target, paths, ctx.streamsPerSession, localAddresses);
    log(`  ${targetName}: ${open.opened}/${total} streams open in ${open.ms} ms${open.failed ? `, failures ${JSON.stringify(open.failures)}` : ''}`);
    await delay(ctx.settleMs);
    const rssOpenKb = sumOver(processRssKb);
    const serverFds = sumOver(processFdCount);

    const expect: Record<string, number> = {};
    const setExpected = (n: number) => paths.forEach((p) => (expect[p] = n));
    setExpected(0);
    const want = open.opened;
    if (scenario.schedule !== 'idle') {
      setExpected(scenario.warmupEvents);
      await emitPhase(sim, scenario, ids, scenario.warmupEvents);
      await waitComplete(pool, expect, want, DRAIN_TIMEOUT_MS);
    }
    await pool.mark();
    const cpu0 = serverCpu();
    const redis0 = target.redisPid === null ? null : processCpu(target.redisPid);
    const ticks0 = coreTicks();
    const sim0 = processCpu(ctx.simPid);
    const self0 = process.cpuUsage();
    const t0 = performance.now();
    if (scenario.schedule === 'idle') {
      await delay(scenario.holdMs);
    } else {
      setExpected(scenario.warmupEvents + scenario.measuredEvents);
      await emitPhase(sim, scenario, ids, scenario.measuredEvents);
      await waitComplete(pool, expect, want, DRAIN_TIMEOUT_MS);
    }
    const windowMs = performance.now() - t0;
    const cpu1 = serverCpu();
    const redis1 = target.redisPid === null ? null : processCpu(target.redisPid);
    const ticks1 = coreTicks();
    const sim1 = processCpu(ctx.simPid);
    const self = process.cpuUsage(self0);
    const serverUserUs = cpu1.userUs - cpu0.userUs;
    const serverSysUs = cpu1.sysUs - cpu0.sysUs;
    const serverCpuUs = serverUserUs + serverSysUs;
    const coreBusyUs = (core: number | null): number | null => (core === null || !ticks0[core] || !ticks1[core] ? null : ticksToUs(ticks1[core].busy - ticks0[core].busy));
    const serverCoreBusyUs = coreBusyUs(ctx.serverCore);
    const clientCoreBusyUs = coreBusyUs(ctx.clientCore);
    const stats: PoolStats = await pool.stats(expect, true);
    const oursOnClientCoreUs = stats.totalCpuUs + (sim1.userUs + sim1.sysUs - sim0.userUs - sim0.sysUs) + self.user + self.system;
    const otherShare = (busyUs: number | null, oursUs: number): number | null => (busyUs === null ? null : Math.max(0, (busyUs - oursUs) / 1000 / windowMs));
    const upstreamMinutes = (performance.now() - upstreamStart) / 60_000;
    const perSession = await sim.sessionStats();
    let upstreamRequests = 0;
    let upstreamMaxInFlight = 0;
    for (const id of ids) {
      const s = perSession[id];
      if (!s) continue;
      upstreamRequests += s.changes + s.status;
      upstreamMaxInFlight = Math.max(upstreamMaxInFlight, s.maxInFlightChanges);
    }
    const deliveries = stats.receivedWindow;
    const batchesPerSession = scenario.schedule === 'rate' ? scenario.warmupEvents + scenario.measuredEvents : scenario.schedule === 'burst' ? (scenario.warmupEvents > 0 ? 2 : 1) : 0;
    const h = stats.histogram;
    return {
      scenario: scenario.key,
      title: scenario.title,
      target: targetName,
      schedule: scenario.schedule,
      sessions: scenario.sessions,
      streams: total,
      fdCapped: ctx.streamsPerSession < scenario.streamsPerSession,
      opened: open.opened,
      failedOpens: open.failed,
      failures: open.failures,
      closedEarly: stats.closedEarly,
      deliveries,
      windowMs: Math.round(windowMs),
      deliveriesPerSec: deliveries / (windowMs / 1000),
      serverCpuMs: serverCpuUs / 1000,
      serverSysShare: serverCpuUs > 0 ? serverSysUs / serverCpuUs : 0,
      serverCoreOtherShare: otherShare(serverCoreBusyUs, serverCpuUs),
      clientCoreOtherShare: otherShare(clientCoreBusyUs, oursOnClientCoreUs),
      cpuUsPerDelivery: deliveries > 0 ? serverCpuUs / deliveries : null,
      p50Ms: nullIfNaN(h.quantile(0.5)),
      p99Ms: nullIfNaN(h.quantile(0.99)),
      maxMs: nullIfNaN(h.quantile(1)),
      rssIdleKb,
      rssOpenKb,
      rssKbPerStream: open.opened > 0 ? (rssOpenKb - rssIdleKb) / open.opened : Number.NaN,
      serverFds,
      lost: stats.lost,
      duplicated: stats.duplicated,
      upstreamRequests,
      upstreamPerSessionMinute: upstreamRequests / scenario.sessions / upstreamMinutes,
      upstreamPerBatch: batchesPerSession > 0 ? upstreamRequests / scenario.sessions / batchesPerSession : null,
      upstreamMaxInFlight,
      clientCpuShare: stats.maxCpuShare,
      clientSaturated: stats.maxCpuShare > 0.9,
      simCpuShare: (sim1.userUs + sim1.sysUs - sim0.userUs - sim0.sysUs) / 1000 / windowMs,
      orchestratorCpuShare: (self.user + self.system) / 1000 / windowMs,
      load1Start,
      load1End: loadAverage1(),
      runs: 1,
      serverProcesses: target.pids.length,
      redisCpuMs: redis0 && redis1 ? (redis1.userUs + redis1.sysUs - redis0.userUs - redis0.sysUs) / 1000 : null,
    };
  } finally {
    await pool?.close();
    await target.stop();
  }
}
