/** Folds repeated measurements of one scenario and target into one row: medians for figures, worst case for errors. */
import type { MemoryBreakdown, Row, UpstreamCalls } from './row.ts';

function median(values: number[]): number {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

function medianOrNull(values: Array<number | null>): number | null {
  const v = values.filter((x): x is number => x !== null);
  return v.length === 0 ? null : median(v);
}

/** Field by field medians of objects of numbers (null when none of the runs has one). */
function medianRecord<T extends object>(records: Array<T | null>): T | null {
  const present = records.filter((r): r is T => r !== null);
  if (present.length === 0) return null;
  const out = { ...present[0]! } as Record<string, number>;
  for (const key of Object.keys(out)) out[key] = median(present.map((r) => (r as Record<string, number>)[key]!));
  return out as T;
}

const MEDIAN_FIELDS = ['deliveries', 'windowMs', 'deliveriesPerSec', 'serverCpuMs', 'serverSysShare', 'rssIdleKb', 'rssOpenKb', 'rssEndKb', 'rssPeakKb', 'rssKbPerStream', 'kernelKbPerStream', 'serverFds', 'upstreamRequests', 'upstreamPerSessionMinute', 'clientCpuShare', 'simCpuShare', 'orchestratorCpuShare'] as const;
const NULLABLE_MEDIAN_FIELDS = ['cpuUsPerDelivery', 'p50Ms', 'p99Ms', 'maxMs', 'firstEventP50Ms', 'firstEventMaxMs', 'upstreamPerBatch', 'serverCoreOtherShare', 'clientCoreOtherShare', 'redisCpuMs'] as const;
const WORST_FIELDS = ['failedOpens', 'closedEarly', 'lost', 'duplicated', 'stale', 'upstreamMaxInFlight'] as const;

/** One row standing for `runs` (same scenario and target); `runs` itself when there is one. */
export function foldRuns(runs: Row[]): Row {
  const first = runs[0]!;
  if (runs.length === 1) return first;
  const row: Row = { ...first, runs: runs.length };
  for (const k of MEDIAN_FIELDS) row[k] = median(runs.map((r) => r[k]));
  for (const k of NULLABLE_MEDIAN_FIELDS) row[k] = medianOrNull(runs.map((r) => r[k]));
  for (const k of WORST_FIELDS) row[k] = Math.max(...runs.map((r) => r[k]));
  row.upstreamCalls = medianRecord<UpstreamCalls>(runs.map((r) => r.upstreamCalls))!;
  row.memory = medianRecord<MemoryBreakdown>(runs.map((r) => r.memory));
  row.opened = Math.min(...runs.map((r) => r.opened));
  row.clientSaturated = runs.some((r) => r.clientSaturated);
  row.load1Start = Math.min(...runs.map((r) => r.load1Start));
  row.load1End = Math.max(...runs.map((r) => r.load1End));
  row.failures = {};
  for (const r of runs) for (const [k, n] of Object.entries(r.failures)) row.failures[k] = (row.failures[k] ?? 0) + n;
  return row;
}
