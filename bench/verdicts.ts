/** The verdict on each goal of issues 6 and 13, from measured rows. */
import { fmt, pair, ratios } from './report.ts';
import type { Row } from './row.ts';

/** Goals of issue 6 (pollcast relative to the naive baseline measured in the same run). */
export const GOALS = {
  /** CPU per delivery, events one at a time, at most this times the baseline's. */
  cpuSingleRatio: 0.8,
  /** CPU per delivery on a burst, at most this times the baseline's. */
  cpuBurstRatio: 0.3,
  /** Memory per idle stream, at most this times the baseline's. */
  rssRatio: 1.0,
  /** p99 upstream event → client at ~4k deliveries/s (ms). */
  p99Ms: 10,
  /** Concurrent streams on one process without errors. */
  streams: 20_000,
} as const;

/**
 * How far pollcast's upstream requests per session may exceed the baseline's
 * (one loop per session by construction): its status calls and the extra
 * zero-wait call after each full page. Subscriber counts never enter.
 */
const UPSTREAM_SLACK = { factor: 1.5, plus: 2 };

/** One goal and whether this run met it. */
export interface Verdict {
  goal: string;
  measured: string;
  met: boolean;
  /** A latency goal judged from rows whose cores were busy with other work: the verdict says nothing until re-measured. */
  noisy?: boolean;
}

/**
 * Share of a core (median over a row's runs) taken by work outside the benchmark above which a latency
 * comparison says more about the machine than about the servers (a 1-in-100 stall from someone else's
 * test run is a p99).
 */
export const NOISY_OTHER_SHARE = 0.1;

/** The rows had other work above NOISY_OTHER_SHARE on the server or client core. */
function noisy(...rows: Array<Row | undefined>): boolean {
  return rows.some((r) => r !== undefined && ((r.serverCoreOtherShare ?? 0) > NOISY_OTHER_SHARE || (r.clientCoreOtherShare ?? 0) > NOISY_OTHER_SHARE));
}

const otherLoad = (r: Row | undefined): string => (r ? `${fmt((r.serverCoreOtherShare ?? 0) * 100, 0)}%/${fmt((r.clientCoreOtherShare ?? 0) * 100, 0)}%` : '-');

/** Each goal with what this run measured. */
function issue6(rows: Row[]): Verdict[] {
  const out: Verdict[] = [];
  // Events one at a time: every scenario whose sessions get single events (not the burst).
  const single = ['one-session', 'many-sessions', 'max-streams'].map((k) => ({ k, cpu: ratios(rows, k).cpu })).filter((x) => x.cpu !== null);
  if (single.length > 0) {
    out.push({
      goal: `CPU/delivery, events one at a time <= ${GOALS.cpuSingleRatio}x baseline`,
      measured: single.map((x) => `${x.k} ${fmt(x.cpu, 2)}x`).join(', '),
      met: single.every((x) => x.cpu! <= GOALS.cpuSingleRatio),
    });
  }
  const burst = ratios(rows, 'burst');
  if (burst.cpu !== null) out.push({ goal: `CPU/delivery, burst <= ${GOALS.cpuBurstRatio}x baseline`, measured: `${fmt(burst.cpu, 2)}x`, met: burst.cpu <= GOALS.cpuBurstRatio });
  const idle = ratios(rows, 'idle');
  if (idle.rss !== null) out.push({ goal: `RSS per idle stream <= ${GOALS.rssRatio}x baseline`, measured: `${fmt(idle.rss, 2)}x`, met: idle.rss <= GOALS.rssRatio });
  const { pc: manyPc } = pair(rows, 'many-sessions');
  if (manyPc?.p99Ms != null) {
    out.push({ goal: `p99 event -> client <= ${GOALS.p99Ms} ms at ~4k deliveries/s`, measured: `${fmt(manyPc.p99Ms, 2)} ms at ${fmt(manyPc.deliveriesPerSec, 0)}/s`, met: manyPc.p99Ms <= GOALS.p99Ms, noisy: noisy(manyPc) });
  }
  const { pc: maxPc } = pair(rows, 'max-streams');
  if (maxPc) {
    const clean = maxPc.failedOpens === 0 && maxPc.closedEarly === 0 && maxPc.lost === 0 && maxPc.duplicated === 0;
    const capped = maxPc.fdCapped ? ` (capped below ${GOALS.streams} by the open-files hard limit: a process needs one descriptor per stream plus its own)` : '';
    out.push({ goal: `${GOALS.streams} concurrent streams without errors`, measured: `${maxPc.opened}/${maxPc.streams} open, ${maxPc.failedOpens + maxPc.closedEarly} errors, ${maxPc.lost} lost, ${maxPc.duplicated} duplicated${capped}`, met: clean && maxPc.opened >= GOALS.streams });
  }
  // The baseline runs one loop per session by construction, so its request count is what "independent
  // of subscribers" looks like; pollcast may add its first-contact and end-of-session status calls.
  const pcRows = rows.filter((r) => r.target === 'pollcast' || r.target === 'cluster');
  if (pcRows.length > 0) {
    const parts: string[] = [];
    let ok = true;
    for (const pc of pcRows) {
      const bl = pair(rows, pc.scenario).bl;
      const pcPer = pc.upstreamRequests / pc.sessions;
      const blPer = bl ? bl.upstreamRequests / bl.sessions : null;
      if (blPer !== null && pcPer > blPer * UPSTREAM_SLACK.factor + UPSTREAM_SLACK.plus) ok = false;
      parts.push(`${pc.scenario}${pc.target === 'cluster' ? ' (3 instances)' : ''} ${fmt(pcPer, 1)}${blPer === null ? '' : ` (baseline ${fmt(blPer, 1)})`} per session @ ${Math.round(pc.opened / pc.sessions)} streams/session`);
    }
    const maxInFlight = Math.max(...pcRows.map((r) => r.upstreamMaxInFlight));
    if (maxInFlight > 1) ok = false;
    out.push({ goal: 'upstream requests per session independent of subscribers', measured: `${parts.join('; ')}; at most ${maxInFlight} changes call in flight per session`, met: ok });
  }
  return out;
}

/** Goals of issue 13 (pollcast against the naive baseline of the same run, and absolute bounds). */
export const GOALS_13 = {
  /** Memory per idle stream (10,000 streams over 100 sessions), at most this times the baseline's. */
  rssRatio: 1.0,
  /** p99 with many small sessions, at most this times the baseline's in the same run. */
  p99Ratio: 1.0,
  /** ~100 KB events: CPU per delivery, peak RSS and p99, each at most this times the baseline's. */
  payloadRatio: 1.0,
  /** A stream resuming near the end of a 100,000-event history gets the next live event within this of its append (ms). */
  resumeLiveMs: 1_000,
  /**
   * Upstream calls for a resume, whatever the history: first contact, the page after Last-Event-ID, the
   * long-polls that bring the live event and the one left waiting (the bound of test/bridge/resume-near-end.test.ts).
   */
  resumeMaxCalls: 6,
} as const;

function issue13(rows: Row[]): Verdict[] {
  const out: Verdict[] = [];
  for (const key of ['idle-sessions', 'idle']) {
    const { rss } = ratios(rows, key);
    if (rss !== null) out.push({ goal: `RSS per idle stream (${key}) <= ${GOALS_13.rssRatio}x baseline`, measured: `${fmt(rss, 2)}x`, met: rss <= GOALS_13.rssRatio });
  }
  const many = pair(rows, 'many-sessions');
  const manyP99 = ratios(rows, 'many-sessions').p99;
  if (manyP99 !== null) {
    const hop = many.hop ? `; the hop alone: p99 ${fmt(many.hop.p99Ms, 2)} ms` : '';
    const load = `; other load srv/cli core ${otherLoad(many.pc)} vs ${otherLoad(many.bl)}`;
    out.push({ goal: `p99, 100 sessions x 20 streams <= ${GOALS_13.p99Ratio}x baseline`, measured: `${fmt(manyP99, 2)}x (${fmt(many.pc?.p99Ms, 2)} vs ${fmt(many.bl?.p99Ms, 2)} ms${hop}${load})`, met: manyP99 <= GOALS_13.p99Ratio, noisy: noisy(many.pc, many.bl) });
  }
  const pay = ratios(rows, 'payload');
  if (pay.cpu !== null || pay.peak !== null || pay.p99 !== null) {
    const { pc, bl } = pair(rows, 'payload');
    const within = (x: number | null) => x !== null && x <= GOALS_13.payloadRatio;
    out.push({ goal: `~100 KB events: CPU/delivery <= ${GOALS_13.payloadRatio}x baseline`, measured: `${fmt(pay.cpu, 2)}x (${fmt(pc?.cpuUsPerDelivery, 1)} vs ${fmt(bl?.cpuUsPerDelivery, 1)} us)`, met: within(pay.cpu) });
    out.push({ goal: `~100 KB events: peak RSS <= ${GOALS_13.payloadRatio}x baseline`, measured: `${fmt(pay.peak, 2)}x (${fmt((pc?.rssPeakKb ?? Number.NaN) / 1024, 0)} vs ${fmt((bl?.rssPeakKb ?? Number.NaN) / 1024, 0)} MB)`, met: within(pay.peak) });
    out.push({
      goal: `~100 KB events: p99 <= ${GOALS_13.payloadRatio}x baseline`,
      measured: `${fmt(pay.p99, 2)}x (${fmt(pc?.p99Ms, 1)} vs ${fmt(bl?.p99Ms, 1)} ms; other load srv/cli core ${otherLoad(pc)} vs ${otherLoad(bl)})`,
      met: within(pay.p99),
      noisy: noisy(pc, bl),
    });
  }
  const long = pair(rows, 'resume-long').pc;
  if (long) {
    out.push({ goal: `resume near the end of ${long.title.match(/of ([\d,]+) events/)?.[1] ?? 'a long'} events: live event <= ${GOALS_13.resumeLiveMs} ms after its append`, measured: `slowest stream ${fmt(long.maxMs, 1)} ms`, met: long.maxMs !== null && long.maxMs <= GOALS_13.resumeLiveMs && long.lost === 0 });
    const short = pair(rows, 'resume-short').pc;
    const calls = [short, long].filter((r): r is Row => r !== undefined).map((r) => ({ key: r.scenario, n: r.upstreamRequests / r.sessions }));
    out.push({
      goal: `upstream calls for a resume <= ${GOALS_13.resumeMaxCalls}, not growing with the history`,
      measured: calls.map((c) => `${c.key} ${fmt(c.n, 0)}`).join(', '),
      met: calls.every((c) => c.n <= GOALS_13.resumeMaxCalls),
    });
  }
  return out;
}

/** Each goal of issues 6 and 13 with what this run measured (issue 21's: verdicts21.ts). */
export function verdicts(rows: Row[]): { issue6: Verdict[]; issue13: Verdict[] } {
  return { issue6: issue6(rows), issue13: issue13(rows) };
}

/** Verdicts as text lines. */
export function formatVerdicts(list: Verdict[]): string {
  const label = (v: Verdict) => (v.noisy ? 'NOISY  ' : v.met ? 'MET    ' : 'NOT MET');
  const note = (v: Verdict) => (v.noisy ? ` (would be ${v.met ? 'met' : 'not met'}, but other work took more than ${NOISY_OTHER_SHARE * 100}% of a core: re-measure)` : '');
  return list.map((v) => `${label(v)}  ${v.goal}: ${v.measured}${note(v)}`).join('\n');
}
