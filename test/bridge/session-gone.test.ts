/**
 * A session the upstream stops knowing, or a key it stops accepting, while
 * the shared loop still runs (it keeps retrying for UPSTREAM_GIVE_UP_SECONDS
 * and its open streams show upstream_error). Drop-in `changes` and `status`
 * (CONTRACT.md section 3: "same … status codes and bodies as the
 * upstream's") answered 200 "running" from the loop's last status for as
 * long as it ran, so an SDK polling to completion never stopped; and a new
 * stream open got a 200 stream showing the refusal, not the 404 that section
 * 3 gives a session that does not exist.
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

describe('new readers of a session whose running loop hears a refusal', () => {
  it('drop-in changes and status answer 404 once the upstream stops knowing the session, and a waiting long-poll is woken with it', async () => {
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

  it('a new stream, multi-session stream or Durable Stream open gets the 404 too, while the open stream goes on showing it', async () => {
    const b = await running('gone-2');
    b.sim.createSession('here', { organisation: 'org', initialEvents: 2, finished: true });
    b.sim.deleteSession('gone-2');
    await eventually(() => es!.statuses().some((s) => s.upstream_error === 'session not found upstream (404)'), 15_000, 'the loop to hear the 404');
    const single = await fetch(`${b.url}/sessions/gone-2/events`);
    expect(single.status).toBe(404);
    expect((await single.json()).code).toBe('session_not_found');
    const durable = await fetch(`${b.url}/v1/stream/sessions/gone-2?offset=-1`);
    expect(durable.status).toBe(404);
    await durable.body?.cancel();
    // With a session that exists beside it, the gone one ends alone on the multi-session stream.
    const multi = await fetch(`${b.url}/events?session=gone-2&session=here`, { signal: AbortSignal.timeout(20_000) });
    expect(multi.status).toBe(200);
    const text = await multi.text();
    expect(text).toContain('"session":"gone-2"');
    const ends = text.split('\n\n').filter((f) => f.includes('event: end'));
    expect(ends.some((f) => f.includes('gone-2') && f.includes('session not found upstream (404)')), ends.join(' | ')).toBe(true);
    const eventFrames = text.split('\n\n').filter((f) => f.includes('data: ') && !f.includes('event: '));
    expect(eventFrames.filter((f) => f.includes('"session":"here"')), 'the two events of the session that exists').toHaveLength(2);
    expect(eventFrames.some((f) => f.includes('"session":"gone-2"')), 'no event of the gone session').toBe(false);
    expect(es!.indices()).toEqual(range(3));
    expect(b.server.hub.activeCount, 'the loop still runs for its open stream').toBeGreaterThanOrEqual(1);
  }, 40_000);

  it('drop-ins and a new stream open answer 502 while the upstream refuses the operator\'s key, and 200 again once it is accepted', async () => {
    const b = await running('key-1');
    b.sim.faults.script(Array.from({ length: 3 }, () => ({ kind: 'http' as const, status: 401 })), { session: 'key-1', endpoint: 'changes' });
    b.sim.appendEvents('key-1', 1);
    await eventually(() => es!.statuses().some((s) => s.upstream_error === 'upstream rejected the credential (401)'), 15_000, 'the loop to hear the 401');
    const refused = await fetch(`${b.url}/api/v2/sessions/key-1/changes?from_index=0`);
    expect(refused.status).toBe(502);
    expect((await refused.json()).code).toBe('upstream_auth');
    const open = await fetch(`${b.url}/sessions/key-1/events`);
    expect(open.status, 'a new stream open while the operator\'s key is refused: 502, as at a first contact').toBe(502);
    await open.body?.cancel();
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
