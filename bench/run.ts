/**
 * `npm run bench`: pollcast and a naive node:http broadcaster, side by side in
 * one run, fed by one simulator (issues 6 and 13). Server on one core,
 * simulator, load client and this orchestrator on the other.
 *
 *   node bench/run.ts [--quick] [--json] [--only burst,idle] [--targets pollcast] [--repeat 3] [--quiet-wait 60] [--profile] [--memory]
 *
 * --quick       every scenario in miniature (a smoke run of a few seconds each)
 * --json        print the rows and verdicts as JSON on stdout (progress stays on stderr)
 * --only        scenario keys to run (one-session, many-sessions, payload, burst, idle, idle-sessions, max-streams,
 *               resume-short, resume-long, cluster, forwarding, session-list); one-session, many-sessions and
 *               payload also measure the upstream hop alone (a `hop` row)
 * --targets     pollcast, baseline or both (default both); the cluster scenario always compares one
 *               pollcast with a cluster of three on one redis-server (needs redis-server installed)
 * --repeat      measure each scenario and target N times, alternating targets; the table shows medians, the
 *               spread table min–median–max, and issue 21's goals are judged run by run (5 runs needed)
 * --quiet-wait  before each measurement wait up to S seconds for the machine to be nearly idle
 *               (default 30; 0 = do not wait; --quick never waits)
 * --profile     run pollcast and the naive server under --cpu-prof (profiles in $TMPDIR/pollcast-bench-profiles,
 *               named for the target; summarise one with node bench/profile-summary.ts <file>)
 * --node-flags  extra node flags for both servers (experiments, e.g. --node-flags=--trace-gc)
 * --memory      preload bench/memory-probe.ts into the servers and split the memory of idle streams (heap,
 *               young generation, external, native) per stream; a diagnostic: its full GCs move the RSS figures
 * --source      run both servers from TypeScript (node's type stripping; ~17–21 MB more base RSS for pollcast,
 *               ~10 MB for the naive server). By default pollcast runs as deployed (`npm start`, the Dockerfile:
 *               `node dist/cli.js`, after `npm run build`) and the naive server as JavaScript too; --quick always
 *               runs from source
 * --heap-snapshots  with --memory, also write a heap snapshot before and after the streams open (compare them
 *               with node bench/heap-summary.ts <before> <after> <streams>)
 * --busy-neighbour  a process spinning on the server's core for the whole run (issue 21: "under a busy
 *               neighbour"): both servers get the core's time with it, as on a shared host; implies --quiet-wait 0
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { foldRuns } from './aggregate.ts';
import { measureHop } from './hop.ts';
import { measure, type Row } from './measure.ts';
import { MemorySampler } from './memory-sampler.ts';
import { measureForwarding, measureSessionList } from './paths.ts';
import { CAN_PIN, firstJsonLine, loadAverages, nofileHardLimit, pinSelf, startService, stopProcess } from './processes.ts';
import { renderReport } from './render.ts';
import { FULL, QUICK, SCENARIO_KEYS } from './scenarios.ts';
import { verdicts } from './verdicts.ts';
import { issue21 } from './verdicts21.ts';
import { SimControl } from './sim-control.ts';
import { BASELINE_SOURCE_ENTRY, baselineAsJavaScript, POLLCAST_BUILT_ENTRY, POLLCAST_SOURCE_ENTRY, type TargetName } from './targets.ts';

/** Core of the server under test. */
const SERVER_CORE = 0;
/** Core of the load client, the simulator and this orchestrator. */
const CLIENT_CORE = 1;
/** Pause for RSS to settle after start and after the streams opened (ms). */
const SETTLE_MS = { full: 1_500, quick: 300 };
/** Descriptors a server needs besides its streams (stdio, epoll, listener, upstream pool, …). */
const SERVER_FD_RESERVE = 48;

const USAGE = `Usage: npm run bench -- [options]   (or: node bench/run.ts [options])

Runs pollcast and a naive node:http broadcaster side by side on the same simulator and prints one table.

Options:
  --repeat N         runs of each scenario (5 for issue 21's run-by-run verdicts; default 1)
  --only A,B         scenarios: ${SCENARIO_KEYS.join(', ')}
  --targets A,B      servers to run (default pollcast,baseline)
  --quick            the short smoke run the tests use (from TypeScript, no build)
  --quiet-wait S     wait up to S seconds for the machine to be quiet before each run (default 30)
  --busy-neighbour   a process spinning on the server's core the whole time
  --profile          CPU profiles of both servers (to the temp folder)
  --memory, --heap-snapshots   memory samples (and heap snapshots) of both servers
  --node-flags F     extra node flags for both servers
  --source           run pollcast from TypeScript instead of the build
  --json             print the rows as JSON
  --help             this text

Every row x5 takes about an hour on 2 cores; --only many-sessions --repeat 5 about ten minutes.`;

const { values } = parseArgs({
  options: {
    help: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    only: { type: 'string' },
    targets: { type: 'string', default: 'pollcast,baseline' },
    repeat: { type: 'string', default: '1' },
    'quiet-wait': { type: 'string', default: '30' },
    profile: { type: 'boolean', default: false },
    'node-flags': { type: 'string', default: '' },
    memory: { type: 'boolean', default: false },
    source: { type: 'boolean', default: false },
    // The default since 3 Dec 2026; still accepted so that commands recorded in bench/RESULTS.md run as written.
    built: { type: 'boolean', default: false },
    'heap-snapshots': { type: 'boolean', default: false },
    'busy-neighbour': { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const repeat = Math.max(1, Number(values.repeat) || 1);
const quietWaitS = values.quick || values['busy-neighbour'] ? 0 : Math.max(0, Number(values['quiet-wait']) || 0);

const cwd = resolve(import.meta.dirname, '..');
const log = (line: string): void => void process.stderr.write(`${line}\n`);
const only = values.only?.split(',').map((s) => s.trim());
for (const k of only ?? []) if (!(SCENARIO_KEYS as readonly string[]).includes(k)) throw new Error(`unknown scenario ${k}; known: ${SCENARIO_KEYS.join(', ')}`);
const targets = values.targets.split(',').map((s) => s.trim()) as TargetName[];
const scenarios = (values.quick ? QUICK : FULL).filter((s) => !only || only.includes(s.key));

const multiCore = cpus().length >= 2;
const pinned = CAN_PIN && multiCore && pinSelf(CLIENT_CORE);
const serverCore = pinned ? SERVER_CORE : null;
const clientCore = pinned ? CLIENT_CORE : null;
const fdHard = nofileHardLimit();
const profileDir = values.profile ? join(tmpdir(), 'pollcast-bench-profiles') : null;
if (profileDir) {
  mkdirSync(profileDir, { recursive: true });
  log(`pollcast CPU profiles go to ${profileDir}`);
}

const memory = values.memory ? new MemorySampler(join(tmpdir(), `pollcast-bench-memory-${Date.now().toString(36)}`), resolve(import.meta.dirname, '..'), values['heap-snapshots']) : null;
if (memory) log(`memory samples go to ${memory.dir}`);
const nodeFlags = [...values['node-flags'].split(' ').filter(Boolean), ...(memory?.nodeFlags() ?? [])];

// As deployed (`npm start`, the Dockerfile): the build, beside the naive server as JavaScript too. --source and
// --quick (a smoke run of the harness) run both from TypeScript, with node's type stripping.
const built = !values.source && !values.quick;
if (built) {
  log('building pollcast (npm run build) to run dist/cli.js');
  const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: resolve(import.meta.dirname, '..'), stdio: ['ignore', 'inherit', 'inherit'] });
  if (build.status !== 0) throw new Error(`npm run build failed (${build.status ?? build.signal})`);
}
const pollcastEntry = built ? POLLCAST_BUILT_ENTRY : POLLCAST_SOURCE_ENTRY;
const baselineEntry = built ? baselineAsJavaScript(cwd) : BASELINE_SOURCE_ENTRY;
/** The busy neighbour: 50 ms of spinning at a time until its stdin (a pipe from this process) ends. */
const NEIGHBOUR_SPIN = "process.stdin.on('end', () => process.exit(0)).resume(); (function spin() { const t = Date.now(); while (Date.now() - t < 50); setImmediate(spin); })();";

const machine = {
  date: new Date().toISOString(),
  nproc: cpus().length,
  cpu: cpus()[0]?.model ?? 'unknown',
  node: process.version,
  pollcast: `node ${pollcastEntry}`,
  baseline: `node ${baselineEntry}`,
  pinning: pinned ? `server on core ${SERVER_CORE}; load client, simulator and orchestrator on core ${CLIENT_CORE}` : 'unpinned (taskset unavailable or one core)',
  nofileHard: fdHard,
  repeat,
  loadStart: loadAverages(),
  loadEnd: '',
  ...(values['busy-neighbour'] ? { neighbour: `a process spinning on ${serverCore === null ? 'an unpinned core' : `core ${serverCore}`} for the whole run` } : {}),
};
log(`pollcast bench: ${machine.nproc} cpu (${machine.cpu}), node ${machine.node}, pollcast as ${machine.pollcast}, ${machine.pinning}, nofile hard ${fdHard}, load ${machine.loadStart}`);

const simChild = startService({ name: 'simulator', core: clientCore, script: 'src/simulator/cli.ts', args: ['--port', '0'], cwd });
const { simulator: simUrl } = await firstJsonLine<{ simulator: string }>(simChild);
simChild.stdout?.resume();
const sim = new SimControl(simUrl);
const runId = Date.now().toString(36);

const rows: Row[] = [];
const allRuns: Row[] = [];
let neighbour: ChildProcess | null = null;
try {
  // Plain CPU work at the same priority as the server, on its core: the kernel shares the core between them. It
  // spins in slices so that it notices its stdin closing, and so never outlives this orchestrator.
  if (values['busy-neighbour']) neighbour = startService({ name: 'neighbour', core: serverCore, script: '-e', args: [NEIGHBOUR_SPIN], cwd });
  for (const scenario of scenarios) {
    const cap = Number.isFinite(fdHard) ? Math.floor((fdHard - SERVER_FD_RESERVE) / scenario.sessions) : Number.POSITIVE_INFINITY;
    const streamsPerSession = scenario.cappedByFdLimit ? Math.min(scenario.streamsPerSession, cap) : scenario.streamsPerSession;
    if (streamsPerSession < scenario.streamsPerSession) log(`${scenario.key}: capped at ${streamsPerSession * scenario.sessions} streams by the descriptor hard limit (${fdHard})`);
    log(`${scenario.key}: ${scenario.title} (load ${loadAverages()})`);
    const scenarioTargets: TargetName[] = [...(scenario.targets ?? targets), ...(scenario.hopProbe ? (['hop'] as const) : [])];
    const runs = new Map<TargetName, Row[]>(scenarioTargets.map((t) => [t, []]));
    for (let rep = 0; rep < repeat; rep++) {
      // Alternate which target goes first, so a drift in machine load does not favour one.
      const order = rep % 2 === 0 ? scenarioTargets : [...scenarioTargets].reverse();
      for (const target of order) {
        const context = {
          sim,
          targetOptions: { upstreamUrl: simUrl, core: serverCore, cwd, profileDir: target === 'pollcast' || target === 'baseline' ? profileDir : null, nodeFlags, env: memory?.env() ?? {}, pollcastEntry, baselineEntry },
          clientCore,
          serverCore,
          simPid: simChild.pid!,
          neighbourPid: neighbour?.pid ?? null,
          quietWaitMs: quietWaitS > 0 ? quietWaitS * 1000 : null,
          cwd,
          runId: `${runId}r${rep}`,
          streamsPerSession,
          settleMs: values.quick ? SETTLE_MS.quick : SETTLE_MS.full,
          memory,
          log,
        };
        const row =
          target === 'hop' ? await measureHop(scenario, context)
          : scenario.schedule === 'forwarding' ? await measureForwarding(scenario, context)
          : scenario.schedule === 'list' ? await measureSessionList(scenario, context)
          : await measure(scenario, target, context);
        runs.get(target)!.push(row);
        allRuns.push(row);
        const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(0)}%`);
        const neighbourShare = row.neighbourCoreShare ?? null;
        const other = `, other load on server core ${pct(row.serverCoreOtherShare)}${neighbourShare === null ? '' : ` besides the busy neighbour's ${pct(neighbourShare)}`}, on client core ${pct(row.clientCoreOtherShare)}`;
        const redis = row.redisCpuMs === null ? '' : ` (redis-server ${row.redisCpuMs.toFixed(0)} ms of it)`;
        log(`  ${target}: ${row.deliveries} deliveries in ${row.windowMs} ms, server CPU ${row.serverCpuMs.toFixed(0)} ms${redis} (${(row.serverSysShare * 100).toFixed(0)}% kernel), p99 ${row.p99Ms?.toFixed(1) ?? '-'} ms, lost ${row.lost}, dup ${row.duplicated}, client CPU ${(row.clientCpuShare * 100).toFixed(0)}% (busiest slice ${(row.clientBusiestSliceShare * 100).toFixed(0)}%${row.clientSaturated ? ', saturated' : ''}), simulator ${(row.simCpuShare * 100).toFixed(0)}%, orchestrator ${(row.orchestratorCpuShare * 100).toFixed(0)}%${other}`);
      }
    }
    for (const target of scenarioTargets) rows.push(foldRuns(runs.get(target)!));
  }
} finally {
  await stopProcess(simChild);
  if (neighbour) await stopProcess(neighbour, 'SIGKILL', 1_000);
}
machine.loadEnd = loadAverages();

// Goals are stated for the full-size scenarios; a quick run only checks that everything works.
const list = values.quick ? { issue6: [], issue13: [], issue21: [] } : { ...verdicts(rows), issue21: issue21(rows) };
const report = JSON.stringify({ machine, rows, runs: allRuns, verdicts: list }, null, 2);
// A full run leaves its record (each repetition included) in the temp directory, for later reading
// (node bench/render.ts <record>); quick runs (the test suite's) leave nothing behind.
if (!values.quick) {
  const recordPath = join(tmpdir(), `pollcast-bench-${runId}.json`);
  writeFileSync(recordPath, report);
  log(`full record: ${recordPath}`);
}
process.stdout.write(values.json ? `${report}\n` : `\n${renderReport(machine, rows, values.quick)}\n`);
