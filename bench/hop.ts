/**
 * The `hop` row of a scenario: no server and no streams, only the hop probe
 * (bench/hop-probe.ts) on the server core, long-polling the scenario's
 * sessions as both servers do, under the same event schedule. Its latency is
 * the part of a server's delivery latency spent before the server has the
 * event; its CPU per event is what the hop costs a server per event.
 */
import { emitPhase } from './emitter.ts';
import type { HopCommand, HopStatsReply } from './hop-protocol.ts';
import { LatencyHistogram } from './latency-histogram.ts';
import { LineChild } from './line-child.ts';
import { upstreamOf, type MeasureContext } from './measure.ts';
import { delay, loadAverage1, startService, stopProcess, waitForQuiet } from './processes.ts';
import { nullIfNaN, type Row } from './row.ts';
import type { Scenario } from './scenarios.ts';
import { closeWindow, openWindow, otherShare, type WindowSubjects } from './window.ts';

/** How often the probe is asked whether every loop got everything (ms). */
const POLL_MS = 100;
/** Time allowed for the loops' first long-polls to reach the simulator, and for the last events to arrive (ms). */
const START_TIMEOUT_MS = 10_000;
const DRAIN_TIMEOUT_MS = 30_000;
/** Machine-wide busy share under which the machine counts as quiet (as measure.ts). */
const QUIET_BUSY_SHARE = 0.15;

type Probe = LineChild<HopCommand>;

async function waitLoops(probe: Probe, expect: number, sessions: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const s = await probe.send<HopStatsReply>({ op: 'stats', expect, histogram: false });
    if (s.complete >= sessions) return;
    await delay(POLL_MS);
  }
}

/** Measures the upstream hop alone under `scenario`'s schedule (rate or burst scenarios). */
export async function measureHop(scenario: Scenario, ctx: MeasureContext): Promise<Row> {
  const { sim } = ctx;
  if (scenario.schedule !== 'rate' && scenario.schedule !== 'burst') throw new Error(`the hop probe needs events on a schedule; ${scenario.key} has none`);
  if (ctx.quietWaitMs !== null) {
    const busy = await waitForQuiet(QUIET_BUSY_SHARE, ctx.quietWaitMs);
    if (busy > QUIET_BUSY_SHARE) ctx.log(`  (machine still ${(busy * 100).toFixed(0)}% busy after ${ctx.quietWaitMs / 1000} s of waiting; measuring anyway)`);
  }
  const load1Start = loadAverage1();
  const ids = Array.from({ length: scenario.sessions }, (_, i) => `${ctx.runId}-${scenario.key}-hop-${i}`);
  const spec = scenario.detailBytes === undefined ? {} : { detailBytes: scenario.detailBytes };
  for (const id of ids) await sim.createSession(id, spec);
  const child = startService({ name: 'hop', core: ctx.serverCore, script: 'bench/hop-probe.ts', env: { UPSTREAM_URL: ctx.targetOptions.upstreamUrl }, cwd: ctx.cwd });
  const probe: Probe = new LineChild<HopCommand>(child, 'hop');
  try {
    await sim.resetStats();
    const upstreamStart = performance.now();
    await probe.send({ op: 'start', sessions: ids });
    // Events appended before a loop's first long-poll would come back at once, unlike a held poll's.
    const deadline = performance.now() + START_TIMEOUT_MS;
    while (performance.now() < deadline) {
      const st = await sim.sessionStats();
      if (ids.every((id) => (st[id]?.inFlightChanges ?? 0) > 0)) break;
      await delay(POLL_MS);
    }
    await emitPhase(sim, scenario, ids, scenario.warmupEvents);
    await waitLoops(probe, scenario.warmupEvents, ids.length, DRAIN_TIMEOUT_MS);
    await probe.send({ op: 'mark' });
    const subjects: WindowSubjects = { pids: [child.pid!], redisPid: null, simPid: ctx.simPid, serverCore: ctx.serverCore, clientCore: ctx.clientCore, neighbourPid: ctx.neighbourPid };
    const win = openWindow(subjects);
    const expect = scenario.warmupEvents + scenario.measuredEvents;
    await emitPhase(sim, scenario, ids, scenario.measuredEvents);
    await waitLoops(probe, expect, ids.length, DRAIN_TIMEOUT_MS);
    const w = closeWindow(subjects, win);
    const s = await probe.send<HopStatsReply>({ op: 'stats', expect, histogram: true });
    const h = new LatencyHistogram();
    if (s.histogram) h.merge(s.histogram);
    const { requests, calls, maxInFlight } = await upstreamOf(sim, ids);
    const probeCpuUs = w.serverUserUs + w.serverSysUs;
    const batches = scenario.schedule === 'rate' ? expect : scenario.warmupEvents > 0 ? 2 : 1;
    return {
      scenario: scenario.key,
      title: scenario.title,
      target: 'hop',
      schedule: scenario.schedule,
      sessions: scenario.sessions,
      streams: 0,
      fdCapped: false,
      opened: 0,
      failedOpens: 0,
      failures: s.failures > 0 ? { upstream: s.failures } : {},
      closedEarly: 0,
      // One "delivery" per event received from upstream: the probe fans out to nobody.
      deliveries: s.receivedWindow,
      windowMs: Math.round(w.windowMs),
      deliveriesPerSec: s.receivedWindow / (w.windowMs / 1000),
      bytesPerDelivery: null,
      serverCpuMs: probeCpuUs / 1000,
      serverSysShare: probeCpuUs > 0 ? w.serverSysUs / probeCpuUs : 0,
      serverCoreOtherShare: otherShare(w.serverCoreBusyUs, probeCpuUs, w.windowMs),
      neighbourCoreShare: w.neighbourCpuUs === null ? null : w.neighbourCpuUs / 1000 / w.windowMs,
      clientCoreOtherShare: otherShare(w.clientCoreBusyUs, w.simCpuUs + w.selfCpuUs, w.windowMs),
      cpuUsPerDelivery: s.receivedWindow > 0 ? probeCpuUs / s.receivedWindow : null,
      p50Ms: nullIfNaN(h.quantile(0.5)),
      p99Ms: nullIfNaN(h.quantile(0.99)),
      maxMs: nullIfNaN(h.quantile(1)),
      firstEventP50Ms: null,
      firstEventMaxMs: null,
      rssIdleKb: Number.NaN,
      rssOpenKb: Number.NaN,
      rssEndKb: Number.NaN,
      rssPeakKb: Number.NaN,
      rssKbPerStream: Number.NaN,
      kernelKbPerStream: Number.NaN,
      serverFds: 0,
      lost: s.missing,
      duplicated: 0,
      stale: 0,
      upstreamRequests: requests,
      upstreamCalls: calls,
      upstreamPerSessionMinute: requests / scenario.sessions / ((performance.now() - upstreamStart) / 60_000),
      upstreamChangesPerSessionMinute: calls.changes / scenario.sessions / ((performance.now() - upstreamStart) / 60_000),
      upstreamChangesInWindowPerSessionMinute: Number.NaN,
      upstreamChangesInWindowPerSession: Number.NaN,
      upstreamPerBatch: requests / scenario.sessions / batches,
      upstreamMaxInFlight: maxInFlight,
      clientCpuShare: 0,
      clientBusiestSliceShare: 0,
      clientSaturated: false,
      simCpuShare: w.simCpuUs / 1000 / w.windowMs,
      orchestratorCpuShare: w.selfCpuUs / 1000 / w.windowMs,
      load1Start,
      load1End: loadAverage1(),
      runs: 1,
      serverProcesses: 1,
      redisCpuMs: null,
      memory: null,
    };
  } finally {
    await Promise.race([probe.send({ op: 'close' }).catch(() => undefined), delay(5_000)]);
    await stopProcess(child, 'SIGKILL', 1_000);
    for (const id of ids) await sim.deleteSession(id).catch(() => undefined);
  }
}
