/**
 * The whole flow with callers' own keys and no operator key (AUTH=upstream,
 * no UPSTREAM_API_KEY): a client written like the SDK creates a session
 * through pollcast's pass-through with its key, watches it live by SSE with
 * the same key, steers it, and waits for its end and answer with
 * changes/status; the session's loop runs on that key; another
 * organisation's key sees nothing of it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { record, startBridge, type Bridge } from '../helpers/harness.ts';
import { waitForSession } from '../helpers/sdk-client.ts';
import { api, KEY_A, KEY_B } from '../forward/helpers.ts';
import { ONE_ADDRESS_ENV } from '../resilience/helpers.ts';

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

describe('AUTH=upstream without UPSTREAM_API_KEY, through one base URL', () => {
  it('an SDK-like client creates, watches, pauses, resumes and reads the end with its own key only', async () => {
    bridge = await startBridge(
      { ...ONE_ADDRESS_ENV, AUTH: 'upstream', UPSTREAM_WAIT_SECONDS: '25', AUTH_UPSTREAM_CACHE_SECONDS: '5' },
      { api: 'real', apiKeys: { [KEY_A]: 'org-a', [KEY_B]: 'org-b' }, run: { eventEveryMs: 100, events: 40 }, maxWaitSeconds: 30 },
    );
    const base = `${bridge.url}/api/v2`;
    const created = await api(base, KEY_A, 'POST', '/sessions', { agent: 'web-agent', messages: 'Find the cheapest flight' });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect(bridge.sim.organisationOf(id)).toBe('org-a');

    const watcher = record(`${bridge.url}/sessions/${encodeURIComponent(id)}/events?access_token=${KEY_A}`);
    const outsider = await fetch(`${bridge.url}/sessions/${encodeURIComponent(id)}/events`, { headers: { authorization: `Bearer ${KEY_B}` } });
    expect(outsider.status).toBe(404);
    expect(await outsider.text()).not.toContain('"index"');
    try {
      await watcher.until((r) => r.statuses().some((s) => s.status === 'running'), 15_000);
      expect((await api(base, KEY_A, 'POST', `/sessions/${id}/pause`)).status).toBe(202);
      // The forwarded write nudges the loop, which runs on the caller's key: `paused` well before its 25 s long-poll.
      await watcher.until((r) => r.statuses().some((s) => s.status === 'paused'), 8_000);
      expect((await api(base, KEY_A, 'POST', `/sessions/${id}/resume`)).status).toBe(202);
      const result = await waitForSession(base, id, { apiKey: KEY_A, waitSeconds: 5, timeoutMs: 60_000 });
      expect(result.status).toBe('completed');
      expect(result.answer).toEqual(expect.any(String));
      const end = await watcher.ended(60_000);
      expect(end.answer).toBe(result.answer);
      expect(watcher.indices()).toEqual(bridge.sim.events(id).map((_, i) => i));
    } finally {
      watcher.close();
    }
    // Every call the simulator got for the session carried a caller's key (there was no other): the loop's
    // changes calls KEY_A's, and KEY_B's only its one refused check.
    const calls = bridge.sim.requests().filter((r) => r.target.includes(`/sessions/${id}`));
    expect(calls.filter((r) => r.target.includes('/changes')).length).toBeGreaterThan(0);
    for (const r of calls) expect([[`Bearer ${KEY_A}`], [`Bearer ${KEY_B}`]]).toContainEqual(r.headers.authorization);
    for (const r of calls.filter((c) => c.target.includes('/changes'))) expect(r.headers.authorization).toEqual([`Bearer ${KEY_A}`]);
    expect(calls.filter((r) => r.headers.authorization?.[0] === `Bearer ${KEY_B}`).map((r) => r.target)).toEqual([`/api/v2/sessions/${id}/status`]);
  }, 120_000);
});

describe('AUTH=upstream: a key in access_token on a forwarded route', () => {
  it('moves to the header the upstream reads keys from, never left in the forwarded URL', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, AUTH: 'upstream' }, { api: 'real', apiKeys: { [KEY_A]: 'org-a', [KEY_B]: 'org-b' } });
    const created = await api(`${bridge.url}/api/v2`, KEY_A, 'POST', '/sessions', { agent: 'web-agent', messages: 'listed' });
    expect(created.status).toBe(201);
    bridge.sim.clearRequests();
    const res = await fetch(`${bridge.url}/api/v2/sessions?size=5&access_token=${KEY_A}`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { items: Array<{ id: string }> }).items.map((s) => s.id)).toContain(created.body.id);
    // A key in the header wins: the one in the query is dropped, not sent in the URL either.
    const both = await fetch(`${bridge.url}/api/v2/sessions?access_token=${KEY_A}`, { headers: { authorization: `Bearer ${KEY_B}` } });
    expect(both.status).toBe(200);
    expect(((await both.json()) as { items: Array<{ id: string }> }).items.map((s) => s.id)).not.toContain(created.body.id);
    // A malformed key is refused as on pollcast's own routes (401), never put into a header.
    const malformed = await fetch(`${bridge.url}/api/v2/sessions?access_token=${encodeURIComponent('bad key\r\nx: y')}`);
    expect(malformed.status).toBe(401);
    const seen = bridge.sim.requests().filter((r) => r.target.startsWith('/api/v2/sessions'));
    expect(seen.map((r) => [r.target, r.headers.authorization])).toEqual([
      ['/api/v2/sessions?size=5', [`Bearer ${KEY_A}`]],
      ['/api/v2/sessions', [`Bearer ${KEY_B}`]],
    ]);
  });

  it('with UPSTREAM_AUTH_HEADER, goes there raw, unless the caller sent a key header of its own (an empty one does not count)', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, AUTH: 'upstream', UPSTREAM_AUTH_HEADER: 'X-API-Key' }, { api: 'real', authHeader: 'x-api-key', apiKeys: { [KEY_A]: 'org-a', [KEY_B]: 'org-b' } });
    bridge.sim.clearRequests();
    expect((await fetch(`${bridge.url}/api/v2/sessions?access_token=${KEY_A}`)).status).toBe(200);
    await fetch(`${bridge.url}/api/v2/sessions?access_token=${KEY_A}`, { headers: { authorization: `Bearer ${KEY_B}` } });
    await fetch(`${bridge.url}/api/v2/sessions?access_token=${KEY_A}`, { headers: { 'x-api-key': '' } });
    const seen = bridge.sim.requests().filter((r) => r.target.startsWith('/api/v2/sessions'));
    expect(seen.map((r) => [r.target, r.headers['x-api-key'], r.headers.authorization])).toEqual([
      ['/api/v2/sessions', [KEY_A], undefined],
      ['/api/v2/sessions', undefined, [`Bearer ${KEY_B}`]],
      ['/api/v2/sessions', [KEY_A], undefined],
    ]);
  });
});
