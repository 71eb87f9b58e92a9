/**
 * The whole API through one base URL (issue 16): a client written like the SDK
 * talks to pollcast only, with its own key; the simulator (real-API mode, keys
 * scoped to organisations) is the upstream.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { record, type Bridge } from '../helpers/harness.ts';
import { waitForSession } from '../helpers/sdk-client.ts';
import { api, KEY_A, KEY_B, startGateway } from './helpers.ts';

let bridge: Bridge;

beforeEach(async () => {
  // The loop's long-poll holds 25 s: without the nudge a pause would show only after it.
  bridge = await startGateway({ UPSTREAM_WAIT_SECONDS: '25' });
});

afterEach(async () => {
  await bridge.close();
});

describe('an SDK-like client with one base URL on pollcast', () => {
  it('creates (idempotently), sends 1.3 MB, pauses (an SSE watcher sees it), resumes and reads the end and answer', async () => {
    const base = `${bridge.url}/api/v2`;
    const request = { agent: 'web-agent', messages: 'Find the cheapest flight' };
    const first = await api(base, KEY_A, 'POST', '/sessions', request, { 'idempotency-key': 'order-42' });
    expect(first.status).toBe(201);
    const again = await api(base, KEY_A, 'POST', '/sessions', request, { 'idempotency-key': 'order-42' });
    expect(again.status).toBe(201);
    expect(again.body.id).toBe(first.body.id);
    const id = first.body.id as string;
    // Created with the caller's key, not the operator's: the session belongs to the caller's organisation.
    expect(bridge.sim.organisationOf(id)).toBe('org-a');
    expect(bridge.sim.listSessions()).toHaveLength(1);
    // Another organisation's key gets the upstream's own 404 through pollcast.
    expect((await api(base, KEY_B, 'GET', `/sessions/${id}`)).status).toBe(404);

    const watcher = record(`${bridge.url}/sessions/${encodeURIComponent(id)}/events`);
    try {
      await watcher.until((r) => r.statuses().some((s) => s.status === 'running'), 15_000);

      const big = JSON.stringify({ type: 'user_message', message: randomBytes(975_000).toString('base64') });
      expect(Buffer.byteLength(big)).toBeGreaterThan(1_300_000);
      expect((await api(base, KEY_A, 'POST', `/sessions/${id}/messages`, big)).status).toBe(202);
      expect(bridge.sim.received(id)).toEqual([{ route: 'messages', bytes: Buffer.byteLength(big), sha256: createHash('sha256').update(big).digest('hex'), at: expect.any(String) }]);

      expect((await api(base, KEY_A, 'POST', `/sessions/${id}/pause`)).status).toBe(202);
      // Bounded well under the loop's 25 s long-poll: only the nudge brings `paused` this soon.
      await watcher.until((r) => r.statuses().some((s) => s.status === 'paused'), 8_000);
      const status = await api(base, KEY_A, 'GET', `/sessions/${id}/status`);
      expect(status.body.status).toBe('paused');

      expect((await api(base, KEY_A, 'POST', `/sessions/${id}/resume`)).status).toBe(202);
      const result = await waitForSession(base, id, { apiKey: KEY_A, waitSeconds: 5, timeoutMs: 60_000 });
      expect(result.status).toBe('completed');
      expect(result.answer).toEqual(expect.any(String));
      expect(result.answer).toBe((await api(base, KEY_A, 'GET', `/sessions/${id}`)).body.latest_answer);
      expect(result.events.map((e) => e.type)).toEqual(bridge.sim.events(id).map((e) => e.type));

      const end = await watcher.ended(30_000);
      expect(end).toMatchObject({ status: 'completed', answer: result.answer, last_index: bridge.sim.eventCount(id) - 1 });
    } finally {
      watcher.close();
    }
  });

  it('a pause written with escapes (the upstream decodes the path before routing) and a cancel through pollcast nudge the loop too: the watcher gets its end without waiting out the long-poll', async () => {
    const base = `${bridge.url}/api/v2`;
    const { body } = await api(base, KEY_A, 'POST', '/sessions', { agent: 'web-agent' });
    const id = body.id as string;
    const watcher = record(`${bridge.url}/sessions/${encodeURIComponent(id)}/events`);
    try {
      await watcher.until((r) => r.indices().length > 3, 15_000);
      // `sessions%2F<id>/pa%75se` is `sessions/<id>/pause` to the upstream, so it is a pause to pollcast too.
      expect((await api(base, KEY_A, 'POST', `/sessions%2F${id}/pa%75se`)).status).toBe(202);
      expect(bridge.sim.requests().at(-1)?.target).toBe(`/api/v2/sessions%2F${id}/pa%75se`);
      await watcher.until((r) => r.statuses().some((s) => s.status === 'paused'), 8_000);
      expect((await api(base, KEY_A, 'DELETE', `/sessions/${id}`)).status).toBe(204);
      const end = await watcher.ended(8_000);
      expect(end.status).toBe('interrupted');
    } finally {
      watcher.close();
    }
  });
});
