/** Folds repeated measurements of one scenario and target into one row: medians for figures, worst case for errors. */
import type { Row } from './measure.ts';

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

const MEDIAN_FIELDS = ['deliveries', 'windowMs', 'deliveriesPerSec', 'serverCpuMs', 'serverSysShare', 'rssIdleKb', 'rssOpenKb', 'rssKbPerStream', 'serverFds', 'upstreamRequests', 'upstreamPerSessionMinute', 'clientCpuShare', 'simCpuShare', 'orchestratorCpuShare'] as const;
const NULLABLE_MEDIAN_FIELDS = ['cpuUsPerDelivery', 'p50Ms', 'p99Ms', 'maxMs', 'upstreamPerBatch', 'serverCoreOtherShare', 'clientCoreOtherShare', 'redisCpuMs'] as const;
const WORST_FIELDS = ['failedOpens', 'closedEarly', 'lost', 'duplicated', 'upstreamMaxInFlight'] as const;

/** One row standing for `runs` (same scenario and target); `runs` itself when there is one. */
export function foldRuns(runs: Row[]): Row {
  const first = runs[0]!;
  if (runs.length === 1) return first;
  const row: Row = { ...first, runs: runs.length };
  for (const k of MEDIAN_FIELDS) row[k] = median(runs.map((r) => r[k]));
  for (const k of NULLABLE_MEDIAN_FIELDS) row[k] = medianOrNull(runs.map((r) => r[k]));
  for (const k of WORST_FIELDS) row[k] = Math.max(...runs.map((r) => r[k]));
  row.opened = Math.min(...runs.map((r) => r.opened));
  row.clientSaturated = runs.some((r) => r.clientSaturated);
  row.load1Start = Math.min(...runs.map((r) => r.load1Start));
  row.load1End = Math.max(...runs.map((r) => r.load1End));
  row.failures = {};
  for (const r of runs) for (const [k, n] of Object.entries(r.failures)) row.failures[k] = (row.failures[k] ?? 0) + n;
  return row;
}
