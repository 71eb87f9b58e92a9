/**
 * The official SDK through pollcast: eight clients that follow the SDK's
 * `waitForSession` helper step by step (test/helpers/sdk-client.ts) watch one
 * live session through pollcast's `/api/v2` drop-ins, as an SDK whose
 * `baseUrl` points at pollcast would; the upstream sees one loop.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { range, startBridge, type Bridge } from '../helpers/harness.ts';
import { waitForSession } from '../helpers/sdk-client.ts';
import { ONE_ADDRESS_ENV } from '../resilience/helpers.ts';
import { JWT_SECRET, token } from '../security/helpers.ts';

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

describe('eight SDK clients through pollcast on one live session', () => {
  it('each gets every event in order and the answer; the upstream sees one changes call in flight and a handful of status calls', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, UPSTREAM_WAIT_SECONDS: '2', AUTH: '', AUTH_JWT_SECRET: JWT_SECRET }, { api: 'real' });
    const b = bridge;
    const id = 'sdk-live';
    // A live session: a step every 150 ms for about 3 s, then completed with its closing events.
    b.sim.createSession(id, { initialEvents: 3, emitEveryMs: 150, batchSize: 2, emitCount: 40 });
    const jwt = await token([id]);
    // The SDK's baseUrl is pollcast; it calls {baseUrl}/api/v2/sessions/{id}/... with the JWT as its bearer token.
    const results = await Promise.all(range(8).map(() => waitForSession(`${b.url}/api/v2`, id, { apiKey: jwt, waitSeconds: 5, timeoutMs: 30_000 })));
    const upstream = b.sim.events(id);
    const snapshot = await (await fetch(`${b.sim.url}/sessions/${id}/changes?from_index=0&include_events=false&wait_for_seconds=0`)).json() as { answer: unknown; status: string };
    expect(snapshot.status).toBe('completed');
    for (const r of results) {
      expect(r.status).toBe('completed');
      expect(r.answer).toEqual(snapshot.answer);
      expect(r.events.map((e) => e.timestamp)).toEqual(upstream.map((e) => e.timestamp));
      expect(r.events.map((e) => e.type)).toEqual(upstream.map((e) => e.type));
    }
    const s = b.sim.stats(id);
    expect(s.maxInFlightChanges).toBe(1);
    // The clients made dozens of status calls each; the upstream answered a handful for all of them.
    const clientStatusCalls = results.reduce((n, r) => n + r.calls.status, 0);
    expect(clientStatusCalls).toBeGreaterThan(8 * 5);
    expect(s.status).toBeLessThanOrEqual(10);
    console.log(`[sdk] 8 clients: ${results.reduce((n, r) => n + r.calls.changes, 0)} changes + ${clientStatusCalls} status calls to pollcast; upstream: ${s.changes} changes + ${s.status} status, max ${s.maxInFlightChanges} changes call in flight`);
  });

  it('the SDK without a token is refused with 401, and with a token for another session with 403', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, AUTH: '', AUTH_JWT_SECRET: JWT_SECRET }, { api: 'real' });
    bridge.sim.createSession('sdk-2', { initialEvents: 1 });
    expect((await fetch(`${bridge.url}/api/v2/sessions/sdk-2/status`)).status).toBe(401);
    const other = await token(['someone-else']);
    expect((await fetch(`${bridge.url}/api/v2/sessions/sdk-2/changes`, { headers: { authorization: `Bearer ${other}` } })).status).toBe(403);
  });
});
