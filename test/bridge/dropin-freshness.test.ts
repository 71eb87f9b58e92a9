/**
 * Drop-in `changes` answers as fresh as the upstream's (helper audit, 6 Dec 2026): a session that ends with no
 * event while the loop's long-poll is held (the real API's long-poll does not answer a change of status) is not
 * described as running for the rest of that long-poll; and the `/status` those callers cause to be asked never
 * cuts short the loop's backoff through an outage (a review found it did).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { record, startBridge, type Bridge } from '../helpers/harness.ts';

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

/** A bridge on the real dialect with the Agent API's own long-poll (25 s), the drop-ins under /api/v2. */
async function startReal(): Promise<Bridge> {
  bridge = await startBridge({ UPSTREAM_WAIT_SECONDS: '25' }, { api: 'real' });
  return bridge;
}

const get = (url: string) => fetch(url, { signal: AbortSignal.timeout(30_000) });

describe('drop-in changes, fresh', () => {
  it('a session that ended with no event while the loop long-polls is answered as over, as the upstream answers it, not as running', async () => {
    const b = await startReal();
    b.sim.createSession('df-end', { initialEvents: 4, imageBytes: 0 });
    const api = `${b.url}/api/v2/sessions/df-end`;
    expect((await get(`${api}/changes?from_index=0`)).status).toBe(200);
    // The loop is now holding its 25 s long-poll; its /status answer ages past the 2 s it is trusted for.
    await new Promise((r) => setTimeout(r, 2500));
    b.sim.finish('df-end', { status: 'completed', answer: 'all done' });
    const upstream = (await (await get(`${b.sim.url}/sessions/df-end/changes?from_index=1`)).json()) as Record<string, unknown>;
    expect(upstream.status).toBe('completed');
    const via = await get(`${api}/changes?from_index=1`);
    expect(via.status).toBe(200);
    const body = (await via.json()) as Record<string, unknown>;
    for (const field of ['status', 'finished_at', 'answer', 'new_events']) expect(body[field], field).toEqual(upstream[field]);
    // At the end: "nothing new" at once, however long the caller would wait (the upstream's 204 after the end).
    const t0 = performance.now();
    expect((await get(`${api}/changes?from_index=4&wait_for_seconds=25`)).status).toBe(204);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect((await get(`${b.sim.url}/sessions/df-end/changes?from_index=4&wait_for_seconds=25`)).status).toBe(204);
  }, 40_000);

  it('callers polling /status and /changes during an outage of changes calls do not cut the loop\'s backoff short, nor hide its trouble', async () => {
    bridge = await startBridge({ UPSTREAM_WAIT_SECONDS: '1' }, { api: 'real' });
    const b = bridge;
    b.sim.createSession('df-outage', { initialEvents: 2, imageBytes: 0 });
    const api = `${b.url}/api/v2/sessions/df-outage`;
    expect((await get(`${api}/changes?from_index=0`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    b.sim.faults.script(Array.from({ length: 5000 }, () => ({ kind: 'http' as const, status: 500 })), { session: 'df-outage', endpoint: 'changes' });
    const before = b.sim.stats('df-outage').changes;
    // 12 s of a poller asking /status every 500 ms, and /changes with a wait now and then.
    const until = performance.now() + 12_000;
    while (performance.now() < until) {
      await (await get(`${api}/status`)).text();
      void get(`${api}/changes?from_index=2&wait_for_seconds=1`).then((r) => r.text(), () => undefined);
      await new Promise((r) => setTimeout(r, 500));
    }
    // Backoff doubling from 500 ms: about 5 calls in 12 s (a poller resetting it, as a review found, made ~16).
    expect(b.sim.stats('df-outage').changes - before).toBeLessThanOrEqual(8);
    const r = record(`${b.url}/sessions/df-outage/events?from_index=2`);
    try {
      await r.until((x) => x.statuses().length > 0, 5000);
      expect(r.statuses()[0]!.upstream_error).toMatch(/500/);
    } finally {
      r.close();
    }
  }, 40_000);
});
