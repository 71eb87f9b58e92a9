import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { get, within } from './helpers.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = 'src/simulator/cli.ts';
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  firstLine: Promise<string>;
  exited: Promise<number | null>;
}

function run(args: string[]): Running {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  let resolveLine: (line: string) => void = () => {};
  const firstLine = new Promise<string>((resolve) => (resolveLine = resolve));
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    const newline = out.indexOf('\n');
    if (newline >= 0) resolveLine(out.slice(0, newline));
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  // 'close', not 'exit': the output is read once it resolves, and at 'exit' it may still be in the pipes.
  const exited = once(child, 'close').then(([code]) => code as number | null);
  return { child, stdout: () => out, stderr: () => err, firstLine, exited };
}

describe('close()', () => {
  it('leaves no open handles: a process with held requests, hangs, slow bodies and demo timers exits by itself', async () => {
    const proc = run(['test/simulator/fixtures/close-exits.ts']);
    const code = await within(proc.exited, 15_000, `fixture exit; stderr: ${proc.stderr()}`);
    expect(proc.stderr()).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(proc.stdout())).toEqual({ closed: true, rejected: 3 });
  });
});

describe('cli', () => {
  it('prints one JSON line once listening, serves, and exits cleanly on SIGTERM', async () => {
    const proc = run([CLI, '--port', '0', '--demo', '--seed', '3', '--api-key', 'k', '--max-wait', '0.5', '--max-limit', '10']);
    const line = await within(proc.firstLine, 10_000, 'cli listening line');
    const { simulator, api } = JSON.parse(line) as { simulator: string; api: string };
    expect(simulator).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(api).toBe('simple');

    const auth = { headers: { authorization: 'Bearer k' } };
    expect((await get(`${simulator}/sessions`)).status).toBe(401);
    const list = (await (await get(`${simulator}/sessions`, auth)).json()) as { sessions: Array<{ id: string }> };
    expect(list.sessions.map((s) => s.id)).toEqual(['demo-1', 'demo-2', 'demo-3']);
    await get(`${simulator}/_sim/sessions`, { method: 'POST', body: JSON.stringify({ id: 'x', initialEvents: 30 }) });
    const page = (await (await get(`${simulator}/sessions/x/changes?limit=50`, auth)).json()) as { new_events: unknown[] };
    expect(page.new_events).toHaveLength(10);
    const started = performance.now();
    expect((await get(`${simulator}/sessions/x/changes?from_index=30&wait_for_seconds=25`, auth)).status).toBe(204);
    expect(performance.now() - started).toBeLessThan(3_000);

    proc.child.kill('SIGTERM');
    expect(await within(proc.exited, 8_000, 'cli exit after SIGTERM')).toBe(0);
    expect(proc.stdout().trim().split('\n')).toHaveLength(1);
  });

  it('--api real serves the Agent API under /api/v2 and prints that base URL', async () => {
    const proc = run([CLI, '--api', 'real', '--port', '0', '--demo', '--max-wait', '0.5']);
    const line = await within(proc.firstLine, 10_000, 'cli listening line');
    expect(JSON.parse(line)).toEqual({ simulator: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/api\/v2$/), api: 'real' });
    const { simulator } = JSON.parse(line) as { simulator: string };
    const origin = simulator.slice(0, -'/api/v2'.length);

    // The real dialect's list is the API's page of summaries.
    const list = (await (await get(`${simulator}/sessions?sort=created_at`)).json()) as { items: Array<{ id: string }> };
    expect(list.items.map((s) => s.id)).toEqual(['demo-1', 'demo-2', 'demo-3']);
    expect((await get(`${origin}/sessions`)).status).toBe(404);
    const status = (await (await get(`${simulator}/sessions/demo-1/status`)).json()) as Record<string, unknown>;
    expect(Object.keys(status).sort()).toEqual(['error', 'status', 'steps', 'subagent_session_ids', 'usage_per_model']);
    expect((await get(`${simulator}/_sim/stats`)).status).toBe(200);
    expect((await get(`${origin}/_sim/stats`)).status).toBe(200);

    proc.child.kill('SIGTERM');
    expect(await within(proc.exited, 8_000, 'cli exit after SIGTERM')).toBe(0);
  });

  it('--api-keys scopes keys to organisations', async () => {
    const proc = run([CLI, '--api', 'real', '--port', '0', '--api-keys', 'ka=org-a,kb=org-b']);
    const { simulator } = JSON.parse(await within(proc.firstLine, 10_000, 'cli listening line')) as { simulator: string };
    const as = (key: string) => ({ headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } });
    const created = (await (await get(`${simulator}/sessions`, { method: 'POST', body: JSON.stringify({ agent: 'a' }), ...as('ka') })).json()) as { id: string };
    expect((await get(`${simulator}/sessions/${created.id}/status`, as('ka'))).status).toBe(200);
    expect((await get(`${simulator}/sessions/${created.id}/status`, as('kb'))).status).toBe(404);
    expect((await get(`${simulator}/sessions`, as('nope'))).status).toBe(401);
    proc.child.kill('SIGTERM');
    expect(await within(proc.exited, 8_000, 'cli exit after SIGTERM')).toBe(0);
    const bad = run([CLI, '--api-keys', 'no-organisation']);
    expect(await within(bad.exited, 10_000, 'bad flag exit')).toBe(2);
  });

  it('prints help', async () => {
    const proc = run([CLI, '--help']);
    expect(await within(proc.exited, 10_000, 'help exit')).toBe(0);
    for (const flag of ['--api', '--port', '--host', '--demo', '--seed', '--api-key', '--api-keys', '--auth-header', '--max-wait', '--max-limit']) {
      expect(proc.stdout()).toContain(flag);
    }
  });

  it.each([
    [['--port', 'abc'], '--port'],
    [['--max-limit', '-1'], '--max-limit'],
    [['--bogus'], 'bogus'],
    [['--api', 'soap'], '--api'],
  ])('refuses %j naming the flag', async (args, name) => {
    const proc = run([CLI, ...args]);
    expect(await within(proc.exited, 10_000, 'bad flag exit')).toBe(2);
    expect(proc.stderr()).toContain(name);
    expect(proc.stdout()).toBe('');
  });
});
