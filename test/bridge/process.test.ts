/** The real process: demo mode out of the box, and a graceful stop on SIGTERM. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { record } from '../helpers/harness.ts';

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;
let child: ChildProcess | undefined;
afterEach(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  child = undefined;
});

/** Starts `node src/cli.ts` and resolves with its URL once it logs that it listens. */
async function startCli(env: Record<string, string>): Promise<{ url: string; proc: ChildProcess; logs: string[] }> {
  const proc = spawn(process.execPath, [CLI], { env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  const logs: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line; logs: ${logs.join('')}`)), 15_000);
    proc.stdout!.on('data', (d: Buffer) => {
      logs.push(d.toString());
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(logs.join(''));
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
    proc.once('exit', (code) => reject(new Error(`exited ${code}: ${logs.join('')}`)));
  });
  return { url, proc, logs };
}

describe('the pollcast process', () => {
  it('starts in demo mode with no UPSTREAM_URL, announces it, and streams demo sessions', async () => {
    const { url, logs } = await startCli({});
    expect(logs.join('')).toMatch(/DEMO MODE/);
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/EventSource|pollcast/);
    const list = (await (await fetch(`${url}/demo/sessions`)).json()) as { sessions: Array<{ id: string; finished_at: string | null }> };
    expect(list.sessions.filter((s) => s.finished_at === null).length).toBeGreaterThanOrEqual(3);
    expect(list.sessions.every((s) => /^demo-\d+$/.test(s.id))).toBe(true);
    const r = record(`${url}/sessions/${list.sessions[0]!.id}/events`);
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
    proc.kill('SIGTERM');
    // The stream must end (done) rather than hang: the client then reconnects elsewhere.
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
    }
    const [code] = (await once(proc, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('refuses to start with an invalid setting, naming the variable', async () => {
    const proc = spawn(process.execPath, [CLI], { env: { PATH: process.env.PATH ?? '', PORT: 'eighty' }, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(proc, 'exit')) as [number | null];
    expect(code).not.toBe(0);
    expect(err).toMatch(/PORT/);
  });
});
