/** The results table and the verdict on each goal of issue 6, from measured rows. */
import type { Row } from './measure.ts';

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
}

const fmt = (n: number | null | undefined, digits: number): string => (n === null || n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));
const ratio = (a: number | null | undefined, b: number | null | undefined): number | null => (a == null || b == null || Number.isNaN(a) || Number.isNaN(b) || b === 0 ? null : a / b);

function pair(rows: Row[], scenario: string): { pc: Row | undefined; bl: Row | undefined } {
  return { pc: rows.find((r) => r.scenario === scenario && r.target === 'pollcast'), bl: rows.find((r) => r.scenario === scenario && r.target === 'baseline') };
}

/** Ratios pollcast / baseline of one scenario. */
export function ratios(rows: Row[], scenario: string): { cpu: number | null; rss: number | null; p99: number | null } {
  const { pc, bl } = pair(rows, scenario);
  return { cpu: ratio(pc?.cpuUsPerDelivery, bl?.cpuUsPerDelivery), rss: ratio(pc?.rssKbPerStream, bl?.rssKbPerStream), p99: ratio(pc?.p99Ms, bl?.p99Ms) };
}

/** The one table, as fixed-width text. */
export function formatTable(rows: Row[]): string {
  const header = ['scenario', 'target', 'streams', 'deliv/s', 'CPU us/deliv', 'kernel', 'p50 ms', 'p99 ms', 'max ms', 'RSS KB/stream', 'lost', 'dup', 'errors', 'upstream req/session-min', 'CPU x base', 'RSS x base', 'client CPU', 'other load srv/cli core', 'load1'];
  const body = rows.map((r) => {
    const q = r.target === 'pollcast' ? ratios(rows, r.scenario) : { cpu: null, rss: null };
    const errors = r.failedOpens + r.closedEarly;
    return [
      r.scenario,
      r.target,
      r.opened === r.streams ? String(r.streams) : `${r.opened}/${r.streams}`,
      fmt(r.deliveriesPerSec, 0),
      fmt(r.cpuUsPerDelivery, 2),
      r.serverCpuMs > 0 ? `${fmt(r.serverSysShare * 100, 0)}%` : '-',
      fmt(r.p50Ms, 2),
      fmt(r.p99Ms, 2),
      fmt(r.maxMs, 1),
      fmt(r.rssKbPerStream, 2),
      String(r.lost),
      String(r.duplicated),
      String(errors),
      fmt(r.upstreamPerSessionMinute, 1),
      fmt(q.cpu, 2),
      fmt(q.rss, 2),
      `${fmt(r.clientCpuShare * 100, 0)}%${r.clientSaturated ? ' SAT' : ''}`,
      `${r.serverCoreOtherShare === null ? '-' : `${fmt(r.serverCoreOtherShare * 100, 0)}%`}/${r.clientCoreOtherShare === null ? '-' : `${fmt(r.clientCoreOtherShare * 100, 0)}%`}`,
      `${fmt(r.load1Start, 2)}-${fmt(r.load1End, 2)}`,
    ];
  });
  const all = [header, ...body];
  const widths = header.map((_, c) => Math.max(...all.map((row) => row[c]!.length)));
  const line = (cells: string[]) => `| ${cells.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (c < 2 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...body.map(line)].join('\n');
}

/** Each goal with what this run measured. */
export function verdicts(rows: Row[]): Verdict[] {
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
    out.push({ goal: `p99 event -> client <= ${GOALS.p99Ms} ms at ~4k deliveries/s`, measured: `${fmt(manyPc.p99Ms, 2)} ms at ${fmt(manyPc.deliveriesPerSec, 0)}/s`, met: manyPc.p99Ms <= GOALS.p99Ms });
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

/**
 * What the Redis hop costs: the cluster scenario's three processes on one
 * redis-server against one pollcast under the same load; null when it did not run.
 */
export function clusterComparison(rows: Row[]): string | null {
  const one = rows.find((r) => r.scenario === 'cluster' && r.target === 'pollcast');
  const three = rows.find((r) => r.scenario === 'cluster' && r.target === 'cluster');
  if (!one || !three) return null;
  const plus = (a: number | null, b: number | null) => (a === null || b === null ? '-' : `${b - a >= 0 ? '+' : ''}${fmt(b - a, 2)}`);
  const redisShare = three.redisCpuMs !== null && three.serverCpuMs > 0 ? ` (redis-server ${fmt((three.redisCpuMs / three.serverCpuMs) * 100, 0)}% of it)` : '';
  return [
    `cluster hop (${three.title}; ${fmt(three.deliveriesPerSec, 0)} deliveries/s):`,
    `  delivery latency p50 ${fmt(one.p50Ms, 2)} ms on one process, ${fmt(three.p50Ms, 2)} ms on the cluster (${plus(one.p50Ms, three.p50Ms)} ms); p99 ${fmt(one.p99Ms, 2)} → ${fmt(three.p99Ms, 2)} ms (${plus(one.p99Ms, three.p99Ms)} ms)`,
    `  CPU per delivery ${fmt(one.cpuUsPerDelivery, 2)} µs on one process, ${fmt(three.cpuUsPerDelivery, 2)} µs for the ${three.serverProcesses - 1} processes and redis-server together${redisShare}: ${fmt(ratio(three.cpuUsPerDelivery, one.cpuUsPerDelivery), 2)}x`,
    `  lost ${three.lost}, duplicated ${three.duplicated}; at most ${three.upstreamMaxInFlight} changes call in flight per session (one loop per session for the cluster)`,
  ].join('\n');
}

/** Verdicts as text lines. */
export function formatVerdicts(list: Verdict[]): string {
  return list.map((v) => `${v.met ? 'MET    ' : 'NOT MET'}  ${v.goal}: ${v.measured}`).join('\n');
}
