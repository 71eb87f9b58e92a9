/**
 * A session the upstream stops knowing, or a key it stops accepting, while
 * the shared loop still runs (it keeps retrying for UPSTREAM_GIVE_UP_SECONDS
 * and its open streams show upstream_error). Drop-in `changes` and `status`
 * (CONTRACT.md section 3: "same … status codes and bodies as the
 * upstream's") answered 200 "running" from the loop's last status for as
 * long as it ran, so an SDK polling to completion never stopped. New stream
 * opens are not refused while the refusal is new (a browser's EventSource
 * gives up for good on a non-200, and one refused call may be a blip the
 * loop outlives): they get a stream showing the refusal. Once it has lasted
 * REFUSAL_SETTLED_MS they are answered as at a first contact (404, 502), not
 * with a 200 stream until the loop gives up (UPSTREAM_GIVE_UP_SECONDS, 300 s).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, range, record, startBridge, type Bridge, type Recorder } from '../helpers/harness.ts';
import { REFUSAL_SETTLED_MS } from '../../src/hub/hub.ts';

let bridge: Bridge | undefined;
let es: Recorder | undefined;
const recorders: Recorder[] = [];
afterEach(async () => {
  es?.close();
  for (const r of recorders.splice(0)) r.close();
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
    for (const path of ['/api/v2/sessions/gone-1/status', '/api/v2/sessions/gone-1/changes?from_index=0', '/sessions/gone-1/changes?from_index=3&wait_for_seconds=0']) {
      const res = await fetch(`${b.url}${path}`);
      expect(res.status, path).toBe(404);
      await res.body?.cancel();
    }
    // A Durable Streams client stops for good on a 404: while the refusal is new, it is told to retry (as a new
    // stream open gets a stream); once settled, the 404 (next test but one).
    const durable = await fetch(`${b.url}/v1/stream/sessions/gone-1`);
    expect(durable.status).toBe(503);
    expect(durable.headers.get('retry-after')).toBe('1');
    await durable.body?.cancel();
    // The loop still runs and still shows the refusal to its stream (it ends after UPSTREAM_GIVE_UP_SECONDS).
    expect(b.server.hub.activeCount).toBe(1);
    expect(es!.statuses().at(-1)!.upstream_error).toBe('session not found upstream (404)');
    expect(es!.indices()).toEqual(range(3));
  }, 40_000);

  it('a new stream or multi-session stream open gets a 200 stream showing the refusal until the loop gives up (an EventSource stops for good on a 404), a Durable Stream read a 503 to retry; after give-up, a first contact\'s 404', async () => {
    const b = await running('gone-2', { UPSTREAM_GIVE_UP_SECONDS: '4' });
    b.sim.createSession('here', { organisation: 'org', initialEvents: 2, finished: true });
    b.sim.deleteSession('gone-2');
    await eventually(() => es!.statuses().some((s) => s.upstream_error === 'session not found upstream (404)'), 15_000, 'the loop to hear the 404');
    const late = record(`${b.url}/sessions/gone-2/events`);
    const durable = await fetch(`${b.url}/v1/stream/sessions/gone-2?offset=-1`);
    expect(durable.status, 'a Durable Stream read of a refusal heard a moment ago: retry').toBe(503);
    await durable.body?.cancel();
    // With a session that exists beside it, the gone one ends alone on the multi-session stream, once the loop gives up.
    const multi = await fetch(`${b.url}/events?session=gone-2&session=here`, { signal: AbortSignal.timeout(20_000) });
    expect(multi.status).toBe(200);
    try {
      const end = await late.ended(20_000);
      expect(end.upstream_error, 'the late stream ends as the open one does, once the loop gives up').toBe('session not found upstream (404)');
      expect(late.indices(), 'the late stream still got the events read before the deletion').toEqual(range(3));
      expect(late.statuses()[0].upstream_error, 'its first status shows the refusal').toBe('session not found upstream (404)');
    } finally {
      late.close();
    }
    const text = await multi.text();
    const ends = text.split('\n\n').filter((f) => f.includes('event: end'));
    expect(ends.some((f) => f.includes('gone-2') && f.includes('session not found upstream (404)')), ends.join(' | ')).toBe(true);
    const eventFrames = text.split('\n\n').filter((f) => f.includes('data: ') && !f.includes('event: '));
    expect(eventFrames.filter((f) => f.includes('"session":"here"')), 'the two events of the session that exists').toHaveLength(2);
    expect(es!.indices()).toEqual(range(3));
    // The loop gave up and ended; the next open is a first contact, which hears the 404 and answers it.
    await eventually(() => b.server.hub.activeCount === 0, 10_000, 'the ended loop to be retired');
    const after = await fetch(`${b.url}/sessions/gone-2/events`);
    expect(after.status).toBe(404);
    expect((await after.json()).code).toBe('session_not_found');
  }, 40_000);

  it('once the refusal has lasted REFUSAL_SETTLED_MS, a new stream open or Durable read is answered as a first contact: 404 for a session gone (single, or a multi-session stream of it alone), its lane ended alone beside a session that exists', async () => {
    const b = await running('gone-3', { UPSTREAM_GIVE_UP_SECONDS: '120' });
    b.sim.createSession('here', { organisation: 'org', initialEvents: 2, finished: true });
    b.sim.deleteSession('gone-3');
    await eventually(() => es!.statuses().some((s) => s.upstream_error === 'session not found upstream (404)'), 15_000, 'the loop to hear the 404');
    const heardMs = Date.now();
    // The control: a fresh refusal still gets a stream.
    const early = await fetch(`${b.url}/sessions/gone-3/events`, { signal: AbortSignal.timeout(20_000) });
    expect(early.status, 'a refusal heard a moment ago: a 200 stream').toBe(200);
    await early.body?.cancel();
    await new Promise((r) => setTimeout(r, Math.max(0, heardMs + REFUSAL_SETTLED_MS + 500 - Date.now())));
    expect(b.server.hub.activeCount, 'the loop still runs (it has not given up)').toBe(1);
    for (const path of ['/sessions/gone-3/events', '/sessions/gone-3/events?last_event_id=1', '/events?session=gone-3', '/v1/stream/sessions/gone-3?offset=-1']) {
      const res = await fetch(`${b.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(res.headers.get('content-type'), path).toMatch(/application\/json/);
      expect((await res.json()).code, path).toBe('session_not_found');
    }
    const multi = await fetch(`${b.url}/events?session=gone-3&session=here`, { signal: AbortSignal.timeout(20_000) });
    expect(multi.status).toBe(200);
    const text = await multi.text();
    const ends = text.split('\n\n').filter((f) => f.includes('event: end'));
    expect(ends.some((f) => f.includes('gone-3') && f.includes('session not found upstream (404)')), ends.join(' | ')).toBe(true);
    expect(text.split('\n\n').filter((f) => f.includes('"session":"gone-3"') && f.includes('"index"')), 'nothing of the gone session').toHaveLength(0);
    // The stream open before the deletion goes on showing the refusal, with what it had.
    expect(es!.indices()).toEqual(range(3));
    expect(es!.messages.some((m) => m.type === 'end'), 'no end before the give-up').toBe(false);
  }, 40_000);

  it('once the operator\'s key has been refused for REFUSAL_SETTLED_MS, a new stream open gets 502 as at a first contact; once it is accepted again, 200', async () => {
    const b = await running('key-2');
    await eventually(() => b.sim.stats('key-2').inFlightChanges === 1, 5000, 'the loop to long-poll');
    b.sim.faults.script(Array.from({ length: 200 }, () => ({ kind: 'http' as const, status: 401 })), { session: 'key-2', endpoint: 'any' });
    b.sim.appendEvents('key-2', 1);
    await eventually(() => es!.statuses().some((s) => s.upstream_error === 'upstream rejected the credential (401)'), 15_000, 'the loop to hear the 401');
    const heardMs = Date.now();
    await new Promise((r) => setTimeout(r, Math.max(0, heardMs + REFUSAL_SETTLED_MS + 500 - Date.now())));
    const refused = await fetch(`${b.url}/sessions/key-2/events`);
    expect(refused.status).toBe(502);
    expect((await refused.json()).code).toBe('upstream_auth');
    b.sim.faults.clear();
    // The fourth event was read before the refusals began (the append answered the long-poll already waiting).
    expect(es!.indices()).toEqual(range(4));
    const refusedAt = es!.statuses().findIndex((st) => st.upstream_error !== undefined);
    await eventually(() => es!.statuses().slice(refusedAt).some((st) => st.upstream_error === undefined), 40_000, 'the loop to recover');
    const open = record(`${b.url}/sessions/key-2/events`);
    recorders.push(open);
    await eventually(() => open.indices().length === 4, 10_000, 'a new stream after the recovery');
  }, 70_000);

  it('one refused call followed by a long-poll the upstream holds is a blip: a new stream open seconds later is a 200 stream, the refusal cleared', async () => {
    const b = await running('blip-1', { UPSTREAM_WAIT_SECONDS: '20' });
    await eventually(() => b.sim.stats('blip-1').inFlightChanges === 1, 5000, 'the loop to long-poll');
    b.sim.faults.script([{ kind: 'http', status: 404 }], { session: 'blip-1', endpoint: 'changes' });
    // Answers the long-poll already waiting; the loop's next call meets the one 404, the one after is held (nothing new).
    b.sim.appendEvents('blip-1', 1);
    await eventually(() => es!.statuses().some((st) => st.upstream_error === 'session not found upstream (404)'), 15_000, 'the loop to hear the 404');
    const refusedAt = es!.statuses().findIndex((st) => st.upstream_error !== undefined);
    await eventually(() => es!.statuses().slice(refusedAt).some((st) => st.upstream_error === undefined), 5_000, 'the refusal cleared once the next long-poll was held');
    await new Promise((r) => setTimeout(r, REFUSAL_SETTLED_MS + 500));
    expect(b.sim.stats('blip-1').inFlightChanges, 'the long-poll is still held (no answer cleared the refusal)').toBe(1);
    const open = record(`${b.url}/sessions/blip-1/events`);
    recorders.push(open);
    await eventually(() => open.indices().length === 4, 10_000, 'a new stream on the session that exists');
    expect(open.statuses()[0].upstream_error).toBeUndefined();
  }, 40_000);

  it('drop-ins answer 502 while the upstream refuses the operator\'s key, and 200 again once it is accepted; a new stream open meanwhile gets a stream showing the refusal', async () => {
    const b = await running('key-1');
    b.sim.faults.script(Array.from({ length: 3 }, () => ({ kind: 'http' as const, status: 401 })), { session: 'key-1', endpoint: 'changes' });
    b.sim.appendEvents('key-1', 1);
    await eventually(() => es!.statuses().some((s) => s.upstream_error === 'upstream rejected the credential (401)'), 15_000, 'the loop to hear the 401');
    const refused = await fetch(`${b.url}/api/v2/sessions/key-1/changes?from_index=0`);
    expect(refused.status).toBe(502);
    expect((await refused.json()).code).toBe('upstream_auth');
    const open = record(`${b.url}/sessions/key-1/events`);
    recorders.push(open);
    await eventually(() => open.statuses().length > 0, 10_000, 'the new stream\'s first status');
    expect(open.statuses()[0].upstream_error, 'a new stream open while the loop hears the refusal: a 200 stream showing it (an EventSource would stop for good on a 502), not refused').toBe('upstream rejected the credential (401)');
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
