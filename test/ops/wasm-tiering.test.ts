/**
 * pollcast sets V8's WebAssembly flags on itself as it starts
 * (src/runtime-flags.ts): undici's HTTP/1.1 parser, the one WebAssembly it
 * runs, stays on the baseline compiler, so its optimising compile (~23 MB of
 * compiler memory, ~10 MB of it kept resident) never happens. Checked on the
 * command as deployed, `node cli.js` built by tsc (into test/artifacts: from
 * source, node's type stripper is WebAssembly of its own, optimised before
 * pollcast's first line runs), with V8's own trace of each WebAssembly
 * function it compiles, across a session read whole through it; and, as a
 * control, that undici alone making the same calls does get it optimised.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { eventually, freePort } from '../helpers/harness.ts';
import { parseSse, readAll } from '../helpers/multi.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let sim: Simulator | undefined;
let proc: ChildProcess | undefined;
afterEach(async () => {
  proc?.kill('SIGKILL');
  await sim?.close();
  sim = proc = undefined;
});

it('compiles undici\'s parser with the baseline compiler only, through a whole session of upstream calls', async () => {
  sim = await createSimulator({ demo: false });
  sim.createSession('w1', { initialEvents: 300 });
  sim.finish('w1', {});
  const outDir = join(ROOT, 'test', 'artifacts', 'wasm-tiering-dist');
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', outDir], { cwd: ROOT });
  const port = await freePort();
  proc = spawn(process.execPath, ['--trace-wasm-compilation-times', join(outDir, 'cli.js')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', UPSTREAM_URL: sim.url, AUTH: 'none', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', UPSTREAM_PAGE_SIZE: '10' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let trace = '';
  proc.stdout!.on('data', (d: Buffer) => (trace += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (trace += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  await eventually(() => fetch(`${url}/healthz`).then((r) => r.ok, () => false), 30_000, 'pollcast serving');
  // Many upstream answers: the parser's main function is called far past the point V8 optimised it at by default.
  const frames = parseSse(await readAll(await fetch(`${url}/sessions/w1/events`)));
  expect(frames.filter((f) => f.id !== undefined && f.event === undefined)).toHaveLength(300);
  expect(sim.stats('w1').changes).toBeGreaterThan(20);
  // The trace names each compiled function and its compiler.
  expect(trace).toMatch(/Compiled function \S+ using Liftoff/);
  expect(trace).not.toMatch(/using TurboFan/);

  // The control: the same upstream calls made by undici in a node without those flags do get the parser optimised.
  const calls = sim.stats('w1').changes;
  // Not execFileSync: the simulator answering it runs in this process.
  const { stdout: control } = await promisify(execFile)(process.execPath, ['--trace-wasm-compilation-times', '--input-type=module', '-e', `
    import { Pool } from 'undici';
    const pool = new Pool(${JSON.stringify(sim.url)});
    for (let i = 0; i < ${calls}; i++) {
      const r = await pool.request({ path: '/sessions/w1/changes?from_index=' + ((i * 10) % 300) + '&limit=10&wait_for_seconds=0', method: 'GET' });
      await r.body.text();
    }
    await pool.close();
  `], { cwd: ROOT, encoding: 'utf8' });
  expect(control).toMatch(/using TurboFan/);
}, 120_000);
