/**
 * The documented start command under a process manager: SIGTERM to `npm
 * start` (which builds first) must stop pollcast itself, gracefully. The
 * start script `exec`s node, so npm's signal reaches it (a plain script left
 * `node dist/cli.js` serving after npm was gone).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { eventually } from '../helpers/harness.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

it('SIGTERM to `npm start` stops pollcast gracefully: nothing is left serving', async () => {
  // `npm` as a user runs it, with the node running the tests first on PATH (npm's scripts use it too).
  const proc = spawn('npm', ['start', '--silent'], {
    cwd: ROOT,
    env: { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, PORT: '0', HOST: '127.0.0.1', SHUTDOWN_TIMEOUT_SECONDS: '2' },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so whatever it leaves behind can be cleaned up below.
    detached: true,
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  try {
    // The build runs first (prestart): give it time on a loaded machine.
    await eventually(() => /pollcast listening on (http:\/\/[^\s"]+)/.test(out), 90_000, 'pollcast listening');
    const url = /pollcast listening on (http:\/\/[^\s"]+)/.exec(out)![1]!;
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    // Node's process and runtime metrics under pollcast_ once, not pollcast_process_process_….
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/^pollcast_process_cpu_user_seconds_total \d/m);
    expect(metrics).toMatch(/^pollcast_nodejs_eventloop_lag_seconds \d/m);
    expect(metrics).not.toMatch(/pollcast_process_(process|nodejs)_/);
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    await exited;
    // pollcast itself stopped (its last line), and nothing answers on its port any more.
    await eventually(() => out.includes('"msg":"stopped"'), 10_000, 'the "stopped" line');
    await eventually(async () => fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) }).then(() => false, () => true), 10_000, 'the port closed');
  } finally {
    try {
      process.kill(-proc.pid!, 'SIGKILL');
    } catch {
      // the group is gone already
    }
  }
}, 120_000);
