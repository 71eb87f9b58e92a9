/**
 * The printed report of a run: the table, the summaries under it and the
 * verdicts. Also re-renders saved records (the JSON a full run leaves in the
 * temp directory), alone or merged, the later record's rows replacing the
 * earlier's for the same scenario and target (a re-measured scenario):
 *
 *   node bench/render.ts $TMPDIR/pollcast-bench-<id>.json [later-record.json …]
 */
import { readFileSync } from 'node:fs';
import { formatSpread, formatTable, TABLE_NOTES } from './report.ts';
import type { Row } from './row.ts';
import { clusterComparison, flySummary, hopSummary, memorySummary, resumeSummary } from './summaries.ts';
import { formatVerdicts, verdicts } from './verdicts.ts';
import { issue21 } from './verdicts21.ts';

/** What a run records about the machine (printed under the table). */
export interface MachineRecord {
  date: string;
  nproc: number;
  cpu: string;
  node: string;
  pollcast: string;
  /** How the naive server ran (absent in older records: `node bench/baseline.ts`). */
  baseline?: string;
  pinning: string;
  nofileHard: number;
  repeat: number;
  loadStart: string;
  loadEnd: string;
  /** `--busy-neighbour`: what shared the server's core (absent in older records: nothing). */
  neighbour?: string;
}

/** A run's saved record. */
export interface RunRecord {
  machine: MachineRecord;
  rows: Row[];
  runs: Row[];
}

/** The report as printed at the end of a run; `quick` leaves the verdicts out (miniature scenarios). */
export function renderReport(machine: MachineRecord, rows: Row[], quick: boolean): string {
  const list = verdicts(rows);
  const verdictText = quick ? 'quick run: miniature scenarios, no verdict on the goals' : `issue 6:\n${formatVerdicts(list.issue6)}\n\nissue 13:\n${formatVerdicts(list.issue13)}\n\nissue 21 (run by run, spread min–median–max):\n${formatVerdicts(issue21(rows))}`;
  const medians = machine.repeat > 1 ? `\n(medians of ${machine.repeat} runs each; lost, duplicated, stale and errors are the worst run's)` : '';
  const summaries = [clusterComparison(rows), hopSummary(rows), resumeSummary(rows), memorySummary(rows), flySummary(rows)].filter((x): x is string => x !== null);
  const neighbour = machine.neighbour ? `; busy neighbour: ${machine.neighbour}` : '';
  const footer = `load average ${machine.loadStart} at start, ${machine.loadEnd} at end; ${machine.pinning}; pollcast as ${machine.pollcast}, the naive server as ${machine.baseline ?? 'node bench/baseline.ts'}${neighbour}`;
  return [`${formatTable(rows)}${medians}\n${TABLE_NOTES}`, formatSpread(rows), ...summaries, verdictText, footer].join('\n\n');
}

/** Rows of several records, later records replacing earlier rows of the same scenario and target, in the first record's order. */
export function mergeRecords(records: RunRecord[]): Row[] {
  const key = (r: Row) => `${r.scenario}\u0000${r.target}`;
  const merged = new Map<string, Row>();
  for (const rec of records) for (const row of rec.rows) merged.set(key(row), row);
  return [...merged.values()];
}

if (import.meta.main) {
  const paths = process.argv.slice(2);
  if (paths.length === 0) {
    process.stderr.write('usage: node bench/render.ts <record.json> [later-record.json …]\n');
    process.exit(2);
  }
  const records = paths.map((p) => JSON.parse(readFileSync(p, 'utf8')) as RunRecord);
  for (const [i, rec] of records.entries()) process.stdout.write(`record ${paths[i]}: ${rec.machine.date}, ${rec.machine.repeat} run(s) each, load ${rec.machine.loadStart} -> ${rec.machine.loadEnd}${rec.machine.neighbour ? `, busy neighbour: ${rec.machine.neighbour}` : ''}\n`);
  // The footer is the first record's; with several records, each one's busy neighbour is named above instead.
  const footerMachine = records.length === 1 ? records[0]!.machine : { ...records[0]!.machine, neighbour: undefined };
  process.stdout.write(`\n${renderReport(footerMachine, mergeRecords(records), false)}\n`);
}
