/** The real process: demo mode out of the box, and a graceful stop on SIGTERM whatever its stdout does. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { record } from '../helpers/harness.ts';
import { CLI, startCli as startProcess, type Cli } from '../helpers/cli.ts';

let child: ChildProcess | undefined;
afterEach(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  child = undefined;
});

/** Starts `node src/cli.ts` (killed after the test) and resolves with its URL once it logs that it listens. */
function startCli(env: Record<string, string>): Promise<Cli> {
  return startProcess(env, (proc) => (child = proc));
}

/** Resolves with the exit code once `proc` exits; rejects when it is still running after `timeoutMs` (afterEach kills it). */
function exitWithin(proc: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (proc.exitCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still running ${timeoutMs} ms after SIGTERM`)), timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Requests the process logs at debug level (404s, so they cost no upstream call nor a rate-limit token); each line is about `padBytes` long. */
async function loggedRequests(url: string, count: number, padBytes = 0): Promise<void> {
  for (let i = 0; i < count; i++) {
    const res = await fetch(`${url}/nowhere-${i}?pad=${'x'.repeat(padBytes)}`);
    expect(res.status).toBe(404);
    await res.body?.cancel();
  }
}

/** A short graceful-stop budget keeps these tests fast; the margin covers process teardown on a loaded machine. */
const SHUTDOWN_SECONDS = 2;
const EXIT_MARGIN_MS = 2000;

describe('the pollcast process', () => {
  it('starts in demo mode with no UPSTREAM_URL, announces it, and streams demo sessions', async () => {
    const { url, logs } = await startCli({});
    expect(logs.join('')).toMatch(/DEMO MODE/);
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/EventSource|pollcast/);
    // The demo's list, as the Agent API gives it (forwarded to the built-in simulator).
    const list = (await (await fetch(`${url}/api/v2/sessions?size=100`)).json()) as { items: Array<{ id: string; status: string }> };
    const terminal = new Set(['completed', 'failed', 'timed_out', 'interrupted']);
    expect(list.items.filter((s) => !terminal.has(s.status)).length).toBeGreaterThanOrEqual(3);
    expect(list.items.every((s) => /^demo-\d+$/.test(s.id))).toBe(true);
    const r = record(`${url}/sessions/${list.items[0]!.id}/events`);
    await r.until((x) => x.indices().length >= 2, 10_000);
    r.close();
  });

  it('on SIGTERM ends open streams and exits 0 within 10 s', async () => {
    const { url, proc } = await startCli({ SSE_RETRY_MS: '60000' });
    const res = await fetch(`${url}/sessions/demo-1/events`);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read();
    const started = Date.now();
    // Listened for before the kill: 'exit' may come while the reads below still drain the stream.
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    // The stream must end (done) rather than hang: the client then reconnects elsewhere.
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
    }
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('on SIGTERM exits 0 and its last log lines, "stopped" included, reach stdout', async () => {
    const { proc, logs, closed } = await startCli({ SHUTDOWN_TIMEOUT_SECONDS: String(SHUTDOWN_SECONDS) });
    proc.kill('SIGTERM');
    expect(await exitWithin(proc, SHUTDOWN_SECONDS * 1000 + EXIT_MARGIN_MS)).toBe(0);
    // The last lines may still be in the pipe at 'exit'.
    await closed;
    const lines = logs.join('').trim().split('\n').map((l) => JSON.parse(l) as { msg: string });
    expect(lines.map((l) => l.msg)).toEqual([expect.stringMatching(/^DEMO MODE/), expect.stringMatching(/^pollcast listening on/), expect.stringMatching(/^stopping/), 'stopped']);
  });

  // As seen in review: `pollcast | head -2`, then SIGTERM. The first write to hit EPIPE may be the
  // "stopping" line itself, or a request log long before it: both must end in an exit on time.
  it.each([
    ['the stop itself', 0],
    ['request logs before the stop', 5],
  ])('on SIGTERM exits within SHUTDOWN_TIMEOUT_SECONDS when stdout is a closed pipe (EPIPE first hit by %s)', async (_what, requests) => {
    const { url, proc } = await startCli({ LOG_LEVEL: 'debug', SHUTDOWN_TIMEOUT_SECONDS: String(SHUTDOWN_SECONDS) });
    // Close the reading end, as `head` does when it exits: every later log write gets EPIPE.
    proc.stdout!.destroy();
    // Each request is logged at debug level: those writes fail, and serving must go on.
    await loggedRequests(url, requests);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const started = Date.now();
    proc.kill('SIGTERM');
    expect(await exitWithin(proc, SHUTDOWN_SECONDS * 1000 + EXIT_MARGIN_MS)).toBe(0);
    expect(Date.now() - started).toBeLessThan(SHUTDOWN_SECONDS * 1000 + EXIT_MARGIN_MS);
  });

  it('on SIGTERM exits within SHUTDOWN_TIMEOUT_SECONDS when nobody reads its stdout any more (a full pipe)', async () => {
    const { url, proc } = await startCli({ LOG_LEVEL: 'debug', SHUTDOWN_TIMEOUT_SECONDS: String(SHUTDOWN_SECONDS) });
    // Stop reading: once the kernel's buffers are full, every write to stdout would block.
    proc.stdout!.removeAllListeners('data');
    proc.stdout!.pause();
    // About 4 MB of request logs, far more than a pipe or socket buffers.
    await loggedRequests(url, 300, 12_000);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const started = Date.now();
    proc.kill('SIGTERM');
    expect(await exitWithin(proc, SHUTDOWN_SECONDS * 1000 + EXIT_MARGIN_MS)).toBe(0);
    expect(Date.now() - started).toBeLessThan(SHUTDOWN_SECONDS * 1000 + EXIT_MARGIN_MS);
  });

  it('refuses to start with an invalid setting, naming the variable', async () => {
    const proc = spawn(process.execPath, [CLI], { env: { PATH: process.env.PATH ?? '', PORT: 'eighty' }, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    // 'close', not 'exit': the line naming the variable may still be in the pipe at 'exit'.
    const [code] = (await once(proc, 'close')) as [number | null];
    expect(code).not.toBe(0);
    expect(err).toMatch(/PORT/);
  });
});
