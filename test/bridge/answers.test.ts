/** Answers before a stream starts: 400, 404, 502, 503 — as JSON, with nothing invalid sent upstream. */
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { freePort, record, startBridge, type Bridge } from '../helpers/harness.ts';

let bridge: Bridge | undefined;
let lone: PollcastServer | undefined;
afterEach(async () => {
  await bridge?.close();
  await lone?.close();
  bridge = undefined;
  lone = undefined;
});

async function expectJsonError(res: Response, status: number, pattern: RegExp) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  const body = (await res.json()) as { error: string };
  expect(body.error).toMatch(pattern);
}

describe('answers before the stream', () => {
  it('answers 404 JSON for a session the upstream does not know, and EventSource stops', async () => {
    bridge = await startBridge();
    await expectJsonError(await fetch(`${bridge.url}/sessions/nope-1/events`), 404, /not found/);
    const r = record(`${bridge.url}/sessions/nope-1/events`);
    await new Promise<void>((resolve) => r.es.addEventListener('error', () => resolve(), { once: true }));
    // A non-200 answer makes EventSource give up instead of reconnecting.
    expect(r.es.readyState).toBe(r.es.CLOSED);
  });

  it('refuses invalid ids and indices with 400 JSON and sends nothing upstream', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('ok-1', { initialEvents: 1 });
    const before = bridge.sim.totalRequests();
    const bad: Array<[string, Record<string, string>?]> = [
      ['/sessions/-starts-with-dash/events'],
      ['/sessions/has%20space/events'],
      ['/sessions/has%2Fslash/events'],
      [`/sessions/${'x'.repeat(129)}/events`],
      ['/sessions/ok-1/events?from_index=-1'],
      ['/sessions/ok-1/events?from_index=1.5'],
      ['/sessions/ok-1/events?from_index=abc'],
      ['/sessions/ok-1/events?from_index=99999999999999999999'],
      ['/sessions/ok-1/events', { 'Last-Event-ID': 'nope' }],
      ['/sessions/ok-1/events', { 'Last-Event-ID': '-3' }],
      ['/sessions/ok-1/events?include_details=maybe'],
      ['/sessions/ok-1/changes?from_index=x'],
      ['/sessions/ok-1/changes?limit=0'],
      ['/sessions/ok-1/changes?wait_for_seconds=-1'],
      ['/sessions/b%C3%A4d/changes'],
    ];
    for (const [path, headers] of bad) {
      const res = await fetch(`${bridge.url}${path}`, headers ? { headers } : undefined);
      await expectJsonError(res, 400, /session id|must be/);
    }
    expect(bridge.sim.totalRequests()).toBe(before);
  });

  it('answers 502 when the upstream rejects pollcast\'s key, and works with the right key', async () => {
    bridge = await startBridge({}, { apiKey: 'right-key' });
    bridge.sim.createSession('key-1', { initialEvents: 2, finished: true });
    await expectJsonError(await fetch(`${bridge.url}/sessions/key-1/events`), 502, /rejected/);
    await bridge.server.close();
    const keyed = await startPollcast(loadConfig({ ...env(bridge.sim.url), UPSTREAM_API_KEY: 'right-key' }), { log: silentLogger(), processMetrics: false });
    lone = keyed;
    const r = record(`${keyed.url}/sessions/key-1/events`);
    await r.ended();
    expect(r.indices()).toEqual([0, 1]);
  });

  it('sends the key raw in UPSTREAM_AUTH_HEADER when set', async () => {
    bridge = await startBridge({}, { apiKey: 'raw-key', authHeader: 'X-API-Key' });
    bridge.sim.createSession('hdr-1', { initialEvents: 1, finished: true });
    await bridge.server.close();
    lone = await startPollcast(loadConfig({ ...env(bridge.sim.url), UPSTREAM_API_KEY: 'raw-key', UPSTREAM_AUTH_HEADER: 'X-API-Key' }), { log: silentLogger(), processMetrics: false });
    const r = record(`${lone.url}/sessions/hdr-1/events`);
    await r.ended();
    expect(r.indices()).toEqual([0]);
  });

  it('opens a 200 stream whose status carries upstream_error when the upstream is unreachable (the drop-ins answer 503)', async () => {
    const port = await freePort();
    lone = await startPollcast(loadConfig(env(`http://127.0.0.1:${port}`)), { log: silentLogger(), processMetrics: false });
    const r = record(`${lone.url}/sessions/any-1/events`);
    await r.until((x) => x.statuses().length > 0, 5000);
    expect(r.statuses()[0].upstream_error).toMatch(/unavailable/);
    expect(r.es.readyState).toBe(r.es.OPEN);
    r.close();
    const res = await fetch(`${lone.url}/sessions/any-1/changes`);
    await expectJsonError(res, 503, /unavailable/);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('answers unknown routes with 404 JSON and serves /healthz', async () => {
    bridge = await startBridge();
    await expectJsonError(await fetch(`${bridge.url}/nothing/here`), 404, /no route/);
    const health = await fetch(`${bridge.url}/healthz`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as { status: string }).status).toBe('ok');
  });
});

function env(upstream: string): Record<string, string> {
  return { PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: upstream, AUTH: 'none', LOG_LEVEL: 'silent' };
}
