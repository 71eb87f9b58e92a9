/**
 * Drop-in `changes` and `status` (CONTRACT.md section 3: "same … status codes
 * and bodies as the upstream's") for a session the upstream stops knowing, or
 * a key it stops accepting, while the shared loop still runs (it keeps
 * retrying for UPSTREAM_GIVE_UP_SECONDS and its streams show upstream_error).
 * Before, the drop-ins answered 200 "running" from the loop's last status
 * for as long as the loop ran: an SDK polling to completion never stopped.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, range, record, startBridge, type Bridge, type Recorder } from '../helpers/harness.ts';

let bridge: Bridge | undefined;
let es: Recorder | undefined;
afterEach(async () => {
  es?.close();
  es = undefined;
  await bridge?.close();
  bridge = undefined;
});

const KEY = 'sk-dropin-gone-Tq8Wm3Zr6Lp1';

/** A bridge on the real dialect whose loop for `id` runs (an SSE subscriber holds it) and has read its 3 events. */
async function running(id: string, env: Record<string, string> = {}): Promise<Bridge> {
  const b = await startBridge({ UPSTREAM_WAIT_SECONDS: '2', UPSTREAM_API_KEY: KEY, ...env }, { api: 'real', apiKeys: { [KEY]: 'org' } });
  bridge = b;
  b.sim.createSession(id, { organisation: 'org', initialEvents: 3 });
  es = record(`${b.url}/sessions/${id}/events`);
  await eventually(() => es!.indices().length === 3, 10_000, 'the three events');
  return b;
}

describe('drop-in changes and status once the upstream stops knowing a session the loop runs', () => {
  it('answer 404 as the upstream does, and a waiting long-poll is woken with it', async () => {
    const b = await running('gone-1');
    const status = await fetch(`${b.url}/api/v2/sessions/gone-1/status`);
    expect(status.status, 'the control: running before the deletion').toBe(200);
    expect((await status.json()).status).toBe('running');
    const waiting = fetch(`${b.url}/api/v2/sessions/gone-1/changes?from_index=3&wait_for_seconds=30`);
    await eventually(() => b.sim.stats('gone-1').inFlightChanges === 1, 5000, 'the loop to long-poll');
    const startedMs = Date.now();
    b.sim.deleteSession('gone-1');
    const woken = await waiting;
    expect(woken.status).toBe(404);
    expect(Date.now() - startedMs, 'woken by the loop hearing the 404, not by the end of the wait').toBeLessThan(15_000);
    expect((await woken.json()).code).toBe('session_not_found');
    for (const path of ['/api/v2/sessions/gone-1/status', '/api/v2/sessions/gone-1/changes?from_index=0', '/sessions/gone-1/changes?from_index=3&wait_for_seconds=0', '/v1/stream/sessions/gone-1']) {
      const res = await fetch(`${b.url}${path}`);
      expect(res.status, path).toBe(404);
      await res.body?.cancel();
    }
    // The loop still runs and still shows the refusal to its stream (it ends after UPSTREAM_GIVE_UP_SECONDS).
    expect(b.server.hub.activeCount).toBe(1);
    expect(es!.statuses().at(-1)!.upstream_error).toBe('session not found upstream (404)');
    expect(es!.indices()).toEqual(range(3));
  }, 40_000);

  it('answer 502 while the upstream refuses the operator\'s key, and 200 again once it is accepted', async () => {
    const b = await running('key-1');
    b.sim.faults.script(Array.from({ length: 3 }, () => ({ kind: 'http' as const, status: 401 })), { session: 'key-1', endpoint: 'changes' });
    b.sim.appendEvents('key-1', 1);
    await eventually(() => es!.statuses().some((s) => s.upstream_error === 'upstream rejected the credential (401)'), 15_000, 'the loop to hear the 401');
    const refused = await fetch(`${b.url}/api/v2/sessions/key-1/changes?from_index=0`);
    expect(refused.status).toBe(502);
    expect((await refused.json()).code).toBe('upstream_auth');
    // The script runs out; the loop's next answer clears upstream_error (a status event without it follows).
    const refusedAt = es!.statuses().findIndex((s) => s.upstream_error !== undefined);
    await eventually(() => es!.statuses().slice(refusedAt).some((s) => s.upstream_error === undefined), 30_000, 'the loop to recover');
    const status = await fetch(`${b.url}/api/v2/sessions/key-1/status`);
    expect(status.status).toBe(200);
    const changes = await fetch(`${b.url}/api/v2/sessions/key-1/changes?from_index=0`);
    expect(changes.status).toBe(200);
    expect((await changes.json()).new_events).toHaveLength(4);
  }, 60_000);
});
