/**
 * The paths of issue 21 that are not fan-out, each against a simulator of the
 * real API's dialect (base path `/api/v2`, which forwarding needs):
 *
 * - `forwarding`: requests forwarded through pollcast's `/api/v2/...` routes
 *   against the same requests made directly, interleaved one by one on keep-
 *   alive connections over loopback; the row gives the added p50/p99.
 * - `session-list`: many dashboards watching `GET /sessions/events`; the row
 *   gives the upstream list calls per minute (one poller's worth expected).
 */
import { Agent, get } from 'node:http';
import { LatencyHistogram } from './latency-histogram.ts';
import type { MeasureContext } from './measure.ts';
import { delay, firstJsonLine, loadAverage1, processRssKb, startService, stopProcess } from './processes.ts';
import { nullIfNaN, type Row } from './row.ts';
import type { Scenario } from './scenarios.ts';
import { SimControl } from './sim-control.ts';
import { startTarget } from './targets.ts';
import { closeWindow, openWindow, otherShare, type WindowSubjects } from './window.ts';

/** Requests of each kind before the measured ones (connections, JIT). */
const WARMUP_REQUESTS = 100;
/** Sessions the list holds. */
const LIST_SESSIONS = 20;
/** pollcast's default SESSION_LIST_POLL_SECONDS: one poller's pace. */
const LIST_POLL_SECONDS = 3;
/** How long a dashboard may take to get its snapshot (ms). */
const SNAPSHOT_TIMEOUT_MS = 15_000;

/** One GET to completion: status and the time to the body's end (ms). */
function timedGet(url: URL, agent: Agent): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    get({ host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, agent }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** A row with nothing measured yet (the fan-out figures stay empty for these scenarios). */
function blankRow(scenario: Scenario, load1Start: number): Row {
  return {
    scenario: scenario.key, title: scenario.title, target: 'pollcast', schedule: scenario.schedule, sessions: scenario.sessions, streams: 0, fdCapped: false,
    opened: 0, failedOpens: 0, failures: {}, closedEarly: 0, deliveries: 0, windowMs: 0, deliveriesPerSec: 0, bytesPerDelivery: null, serverCpuMs: 0, serverSysShare: 0,
    serverCoreOtherShare: null, clientCoreOtherShare: null, cpuUsPerDelivery: null, p50Ms: null, p99Ms: null, maxMs: null, firstEventP50Ms: null,
    firstEventMaxMs: null, rssIdleKb: Number.NaN, rssOpenKb: Number.NaN, rssEndKb: Number.NaN, rssPeakKb: Number.NaN, rssKbPerStream: Number.NaN,
    kernelKbPerStream: Number.NaN, serverFds: 0, lost: 0, duplicated: 0, stale: 0, upstreamRequests: 0, upstreamCalls: { changes: 0, zeroWait: 0, waiting: 0, status: 0 },
    upstreamPerSessionMinute: Number.NaN, upstreamChangesPerSessionMinute: Number.NaN, upstreamChangesInWindowPerSessionMinute: Number.NaN, upstreamChangesInWindowPerSession: Number.NaN, upstreamPerBatch: null, upstreamMaxInFlight: 0, clientCpuShare: 0, clientBusiestSliceShare: 0, clientSaturated: false, simCpuShare: 0,
    orchestratorCpuShare: 0, load1Start, load1End: load1Start, runs: 1, serverProcesses: 1, redisCpuMs: null, memory: null,
  };
}

/** A real-dialect simulator on the client core, with `sessions` idle sessions; stopped by the caller. */
async function startRealSimulator(ctx: MeasureContext, prefix: string, sessions: number) {
  const child = startService({ name: 'simulator-real', core: ctx.clientCore, script: 'src/simulator/cli.ts', args: ['--port', '0', '--api', 'real'], cwd: ctx.cwd });
  const { simulator: url } = await firstJsonLine<{ simulator: string }>(child);
  child.stdout?.resume();
  const control = new SimControl(new URL(url).origin);
  for (let i = 0; i < sessions; i++) await control.createSession(`${prefix}-${i}`);
  return { child, url, control };
}

/** Forwarded requests against direct ones: the latency pollcast adds, and its CPU per forwarded request. */
export async function measureForwarding(scenario: Scenario, ctx: MeasureContext): Promise<Row> {
  const row = blankRow(scenario, loadAverage1());
  const sim = await startRealSimulator(ctx, `${ctx.runId}-fwd`, scenario.sessions);
  const target = await startTarget('pollcast', { ...ctx.targetOptions, upstreamUrl: sim.url });
  const agents = { direct: new Agent({ keepAlive: true, maxSockets: 1 }), forwarded: new Agent({ keepAlive: true, maxSockets: 1 }) };
  try {
    const base = new URL(sim.url);
    const query = `?size=${scenario.sessions}`;
    const direct = new URL(`${base.pathname}/sessions${query}`, base.origin);
    const forwarded = new URL(`${base.pathname}/sessions${query}`, `http://${target.host}:${target.ports[0]}`);
    const first = await timedGet(forwarded, agents.forwarded);
    const hist = { direct: new LatencyHistogram(), forwarded: new LatencyHistogram() };
    const extra: Record<string, number | null> = { requests: scenario.measuredEvents, forwardedStatus: first.status, forwardedOk: first.status === 200 ? 1 : 0 };
    row.extra = extra;
    if (first.status !== 200) {
      ctx.log(`  forwarding: ${forwarded.pathname} answered ${first.status}: this build does not forward; row left empty`);
      return row;
    }
    for (let k = 0; k < WARMUP_REQUESTS; k++) {
      await timedGet(direct, agents.direct);
      await timedGet(forwarded, agents.forwarded);
    }
    const subjects: WindowSubjects = { pids: target.pids, redisPid: null, simPid: sim.child.pid!, serverCore: ctx.serverCore, clientCore: ctx.clientCore, neighbourPid: ctx.neighbourPid };
    const win = openWindow(subjects);
    let failed = 0;
    // Interleaved one by one, so a drift in the machine's load weighs on both alike.
    for (let k = 0; k < scenario.measuredEvents; k++) {
      const d = await timedGet(direct, agents.direct);
      const f = await timedGet(forwarded, agents.forwarded);
      if (d.status !== 200 || f.status !== 200) failed++;
      hist.direct.record(d.ms);
      hist.forwarded.record(f.ms);
    }
    const w = closeWindow(subjects, win);
    const cpuUs = w.serverUserUs + w.serverSysUs;
    const q = (h: LatencyHistogram, p: number) => nullIfNaN(h.quantile(p));
    Object.assign(extra, {
      directP50Ms: q(hist.direct, 0.5), directP99Ms: q(hist.direct, 0.99), forwardedP50Ms: q(hist.forwarded, 0.5), forwardedP99Ms: q(hist.forwarded, 0.99),
      addedP50Ms: (q(hist.forwarded, 0.5) ?? Number.NaN) - (q(hist.direct, 0.5) ?? Number.NaN), addedP99Ms: (q(hist.forwarded, 0.99) ?? Number.NaN) - (q(hist.direct, 0.99) ?? Number.NaN),
    });
    Object.assign(row, {
      failures: failed > 0 ? { forwarded: failed } : {}, deliveries: scenario.measuredEvents, windowMs: Math.round(w.windowMs), deliveriesPerSec: scenario.measuredEvents / (w.windowMs / 1000),
      serverCpuMs: cpuUs / 1000, serverSysShare: cpuUs > 0 ? w.serverSysUs / cpuUs : 0, cpuUsPerDelivery: cpuUs / scenario.measuredEvents,
      serverCoreOtherShare: otherShare(w.serverCoreBusyUs, cpuUs, w.windowMs), clientCoreOtherShare: otherShare(w.clientCoreBusyUs, w.simCpuUs + w.selfCpuUs, w.windowMs),
      p50Ms: extra.addedP50Ms, p99Ms: extra.addedP99Ms, maxMs: q(hist.forwarded, 1), rssEndKb: processRssKb(target.pids[0]!), load1End: loadAverage1(),
    });
    return row;
  } finally {
    agents.direct.destroy();
    agents.forwarded.destroy();
    await target.stop();
    await stopProcess(sim.child);
  }
}

/** Dashboards watching the session list: the upstream list calls per minute they cost together. */
export async function measureSessionList(scenario: Scenario, ctx: MeasureContext): Promise<Row> {
  const row = blankRow(scenario, loadAverage1());
  const viewers = scenario.sessions * scenario.streamsPerSession;
  const sim = await startRealSimulator(ctx, `${ctx.runId}-list`, LIST_SESSIONS);
  const target = await startTarget('pollcast', { ...ctx.targetOptions, upstreamUrl: sim.url });
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const requests: Array<ReturnType<typeof get>> = [];
  let snapshots = 0;
  let status = 0;
  try {
    for (let k = 0; k < viewers; k++) {
      const req = get({ host: target.host, port: target.ports[0], path: '/sessions/events', agent, headers: { accept: 'text/event-stream' } }, (res) => {
        status = res.statusCode ?? 0;
        let seen = false;
        res.setEncoding('utf8');
        res.on('data', (s: string) => {
          if (!seen && s.includes('event: snapshot')) {
            seen = true;
            snapshots++;
          }
        });
      });
      req.on('error', () => undefined);
      requests.push(req);
    }
    const deadline = performance.now() + SNAPSHOT_TIMEOUT_MS;
    while (snapshots < viewers && performance.now() < deadline) await delay(100);
    // Counted from here, once every dashboard is watching: list calls are whatever is neither changes nor status.
    await sim.control.resetStats();
    const subjects: WindowSubjects = { pids: target.pids, redisPid: null, simPid: sim.child.pid!, serverCore: ctx.serverCore, clientCore: ctx.clientCore, neighbourPid: ctx.neighbourPid };
    const win = openWindow(subjects);
    await delay(scenario.holdMs);
    const w = closeWindow(subjects, win);
    const t = await sim.control.totals();
    const listCalls = t.requests - t.changes - t.status;
    const minutes = w.windowMs / 60_000;
    row.extra = { viewers, snapshots, status, listCalls, listCallsPerMinute: listCalls / minutes, onePollerPerMinute: 60 / LIST_POLL_SECONDS };
    Object.assign(row, {
      streams: viewers, opened: snapshots, windowMs: Math.round(w.windowMs), serverCpuMs: (w.serverUserUs + w.serverSysUs) / 1000,
      serverCoreOtherShare: otherShare(w.serverCoreBusyUs, w.serverUserUs + w.serverSysUs, w.windowMs), clientCoreOtherShare: otherShare(w.clientCoreBusyUs, w.simCpuUs + w.selfCpuUs, w.windowMs),
      upstreamRequests: t.requests, upstreamPerSessionMinute: listCalls / minutes, rssEndKb: processRssKb(target.pids[0]!), load1End: loadAverage1(),
    });
    if (snapshots < viewers) ctx.log(`  session-list: ${snapshots}/${viewers} dashboards got a snapshot (status ${status})`);
    return row;
  } finally {
    for (const req of requests) req.destroy();
    agent.destroy();
    await target.stop();
    await stopProcess(sim.child);
  }
}
