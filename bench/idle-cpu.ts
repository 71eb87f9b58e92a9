/**
 * What a running server costs when nothing happens: pollcast and the naive
 * server, each started alone on the server core against the simulator, with
 * no stream and no session, and their CPU read over a quiet interval (the
 * wake-ups of their timers, metrics included).
 *
 *   node bench/idle-cpu.ts [seconds=30] [repeat=3]
 *
 * Prints, per run, CPU milliseconds per minute and the share of one core.
 */
import { resolve } from 'node:path';
import { delay, firstJsonLine, processCpu, startService, stopProcess } from './processes.ts';
import { startTarget, type TargetName } from './targets.ts';

const seconds = Number(process.argv[2] ?? 30);
const repeat = Number(process.argv[3] ?? 3);
/** Time given to a server after it answers, before the interval starts (start-up work, the JIT) (ms). */
const SETTLE_MS = 5_000;
const cwd = resolve(import.meta.dirname, '..');

const sim = startService({ name: 'simulator', core: 1, script: 'src/simulator/cli.ts', args: ['--port', '0'], cwd });
const { simulator: upstreamUrl } = await firstJsonLine<{ simulator: string }>(sim);
sim.stdout?.resume();

const cpuUs = (pid: number) => {
  const c = processCpu(pid);
  return c.userUs + c.sysUs;
};

try {
  process.stdout.write(`| run | server | CPU ms/min | share of a core |\n|---:|:--|--:|--:|\n`);
  for (let run = 1; run <= repeat; run++) {
    for (const name of ['pollcast', 'baseline'] as TargetName[]) {
      const target = await startTarget(name, { upstreamUrl, core: 0, cwd, profileDir: null });
      try {
        await delay(SETTLE_MS);
        const pid = target.pids[0]!;
        const before = cpuUs(pid);
        await delay(seconds * 1000);
        const usedMs = (cpuUs(pid) - before) / 1000;
        const perMinute = (usedMs * 60) / seconds;
        process.stdout.write(`| ${run} | ${name} | ${perMinute.toFixed(0)} | ${((usedMs / (seconds * 1000)) * 100).toFixed(2)} % |\n`);
      } finally {
        await target.stop();
      }
    }
  }
} finally {
  await stopProcess(sim);
}
