/**
 * `npm run chaos` (node test/chaos/run.ts): the full-size chaos run. The same
 * seed runs twice — without faults, then with seeded random upstream faults —
 * each with one pollcast restart (a real process stopped by SIGTERM and a new
 * one on the same port), and prints a summary table. Exit code 1 when a
 * subscriber lost or repeated an event, or the upstream request count broke
 * its bound.
 *
 * With --cluster, pollcast runs as three processes on one redis-server
 * (cluster mode) and the restart becomes a SIGKILL of the busiest leader
 * followed by Redis stopped and restarted empty.
 *
 *   node test/chaos/run.ts [--seed N] [--subscribers N] [--in-process] [--quick] [--cluster]
 */
import { parseArgs } from 'node:util';
import { requestBound, REQUEST_BOUND_FACTOR, REQUESTS_PER_FAULT, runChaos, summaryRow, type ChaosOptions, type ChaosResult } from './chaos.ts';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    subscribers: { type: 'string' },
    'in-process': { type: 'boolean' },
    quick: { type: 'boolean' },
    cluster: { type: 'boolean' },
  },
});
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
if (!Number.isInteger(seed)) throw new Error('--seed must be an integer');

/** The full size: several sessions, hundreds of subscribers, a few minutes of wall time for both runs together. */
export const FULL: Omit<ChaosOptions, 'seed' | 'faultRate'> = {
  liveSessions: 6,
  historySessions: 2,
  eventsPerSession: [150, 300],
  emitEveryMs: [60, 160],
  detailBytes: [100, 4000],
  subscribers: 400,
  startWindowMs: 4000,
  reconnectEveryMs: [1500, 6000],
  leaveFraction: 0.1,
  restart: true,
  instanceMode: 'process',
  timeoutMs: 120_000,
};
const QUICK: Partial<ChaosOptions> = { liveSessions: 3, historySessions: 1, eventsPerSession: [60, 120], subscribers: 60, startWindowMs: 1500, reconnectEveryMs: [500, 2000], timeoutMs: 60_000 };

const options: Omit<ChaosOptions, 'faultRate'> = {
  ...FULL,
  ...(values.quick ? QUICK : {}),
  ...(values.subscribers !== undefined ? { subscribers: Number(values.subscribers) } : {}),
  ...(values['in-process'] && !values.cluster ? { instanceMode: 'in-process' as const } : {}),
  ...(values.cluster ? { cluster: 3, instanceMode: 'process' as const } : {}),
  seed,
};
const FAULT_RATE = 0.15;

const disruption = options.cluster ? `cluster of ${options.cluster} processes on one redis-server; disruption: SIGKILL of the busiest leader, then Redis restarted empty` : `restart ${options.instanceMode === 'process' ? 'by SIGTERM of the pollcast process' : 'by server.close()'}`;
console.log(`chaos: seed ${seed} (replay with --seed ${seed}); ${options.liveSessions} live + ${options.historySessions} finished sessions, ${options.subscribers} subscribers, ${disruption}`);
const runs: Array<[string, ChaosResult]> = [];
for (const [label, faultRate] of [['no faults', 0], [`faults ${FAULT_RATE * 100}%`, FAULT_RATE]] as const) {
  const t0 = Date.now();
  process.stdout.write(`running: ${label} … `);
  const r = await runChaos({ ...options, faultRate });
  console.log(`${Math.round((Date.now() - t0) / 1000)} s, ${r.problems.length} problems`);
  runs.push([label, r]);
}
console.table(runs.map(([label, r]) => summaryRow(label, r)));

const [, faultFree] = runs[0]!;
const [, faulted] = runs[1]!;
const bound = requestBound(faultFree, faulted.upstream.faultsServed);
const withinBound = faulted.upstream.requests <= bound;
console.log(
  `upstream requests with faults: ${faulted.upstream.requests} (fault-free ${faultFree.upstream.requests}, ratio ${(faulted.upstream.requests / faultFree.upstream.requests).toFixed(2)}); ` +
    `bound ${REQUEST_BOUND_FACTOR} × ${faultFree.upstream.requests} + ${REQUESTS_PER_FAULT} × ${faulted.upstream.faultsServed} faults = ${bound}: ${withinBound ? 'within' : 'BROKEN'}`,
);
for (const [label, r] of runs) {
  console.log(`${label}: per session (events / changes / status / faults / max req per s / max changes in flight / max long-polls in flight): ${r.sessions.map((s) => `${s.events}/${s.changes}/${s.status}/${s.faultsServed}/${s.maxPerSecond}/${s.maxInFlightChanges}/${s.maxInFlightLongPolls}`).join('  ')}`);
  console.log(`${label}: pollcast: ${JSON.stringify(r.pollcast)}; refused opens by status: ${JSON.stringify(r.subscribers.refusedByStatus)}`);
  for (const p of r.problems.slice(0, 20)) console.log(`  PROBLEM ${p}`);
  if (r.problems.length > 20) console.log(`  … ${r.problems.length - 20} more`);
}
const ok = runs.every(([, r]) => r.ok) && withinBound;
console.log(ok ? `chaos: OK (seed ${seed})` : `chaos: FAILED (seed ${seed})`);
process.exit(ok ? 0 : 1);
