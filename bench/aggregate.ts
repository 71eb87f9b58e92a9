/** Folds repeated measurements of one scenario and target into one row: medians for figures, worst case for errors. */
import { SPREAD_FIELDS, type MemoryBreakdown, type Row, type UpstreamCalls } from './row.ts';

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

const MEDIAN_FIELDS = ['deliveries', 'windowMs', 'deliveriesPerSec', 'serverCpuMs', 'serverSysShare', 'rssIdleKb', 'rssOpenKb', 'rssEndKb', 'rssPeakKb', 'rssKbPerStream', 'kernelKbPerStream', 'serverFds', 'upstreamRequests', 'upstreamPerSessionMinute', 'upstreamChangesPerSessionMinute', 'upstreamChangesInWindowPerSessionMinute', 'upstreamChangesInWindowPerSession', 'clientCpuShare', 'clientBusiestSliceShare', 'simCpuShare', 'orchestratorCpuShare'] as const;
const NULLABLE_MEDIAN_FIELDS = ['bytesPerDelivery', 'cpuUsPerDelivery', 'p50Ms', 'p99Ms', 'maxMs', 'firstEventP50Ms', 'firstEventMaxMs', 'upstreamPerBatch', 'serverCoreOtherShare', 'clientCoreOtherShare', 'redisCpuMs'] as const;
const WORST_FIELDS = ['failedOpens', 'closedEarly', 'lost', 'duplicated', 'stale', 'upstreamMaxInFlight'] as const;

/** One row standing for `runs` (same scenario and target); `runs` itself when there is one. */
export function foldRuns(runs: Row[]): Row {
  const first = runs[0]!;
  const each: Row['each'] = {};
  for (const k of SPREAD_FIELDS) each[k] = runs.map((r) => (r[k] === null || Number.isNaN(r[k]) ? null : r[k]));
  const eachExtra: Record<string, Array<number | null>> = {};
  for (const key of Object.keys(first.extra ?? {})) eachExtra[key] = runs.map((r) => r.extra?.[key] ?? null);
  if (runs.length === 1) return { ...first, each, eachExtra };
  const row: Row = { ...first, runs: runs.length, each, eachExtra };
  if (first.extra) row.extra = Object.fromEntries(Object.entries(eachExtra).map(([k, v]) => [k, medianOrNull(v)]));
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

/** min, median and max of a row's runs for one figure (nulls left out); null when no run has it. */
export function spreadOf(row: Row, field: keyof NonNullable<Row['each']>): Spread | null {
  return spreadOfValues(row.each?.[field] ?? [row[field]]);
}

/** min, median and max of one figure over runs. */
export interface Spread {
  min: number;
  median: number;
  max: number;
  n: number;
}

/** The spread of some values (nulls and NaN left out); null when none is left. */
export function spreadOfValues(all: ReadonlyArray<number | null | undefined>): Spread | null {
  const values = all.filter((x): x is number => x !== null && x !== undefined && !Number.isNaN(x));
  if (values.length === 0) return null;
  return { min: Math.min(...values), median: median(values), max: Math.max(...values), n: values.length };
}
