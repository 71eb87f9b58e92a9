/**
 * A newcomer's first hour: `/readyz` (readiness, apart from `/healthz`
 * liveness) names the sessions API's state and Redis's; an UPSTREAM_URL
 * without the API's path, an upstream down at start, and a missing key are
 * said out loud in the log.
 */
import type { Logger } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { freePort } from '../helpers/harness.ts';
import { captureLog } from '../helpers/log-capture.ts';

let sim: Simulator | undefined;
let server: PollcastServer | undefined;

afterEach(async () => {
  await server?.close();
  await sim?.close();
  server = sim = undefined;
});


async function start(env: Record<string, string>, log: Logger): Promise<PollcastServer> {
  server = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', AUTH: 'none', ...env }), { log, processMetrics: false });
  return server;
}

const readyz = async (url: string) => {
  const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as { status: string; upstream: { state: string }; redis?: { state: string } } };
};

it('ready with a reachable API; /healthz stays a liveness check', async () => {
  sim = await createSimulator({ api: 'real' });
  const { log } = captureLog('info');
  const s = await start({ UPSTREAM_URL: sim.url, UPSTREAM_API_KEY: 'k' }, log);
  expect(await readyz(s.url)).toEqual({ status: 200, body: { status: 'ready', upstream: { state: 'ok' } } });
  expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
});

it("a key the API refuses: not ready, 'key refused'; with no key of pollcast's own, a 401 only proves the API answers", async () => {
  sim = await createSimulator({ api: 'real', apiKey: 'right' });
  const { log } = captureLog('info');
  const wrong = await start({ UPSTREAM_URL: sim.url, UPSTREAM_API_KEY: 'wrong' }, log);
  const r = await readyz(wrong.url);
  expect(r.status).toBe(503);
  expect(r.body.upstream.state).toBe('key refused');
  await wrong.close();
  const keyless = await start({ UPSTREAM_URL: sim.url }, log);
  const k = await readyz(keyless.url);
  expect(k.status).toBe(200);
  expect(k.body.upstream.state).toBe('ok');
});

it('UPSTREAM_URL without /api/v2: not ready, and a warning naming the likely missing path', async () => {
  sim = await createSimulator({ api: 'real' });
  sim.createSession('s1', { initialEvents: 1 });
  const logged = captureLog('info');
  const { log } = logged;
  const s = await start({ UPSTREAM_URL: sim.origin, UPSTREAM_API_KEY: 'k' }, log);
  const r = await readyz(s.url);
  expect(r.status).toBe(503);
  expect(r.body.upstream.state).toBe('route not found');
  expect((await fetch(`${s.url}/sessions/s1/events`, { signal: AbortSignal.timeout(10_000) })).status).toBe(404);
  const warned = logged.lines().filter((l) => l.level === 40 && /api\/v2/.test(l.msg));
  expect(warned.length).toBeGreaterThan(0);
});

it('the API down at start: a warning at start, not ready with its state; and a missing key is warned about', async () => {
  const logged = captureLog('info');
  const { log } = logged;
  const s = await start({ UPSTREAM_URL: `http://127.0.0.1:${await freePort()}/api/v2` }, log);
  expect(logged.lines().some((l) => l.level === 40 && /sessions API unreachable/.test(l.msg))).toBe(true);
  expect(logged.lines().some((l) => l.level === 40 && /UPSTREAM_API_KEY is not/.test(l.msg))).toBe(true);
  const r = await readyz(s.url);
  expect(r.status).toBe(503);
  expect(r.body).toMatchObject({ status: 'not ready', upstream: { state: 'unreachable' } });
  expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
});

it("cluster mode: Redis's state is named (unreachable here) without making the instance unready", async () => {
  sim = await createSimulator({ api: 'real' });
  const { log } = captureLog('info');
  const s = await start({ UPSTREAM_URL: sim.url, UPSTREAM_API_KEY: 'k', REDIS_URL: `redis://127.0.0.1:${await freePort()}` }, log);
  expect(await readyz(s.url)).toEqual({ status: 200, body: { status: 'ready', upstream: { state: 'ok' }, redis: { state: 'unreachable' } } });
});
