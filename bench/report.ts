/** The results table: one line per scenario and target, pollcast's ratios to the naive baseline of the same run. */
import { spreadOf, type Spread } from './aggregate.ts';
import type { Row } from './row.ts';

const KB_PER_MB = 1024;

/** A measured figure, NaN where there is none (a saved record turns NaN into null). */
export const num = (n: number | null | undefined): number => (n === null || n === undefined ? Number.NaN : n);

/** A number with `digits` decimals, or '-' where there is none. */
export const fmt = (n: number | null | undefined, digits: number): string => (n === null || n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));
/** a / b, or null where either is missing. */
export const ratio = (a: number | null | undefined, b: number | null | undefined): number | null => (a == null || b == null || Number.isNaN(a) || Number.isNaN(b) || b === 0 ? null : a / b);

/** A scenario's rows by target. */
export function pair(rows: Row[], scenario: string): { pc: Row | undefined; bl: Row | undefined; hop: Row | undefined } {
  const of = (target: string) => rows.find((r) => r.scenario === scenario && r.target === target);
  return { pc: of('pollcast'), bl: of('baseline'), hop: of('hop') };
}

/** Ratios pollcast / baseline of one scenario. */
export function ratios(rows: Row[], scenario: string): { cpu: number | null; rss: number | null; p99: number | null; peak: number | null } {
  const { pc, bl } = pair(rows, scenario);
  // A resume delivers different frames on each target (the naive server sends the whole history): compare the total.
  const cpu = pc?.schedule === 'resume' ? ratio(pc?.serverCpuMs, bl?.serverCpuMs) : ratio(pc?.cpuUsPerDelivery, bl?.cpuUsPerDelivery);
  return {
    cpu,
    rss: ratio(pc?.rssKbPerStream, bl?.rssKbPerStream),
    p99: ratio(pc?.p99Ms, bl?.p99Ms),
    peak: ratio(pc?.rssPeakKb, bl?.rssPeakKb),
  };
}

/** The one table, as fixed-width text (markdown). */
export function formatTable(rows: Row[]): string {
  const header = ['scenario', 'target', 'streams', 'deliv/s', 'bytes/deliv', 'CPU us/deliv', 'kernel', 'p50 ms', 'p99 ms', 'max ms', 'first ms', 'RSS KB/stream', 'base MB', 'peak MB', 'lost', 'dup', 'stale', 'errors', 'upstream calls/session', 'upstream req/session-min', 'CPU x base', 'p99 x base', 'RSS x base', 'peak x base', 'client CPU', 'sim CPU', 'other load srv/cli core', 'load1'];
  const body = rows.map((r) => {
    const q = r.target === 'pollcast' ? ratios(rows, r.scenario) : { cpu: null, rss: null, p99: null, peak: null };
    const errors = r.failedOpens + r.closedEarly + (r.failures.upstream ?? 0);
    return [
      r.scenario,
      r.target,
      r.opened === r.streams ? String(r.streams) : `${r.opened}/${r.streams}`,
      fmt(r.deliveriesPerSec, 0),
      fmt(r.bytesPerDelivery, 0),
      fmt(r.cpuUsPerDelivery, 2),
      r.serverCpuMs > 0 ? `${fmt(r.serverSysShare * 100, 0)}%` : '-',
      fmt(r.p50Ms, 2),
      fmt(r.p99Ms, 2),
      fmt(r.maxMs, 1),
      fmt(r.firstEventMaxMs, 1),
      fmt(r.rssKbPerStream, 2),
      fmt(num(r.rssIdleKb) / KB_PER_MB, 1),
      fmt(num(r.rssPeakKb) / KB_PER_MB, 1),
      String(r.lost),
      String(r.duplicated),
      String(r.stale),
      String(errors),
      fmt(r.upstreamRequests / r.sessions, 1),
      fmt(r.upstreamPerSessionMinute, 1),
      fmt(q.cpu, 2),
      fmt(q.p99, 2),
      fmt(q.rss, 2),
      fmt(q.peak, 2),
      r.target === 'hop' ? '-' : `${fmt(r.clientCpuShare * 100, 0)}%${r.clientSaturated ? ' SAT' : ''}`,
      `${fmt(r.simCpuShare * 100, 0)}%`,
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

/** What the columns mean, printed under the table. */
export const TABLE_NOTES = [
  'p50/p99/max: emitted_at_ms -> client parsed the frame (resume rows: the live event only; hop rows: -> the probe parsed the upstream page).',
  'first ms: resume rows, slowest stream from request to its first event after Last-Event-ID. stale: frames at or below Last-Event-ID sent anyway.',
  'base MB: server RSS before any stream; peak MB: its VmHWM at the end of the window. hop rows: CPU per event received, no streams.',
  'CPU x base: CPU per delivery, except resume rows: the server CPU of the whole resume (open to live event), whatever it sent.',
  'bytes/deliv: body bytes the load client read per event delivered (status frames, which the naive server never sends, and comments included).',
  'client CPU: busiest client process over the window; SAT: it was above 90% of a core over the window, or its event loop was busy over 90% of one slice (>= 100 ms): latency is then partly the client\'s.',
].join('\n');

const spreadCell = (s: Spread | null, digits: number): string => (s === null ? '-' : s.n === 1 ? fmt(s.median, digits) : `${fmt(s.min, digits)}–${fmt(s.median, digits)}–${fmt(s.max, digits)}`);

/** Each row's figures over its runs as min–median–max (the table above shows the medians). */
export function formatSpread(rows: Row[]): string {
  const header = ['scenario', 'target', 'runs', 'bytes/deliv', 'CPU us/deliv', 'p50 ms', 'p99 ms', 'RSS KB/stream', 'peak MB', 'upstream req/session-min', 'other load srv core %', 'other load cli core %'];
  const body = rows.map((r) => {
    const peak = spreadOf(r, 'rssPeakKb');
    const pct = (s: Spread | null) => (s === null ? null : { min: s.min * 100, median: s.median * 100, max: s.max * 100, n: s.n });
    return [
      r.scenario,
      r.target,
      String(r.runs),
      spreadCell(spreadOf(r, 'bytesPerDelivery'), 0),
      spreadCell(spreadOf(r, 'cpuUsPerDelivery'), 2),
      spreadCell(spreadOf(r, 'p50Ms'), 2),
      spreadCell(spreadOf(r, 'p99Ms'), 2),
      spreadCell(spreadOf(r, 'rssKbPerStream'), 2),
      spreadCell(peak === null ? null : { min: peak.min / KB_PER_MB, median: peak.median / KB_PER_MB, max: peak.max / KB_PER_MB, n: peak.n }, 0),
      spreadCell(spreadOf(r, 'upstreamPerSessionMinute'), 1),
      spreadCell(pct(spreadOf(r, 'serverCoreOtherShare')), 0),
      spreadCell(pct(spreadOf(r, 'clientCoreOtherShare')), 0),
    ];
  });
  const all = [header, ...body];
  const widths = header.map((_, c) => Math.max(...all.map((row) => row[c]!.length)));
  const line = (cells: string[]) => `| ${cells.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (c < 2 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  const note = 'spread over runs, min–median–max (one figure: one run). forwarding rows: p50/p99 = added over the direct call; session-list rows: upstream req/session-min = list calls per minute for all its dashboards.';
  return ['spread:', line(header), rule, ...body.map(line), note].join('\n');
}
