/**
 * CPU per upstream changes call, pollcast's client (`src/upstream/client.ts`)
 * against the naive server's node:http GET (`bench/naive-long-poll.ts`): N
 * sequential `wait_for_seconds=0` calls of one event each against the
 * simulator (run on core 1), two passes of each, measured with
 * `process.cpuUsage()` in this process. Run it pinned to the other core:
 *
 *   taskset -c 0 node bench/client-cost.ts [calls=3000]
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createUpstreamClient } from '../src/upstream/client.ts';
import { naiveLongPoll } from './naive-long-poll.ts';
import { SimControl } from './sim-control.ts';

const calls = Number(process.argv[2] ?? 3000);
/** Calls before each measured pass (JIT warm-up). */
const WARMUP_CALLS = 300;

const sim = spawn('taskset', ['-c', '1', process.execPath, new URL('../src/simulator/cli.ts', import.meta.url).pathname], { stdio: ['ignore', 'pipe', 'inherit'] });
const line = await new Promise<string>((resolve) => createInterface({ input: sim.stdout! }).once('line', resolve));
const url = (JSON.parse(line) as { simulator: string }).simulator;
await new SimControl(url).createSession('s', { initialEvents: calls + WARMUP_CALLS });
const pollcast = createUpstreamClient({ baseUrl: url });
const naive = naiveLongPoll(url);

async function viaPollcast(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await pollcast.changes('s', { fromIndex: i, limit: 1, includeEvents: true, waitSeconds: 0 });
    if (r.kind !== 'events') throw new Error(`pollcast client: ${r.kind}`);
  }
}
async function viaNaive(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await naive.changesText('s', i, 0);
    if (!Array.isArray((JSON.parse(r.text) as { new_events?: unknown }).new_events)) throw new Error('naive client: no events');
  }
}

try {
  for (const [name, run] of [['pollcast', viaPollcast], ['naive', viaNaive], ['pollcast', viaPollcast], ['naive', viaNaive]] as const) {
    await run(WARMUP_CALLS);
    const before = process.cpuUsage();
    await run(calls);
    const used = process.cpuUsage(before);
    process.stdout.write(`${name.padEnd(8)} CPU ${((used.user + used.system) / calls).toFixed(1)} us per call (user ${(used.user / calls).toFixed(1)})\n`);
  }
} finally {
  await pollcast.close();
  naive.close();
  sim.kill();
}
