/**
 * Issue 21's goals, judged run by run: run k of pollcast against run k of the
 * naive server (same scenario, alternating order), each figure given as the
 * spread of its runs (min–median–max), so a lead that holds once on a quiet
 * machine is not taken for one that holds run after run.
 */
import { spreadOf, spreadOfValues, type Spread } from './aggregate.ts';
import { fmt, pair } from './report.ts';
import type { Row, SpreadField } from './row.ts';
import { NOISY_OTHER_SHARE, type Verdict } from './verdicts.ts';

/** Consecutive runs every ratio must hold in. */
export const RUNS_REQUIRED = 5;
/** pollcast's figure at most this times the baseline's, in every run. */
const RATIO = 1.0;
/** Latency pollcast may add at p50 over the upstream's own delivery (the hop row) at 20 events/s (ms). */
const ADDED_P50_MS = 2;
/** Memory per idle stream (KB): nchan's figure, the best measured peer. */
const IDLE_KB = 10;
/** The rows of issue 6's table, and issue 13's payload and idle-sessions rows. */
const FAN_OUT_ROWS = ['one-session', 'many-sessions', 'payload', 'burst', 'idle', 'idle-sessions', 'max-streams'];

/** `a–b–c` of a spread. */
export const spreadText = (s: Spread | null, digits: number): string => (s === null ? '-' : s.min === s.max ? fmt(s.min, digits) : `${fmt(s.min, digits)}–${fmt(s.median, digits)}–${fmt(s.max, digits)}`);

/**
 * Per run pollcast / baseline of one figure (runs paired in order). A run whose baseline is 0 is dropped, or, with
 * `judgeZero` (call counts, where 0 is a real answer), judged: 1 when neither made a call, a failure when only
 * pollcast did.
 */
function runRatios(pc: Row, bl: Row, field: SpreadField, judgeZero = false): Array<number | null> {
  const a = pc.each?.[field] ?? [pc[field]];
  const b = bl.each?.[field] ?? [bl[field]];
  return a.map((x, k) => {
    const y = b[k];
    if (x === null || x === undefined || y === null || y === undefined || Number.isNaN(x) || Number.isNaN(y)) return null;
    if (y === 0) return judgeZero ? (x === 0 ? 1 : Number.POSITIVE_INFINITY) : null;
    return x / y;
  });
}

/** True when some run of `row` has `field` (records from before a field was added lack it). */
function hasField(row: Row, field: SpreadField): boolean {
  return (row.each?.[field] ?? [row[field]]).some((x) => x !== null && x !== undefined && !Number.isNaN(x));
}

/** Some run had other work above NOISY_OTHER_SHARE of a core. */
function anyNoisy(...rows: Array<Row | undefined>): boolean {
  return rows.some((r) => r !== undefined && [...(r.each?.serverCoreOtherShare ?? [r.serverCoreOtherShare]), ...(r.each?.clientCoreOtherShare ?? [r.clientCoreOtherShare])].some((x) => (x ?? 0) > NOISY_OTHER_SHARE));
}

function ratioVerdict(goal: string, pc: Row, bl: Row, field: SpreadField, latency: boolean): Verdict | null {
  const ratios = runRatios(pc, bl, field);
  const s = spreadOfValues(ratios);
  if (s === null) return null;
  const enough = s.n >= RUNS_REQUIRED;
  const measured = `${spreadText(s, 2)}x over ${s.n} run(s) (pollcast ${spreadText(spreadOf(pc, field), 2)}, baseline ${spreadText(spreadOf(bl, field), 2)})${enough ? '' : `; fewer than ${RUNS_REQUIRED} runs: not judged`}`;
  return { goal, measured, met: enough && s.max <= RATIO, ...(latency ? { noisy: anyNoisy(pc, bl) } : {}) };
}

/** Per run: a target's p50 less the upstream hop's alone (runs paired in order). */
function addedOf(row: Row, hop: Row): Array<number | null> {
  return (row.each?.p50Ms ?? [row.p50Ms]).map((x, k) => {
    const h = (hop.each?.p50Ms ?? [hop.p50Ms])[k];
    return x === null || h === null || h === undefined ? null : x - h;
  });
}

/** Every goal of issue 21 that the rows allow judging. */
export function issue21(rows: Row[]): Verdict[] {
  const out: Verdict[] = [];
  // No batching delay: one-session, push-delay and burst at the baseline's latency or better, with no more upstream calls.
  for (const key of ['one-session', 'push-delay', 'burst']) {
    const { pc, bl, hop } = pair(rows, key);
    if (!pc || !bl) continue;
    for (const [field, name] of [['p50Ms', 'p50'], ['p99Ms', 'p99']] as const) {
      const v = ratioVerdict(`no batching (${key}): ${name} <= ${RATIO}x baseline in each run`, pc, bl, field, true);
      if (v) out.push(v);
    }
    // Changes calls in the measured window (the steady state), compared as counts per session: the same sessions
    // and the same events on the same schedule make the same session-minutes, while a rate over the window would
    // divide by each server's own last delivery. Records from before the count existed fall back to that rate.
    // The whole life's ratio (it adds each loop's start: pollcast's first read with wait 0) is shown beside it.
    // The naive server makes no status call, which pollcast's contract asks for (first contact, the end).
    const counted = hasField(pc, 'upstreamChangesInWindowPerSession') && hasField(bl, 'upstreamChangesInWindowPerSession');
    const field = counted ? 'upstreamChangesInWindowPerSession' : 'upstreamChangesInWindowPerSessionMinute';
    const s = spreadOfValues(runRatios(pc, bl, field, true));
    const life = spreadOfValues(runRatios(pc, bl, 'upstreamChangesPerSessionMinute'));
    if (s) {
      const enough = s.n >= RUNS_REQUIRED;
      const figures = counted
        ? `calls per session: pollcast ${spreadText(spreadOf(pc, field), 1)}, baseline ${spreadText(spreadOf(bl, field), 1)}; a session-minute of the window: pollcast ${spreadText(spreadOf(pc, 'upstreamChangesInWindowPerSessionMinute'), 1)}, baseline ${spreadText(spreadOf(bl, 'upstreamChangesInWindowPerSessionMinute'), 1)}`
        : `a session-minute of the window (an older record: no count): pollcast ${spreadText(spreadOf(pc, field), 1)}, baseline ${spreadText(spreadOf(bl, field), 1)}`;
      out.push({
        goal: `no batching (${key}): upstream changes calls <= baseline's in each run (${counted ? 'counted per session in the measured window' : 'per session-minute of the measured window'})`,
        measured: `${spreadText(s, 2)}x over ${s.n} run(s) (${figures}; whole life, start included: ${spreadText(life, 2)}x; with status calls pollcast ${spreadText(spreadOf(pc, 'upstreamPerSessionMinute'), 1)} a session-minute)${enough ? '' : `; fewer than ${RUNS_REQUIRED} runs: not judged`}`,
        met: enough && s.max <= 1,
      });
    }
    if (hop) {
      const a = spreadOfValues(addedOf(pc, hop));
      if (a) out.push({ goal: `no batching (${key}): added p50 over the upstream's own delivery <= ${ADDED_P50_MS} ms`, measured: `${spreadText(a, 2)} ms (pollcast p50 ${spreadText(spreadOf(pc, 'p50Ms'), 2)}, the hop alone ${spreadText(spreadOf(hop, 'p50Ms'), 2)} ms; ${key === 'push-delay' ? `${pc.streams} streams: the bridge's own delay` : `${pc.streams} streams: includes writing the event to every stream on one core, which the naive server adds too`}; the naive server adds ${spreadText(spreadOfValues(addedOf(bl, hop)), 2)} ms)`, met: a.max <= ADDED_P50_MS, noisy: anyNoisy(pc, hop) });
    }
  }
  // Every fan-out row at or under the baseline in CPU per delivery, p99 and RSS per stream, run after run.
  for (const key of FAN_OUT_ROWS) {
    const { pc, bl } = pair(rows, key);
    if (!pc || !bl) continue;
    const checks: Array<[SpreadField, string, boolean]> = [['cpuUsPerDelivery', 'CPU/delivery', false], ['p99Ms', 'p99', true], ['rssKbPerStream', 'RSS/stream', false]];
    if (key === 'payload') checks.push(['rssPeakKb', 'peak RSS', false]);
    for (const [field, name, latency] of checks) {
      const v = ratioVerdict(`${key}: ${name} <= ${RATIO}x baseline in each run`, pc, bl, field, latency);
      if (v) out.push(v);
    }
  }
  // Memory per idle stream, like for like (both servers with pollcast's Node flags).
  for (const key of ['idle', 'idle-sessions']) {
    const { pc, bl } = pair(rows, key);
    const s = pc ? spreadOf(pc, 'rssKbPerStream') : null;
    if (s) out.push({ goal: `memory per idle stream (${key}) <= ${IDLE_KB} KB, same Node flags on both sides`, measured: `${spreadText(s, 2)} KB (baseline ${spreadText(bl ? spreadOf(bl, 'rssKbPerStream') : null, 2)} KB)`, met: s.max <= IDLE_KB });
  }
  const fwd = rows.find((r) => r.scenario === 'forwarding' && r.target === 'pollcast');
  if (fwd?.extra) {
    const x = fwd.extra;
    const available = x.forwardedOk !== null && (x.forwardedOk ?? 0) > 0;
    out.push({
      goal: 'forwarding measured: added p50/p99 over a direct call (loopback)',
      measured: available
        ? `added p50 ${spreadText(spreadOfValues(fwd.eachExtra?.addedP50Ms ?? [x.addedP50Ms]), 2)} ms, p99 ${spreadText(spreadOfValues(fwd.eachExtra?.addedP99Ms ?? [x.addedP99Ms]), 2)} ms (direct p50 ${fmt(x.directP50Ms, 2)} / p99 ${fmt(x.directP99Ms, 2)} ms, forwarded ${fmt(x.forwardedP50Ms, 2)} / ${fmt(x.forwardedP99Ms, 2)} ms; ${fmt(x.requests, 0)} requests each)`
        : `not available: this build answered ${fmt(x.forwardedStatus, 0)} on the forwarded route (forwarding not merged)`,
      met: available,
    });
  }
  const list = rows.find((r) => r.scenario === 'session-list' && r.target === 'pollcast');
  if (list?.extra) {
    const x = list.extra;
    const s = spreadOfValues(list.eachExtra?.listCallsPerMinute ?? [x.listCallsPerMinute]);
    const available = (x.snapshots ?? 0) > 0;
    out.push({
      goal: `session list measured: upstream list calls per minute for ${fmt(x.viewers, 0)} dashboards <= one poller's (${fmt(x.onePollerPerMinute, 1)})`,
      measured: available ? `${spreadText(s, 1)} per minute (${fmt(x.snapshots, 0)} of ${fmt(x.viewers, 0)} dashboards got their snapshot; each polling itself: ${fmt((x.viewers ?? 0) * (x.onePollerPerMinute ?? 0), 0)} per minute)` : `not available: this build answered ${fmt(x.status, 0)} on GET /sessions/events`,
      met: available && s !== null && s.max <= (x.onePollerPerMinute ?? 0) * 1.2 + 1,
    });
  }
  return out;
}
