/**
 * One scenario against one target: a fresh server process, the streams opened
 * by the load client, a warm-up, then the measured window (server CPU from
 * /proc, deliveries, latency, loss, memory) and the upstream request count.
 * A resume scenario's window starts before the streams open: what the server
 * does to serve a resume (catching up, replaying) is what it measures.
 */
import { ClientPool } from './client-pool.ts';
import type { StreamSpec } from './client-protocol.ts';
import { emitPhase } from './emitter.ts';
import { delay, loadAverage1, processFdCount, processRssKb, processRssPeakKb, slabKb, waitForQuiet } from './processes.ts';
import { nullIfNaN, type Row, type UpstreamCalls } from './row.ts';
import type { Scenario } from './scenarios.ts';
import type { SimControl } from './sim-control.ts';
import { startTarget, type Target, type TargetName, type TargetOptions } from './targets.ts';
import { closeWindow, openWindow, otherShare, type WindowStart, type WindowSubjects } from './window.ts';
import type { MemorySampler } from './memory-sampler.ts';

export type { Row } from './row.ts';

/** How often the client is asked whether every stream got everything (ms). */
const POLL_MS = 100;
/** Extra time, past the emission itself, for the last events to arrive (ms). */
const DRAIN_TIMEOUT_MS = 30_000;
/** Machine-wide busy share under which the machine counts as quiet (both cores; 0.15 = 30% of one core). */
const QUIET_BUSY_SHARE = 0.15;
/**
 * A client process above this share of a core over the window, or this busy over one slice of it, was
 * the bottleneck (SAT in the table): a load client busy for a whole delivery sets the latency, however idle
 * it is between deliveries (bench/RESULTS.md, issue 21, twelfth round).
 */
const CLIENT_SATURATED_SHARE = 0.9;

export interface MeasureContext {
  sim: SimControl;
  targetOptions: TargetOptions;
  clientCore: number | null;
  serverCore: number | null;
  /** The simulator's pid (its CPU time is ours on the client core). */
  simPid: number;
  /** `--busy-neighbour`: the spinner's pid (its CPU is not other load), or null. */
  neighbourPid: number | null;
  /** Before each measurement, wait (up to the given ms) for the machine to be nearly idle; null: do not wait. */
  quietWaitMs: number | null;
  cwd: string;
  runId: string;
  /** Streams this run actually opens (the scenario's, possibly capped). */
  streamsPerSession: number;
  /** Pause after the server started and after the streams opened, before RSS is read (ms). */
  settleMs: number;
  /** `--memory`: samples the server's memory before and after the streams open; null otherwise. */
  memory: MemorySampler | null;
  log: (line: string) => void;
}

/** Opens each spec's `count` streams, spread evenly over the target's ports (a cluster's instances). */
async function openSpread(pool: ClientPool, target: Target, specs: StreamSpec[], localAddresses: string[]): Promise<{ opened: number; failed: number; failures: Record<string, number>; ms: number }> {
  const out = { opened: 0, failed: 0, failures: {} as Record<string, number>, ms: 0 };
  const n = target.ports.length;
  for (const [k, port] of target.ports.entries()) {
    const share = specs.map((s) => ({ ...s, count: Math.floor(s.count / n) + (k < s.count % n ? 1 : 0) })).filter((s) => s.count > 0);
    if (share.length === 0) continue;
    const r = await pool.open(target.host, port, share, localAddresses);
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

/** The streams of each session: a resume sends Last-Event-ID and times only the live events. */
function streamSpecs(scenario: Scenario, paths: string[], perPath: number): StreamSpec[] {
  if (scenario.schedule !== 'resume') return paths.map((path) => ({ path, count: perPath }));
  const lastEventId = scenario.historyEvents - scenario.resumeBack;
  return paths.map((path) => ({ path, count: perPath, lastEventId, latencyFromIndex: scenario.historyEvents }));
}

/** Upstream requests of `ids` since the last stats reset, by kind, and the most changes calls of one session in flight at once. */
export async function upstreamOf(sim: SimControl, ids: string[]): Promise<{ requests: number; calls: UpstreamCalls; maxInFlight: number }> {
  const perSession = await sim.sessionStats();
  const calls: UpstreamCalls = { changes: 0, zeroWait: 0, waiting: 0, status: 0 };
  let maxInFlight = 0;
  for (const id of ids) {
    const s = perSession[id];
    if (!s) continue;
    calls.changes += s.changes;
    calls.zeroWait += s.changesByWait.zero;
    calls.waiting += s.changesByWait.waiting;
    calls.status += s.status;
    maxInFlight = Math.max(maxInFlight, s.maxInFlightChanges);
  }
  return { requests: calls.changes + calls.status, calls, maxInFlight };
}

function batchesPerSession(scenario: Scenario): number {
  if (scenario.schedule === 'rate') return scenario.warmupEvents + scenario.measuredEvents;
  if (scenario.schedule === 'burst') return scenario.warmupEvents > 0 ? 2 : 1;
  return scenario.schedule === 'resume' ? 1 : 0;
}

/** Runs `scenario` against a fresh `target` process. */
export async function measure(scenario: Scenario, targetName: TargetName, ctx: MeasureContext): Promise<Row> {
  const { sim, log } = ctx;
  // Memory is sampled around the opening of idle streams only: a sample forces a full GC, which must not fall in a window.
  const memory = scenario.schedule === 'idle' ? ctx.memory : null;
  if (ctx.quietWaitMs !== null) {
    const busy = await waitForQuiet(QUIET_BUSY_SHARE, ctx.quietWaitMs);
    if (busy > QUIET_BUSY_SHARE) log(`  (machine still ${(busy * 100).toFixed(0)}% busy after ${ctx.quietWaitMs / 1000} s of waiting; measuring anyway)`);
  }
  const load1Start = loadAverage1();
  const resume = scenario.schedule === 'resume';
  const ids = Array.from({ length: scenario.sessions }, (_, i) => `${ctx.runId}-${scenario.key}-${targetName}-${i}`);
  const spec = { ...(scenario.detailBytes === undefined ? {} : { detailBytes: scenario.detailBytes }), ...(resume ? { initialEvents: scenario.historyEvents } : {}) };
  for (const id of ids) await sim.createSession(id, spec);
  const paths = ids.map((id) => `/sessions/${id}/events`);
  const total = ctx.streamsPerSession * scenario.sessions;

  const target = await startTarget(targetName, ctx.targetOptions);
  let pool: ClientPool | undefined;
  try {
    await sim.resetStats();
    const upstreamStart = performance.now();
    await delay(ctx.settleMs / 2);
    const sumOver = (f: (pid: number) => number) => target.pids.reduce((n, pid) => n + f(pid), 0);
    const rssIdleKb = sumOver(processRssKb);
    const nodePids = target.pids.filter((pid) => pid !== target.redisPid);
    const memoryBefore = await memory?.sample(nodePids);
    pool = ClientPool.start(total, ctx.clientCore, ctx.cwd);
    const subjects: WindowSubjects = { pids: target.pids, redisPid: target.redisPid, simPid: ctx.simPid, serverCore: ctx.serverCore, clientCore: ctx.clientCore, neighbourPid: ctx.neighbourPid };
    let win: WindowStart | null = null;
    if (resume) {
      await pool.mark();
      win = openWindow(subjects);
    }
    const slabBeforeKb = slabKb();
    const localAddresses = total > 25_000 ? ['127.0.0.1', '127.0.0.2', '127.0.0.3'] : ['127.0.0.1'];
    const open = await openSpread(pool, target, streamSpecs(scenario, paths, ctx.streamsPerSession), localAddresses);
    // The live events of a resume land as soon as every stream has its head: the server is still catching up.
    if (resume) await emitPhase(sim, scenario, ids, scenario.measuredEvents);
    log(`  ${targetName}: ${open.opened}/${total} streams open in ${open.ms} ms${open.failed ? `, failures ${JSON.stringify(open.failures)}` : ''}`);
    if (!resume) await delay(ctx.settleMs);
    const rssOpenKb = sumOver(processRssKb);
    const slabAfterKb = slabKb();
    const serverFds = sumOver(processFdCount);
    const memoryAfter = await memory?.sample(nodePids);

    const expect: Record<string, number> = {};
    const setExpected = (n: number) => paths.forEach((p) => (expect[p] = n));
    setExpected(resume ? scenario.historyEvents : 0);
    const want = open.opened;
    const drainMs = scenario.drainTimeoutMs ?? DRAIN_TIMEOUT_MS;
    if (scenario.schedule === 'rate' || scenario.schedule === 'burst') {
      setExpected(scenario.warmupEvents);
      await emitPhase(sim, scenario, ids, scenario.warmupEvents);
      await waitComplete(pool, expect, want, drainMs);
    }
    // Read before the window opens, so that the control call falls outside it; a resume's window opened before any
    // stream, when no loop had called yet (the stats were reset at the start).
    const changesAtWindow = resume ? 0 : (await upstreamOf(sim, ids)).calls.changes;
    if (!win) {
      await pool.mark();
      win = openWindow(subjects);
    }
    if (scenario.schedule === 'idle') {
      await delay(scenario.holdMs);
    } else if (resume) {
      setExpected(scenario.historyEvents + scenario.measuredEvents);
      await waitComplete(pool, expect, want, drainMs);
    } else {
      setExpected(scenario.warmupEvents + scenario.measuredEvents);
      await emitPhase(sim, scenario, ids, scenario.measuredEvents);
      await waitComplete(pool, expect, want, drainMs);
    }
    const w = closeWindow(subjects, win);
    const rssEndKb = sumOver(processRssKb);
    const rssPeakKb = sumOver(processRssPeakKb);
    const stats = await pool.stats(expect, true);
    const up = await upstreamOf(sim, ids);
    const upstreamMinutes = (performance.now() - upstreamStart) / 60_000;
    const serverCpuUs = w.serverUserUs + w.serverSysUs;
    const oursOnClientCoreUs = stats.totalCpuUs + w.simCpuUs + w.selfCpuUs;
    const deliveries = stats.receivedWindow;
    const batches = batchesPerSession(scenario);
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
      windowMs: Math.round(w.windowMs),
      deliveriesPerSec: deliveries / (w.windowMs / 1000),
      bytesPerDelivery: deliveries > 0 ? stats.bytesWindow / deliveries : null,
      serverCpuMs: serverCpuUs / 1000,
      serverSysShare: serverCpuUs > 0 ? w.serverSysUs / serverCpuUs : 0,
      serverCoreOtherShare: otherShare(w.serverCoreBusyUs, serverCpuUs, w.windowMs),
      neighbourCoreShare: w.neighbourCpuUs === null ? null : w.neighbourCpuUs / 1000 / w.windowMs,
      clientCoreOtherShare: otherShare(w.clientCoreBusyUs, oursOnClientCoreUs, w.windowMs),
      cpuUsPerDelivery: deliveries > 0 ? serverCpuUs / deliveries : null,
      p50Ms: nullIfNaN(h.quantile(0.5)),
      p99Ms: nullIfNaN(h.quantile(0.99)),
      maxMs: nullIfNaN(h.quantile(1)),
      firstEventP50Ms: resume ? nullIfNaN(stats.firstEvent.quantile(0.5)) : null,
      firstEventMaxMs: resume ? nullIfNaN(stats.firstEvent.quantile(1)) : null,
      rssIdleKb,
      rssOpenKb,
      rssEndKb,
      rssPeakKb,
      // A resume's handful of streams says nothing per stream; its memory is the catch-up (peak).
      rssKbPerStream: open.opened > 0 && !resume ? (rssOpenKb - rssIdleKb) / open.opened : Number.NaN,
      kernelKbPerStream: scenario.schedule === 'idle' && open.opened > 0 ? (slabAfterKb - slabBeforeKb) / 2 / open.opened : Number.NaN,
      serverFds,
      lost: stats.lost,
      duplicated: stats.duplicated,
      stale: stats.stale,
      upstreamRequests: up.requests,
      upstreamCalls: up.calls,
      upstreamPerSessionMinute: up.requests / scenario.sessions / upstreamMinutes,
      upstreamChangesPerSessionMinute: up.calls.changes / scenario.sessions / upstreamMinutes,
      upstreamChangesInWindowPerSessionMinute: (up.calls.changes - changesAtWindow) / scenario.sessions / (w.windowMs / 60_000),
      upstreamChangesInWindowPerSession: (up.calls.changes - changesAtWindow) / scenario.sessions,
      upstreamPerBatch: batches > 0 ? up.requests / scenario.sessions / batches : null,
      upstreamMaxInFlight: up.maxInFlight,
      clientCpuShare: stats.maxCpuShare,
      clientBusiestSliceShare: stats.busiestSliceShare,
      clientSaturated: stats.maxCpuShare > CLIENT_SATURATED_SHARE || stats.busiestSliceShare > CLIENT_SATURATED_SHARE,
      simCpuShare: w.simCpuUs / 1000 / w.windowMs,
      orchestratorCpuShare: w.selfCpuUs / 1000 / w.windowMs,
      load1Start,
      load1End: loadAverage1(),
      runs: 1,
      serverProcesses: target.pids.length,
      redisCpuMs: w.redisCpuUs === null ? null : w.redisCpuUs / 1000,
      memory: memory && memoryBefore && memoryAfter && open.opened > 0 ? memory.perStream(memoryBefore, memoryAfter, open.opened) : null,
    };
  } finally {
    await pool?.close();
    await target.stop();
    for (const id of ids) await sim.deleteSession(id).catch(() => undefined);
  }
}
