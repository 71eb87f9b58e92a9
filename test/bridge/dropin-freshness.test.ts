/**
 * Drop-in `changes` answers as fresh as the upstream's (helper audit, 6 Dec 2026): a session that ends with no
 * event while the loop's long-poll is held (the real API's long-poll does not answer a change of status) is not
 * described as running for the rest of that long-poll; and the `/status` those callers cause to be asked never
 * cuts short the loop's backoff through an outage (a review found it did). Nor is "nothing new" answered while the
 * loop's calls fail after it had caught up: the upstream may hold events it cannot read (audit, 6 Dec 2026).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, range, record, startBridge, type Bridge } from '../helpers/harness.ts';
import { UNSETTLED_WAIT_MS } from '../../src/http/dropin-routes.ts';

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

/**
 * A bridge on the real dialect with the Agent API's own long-poll (25 s), the drop-ins under /api/v2; a held /status
 * trusted 2 s (STATUS_FRESH_SECONDS, 10 by default) to keep these tests short.
 */
async function startReal(): Promise<Bridge> {
  bridge = await startBridge({ UPSTREAM_WAIT_SECONDS: '25', STATUS_FRESH_SECONDS: '2' }, { api: 'real' });
  return bridge;
}

const get = (url: string) => fetch(url, { signal: AbortSignal.timeout(30_000) });

describe('drop-in changes, fresh', () => {
  it('a session that ended with no event while the loop long-polls is answered as over, as the upstream answers it, not as running', async () => {
    const b = await startReal();
    b.sim.createSession('df-end', { initialEvents: 4, imageBytes: 0 });
    const api = `${b.url}/api/v2/sessions/df-end`;
    expect((await get(`${api}/changes?from_index=0`)).status).toBe(200);
    // The loop is now holding its 25 s long-poll; its /status answer ages past the 2 s it is trusted for here.
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

  it('while the loop\'s changes calls fail after it had caught up, "nothing new" is not answered: 503 with Retry-After, then the events once it reads again', async () => {
    bridge = await startBridge({ UPSTREAM_WAIT_SECONDS: '1' }, { api: 'real' });
    const b = bridge;
    b.sim.createSession('df-failing', { initialEvents: 2, imageBytes: 0 });
    const api = `${b.url}/api/v2/sessions/df-failing`;
    expect((await get(`${api}/changes?from_index=0`)).status).toBe(200);
    // Caught up: the loop's 1 s long-polls come back empty, and "nothing new" is the truth.
    await eventually(() => b.sim.stats('df-failing').changesByWait.waiting >= 2, 10_000, 'the loop long-polling');
    expect((await get(`${api}/changes?from_index=2`)).status).toBe(204);
    b.sim.faults.script(Array.from({ length: 5000 }, () => ({ kind: 'http' as const, status: 500 })), { session: 'df-failing', endpoint: 'changes' });
    await eventually(() => b.sim.stats('df-failing').faultsServed >= 1, 10_000, 'a failed changes call');
    // Events the loop cannot read: the upstream has them.
    b.sim.appendEvents('df-failing', 3);
    // (The simulator counts the 500 as it sends it: pollcast hears it a moment later.)
    await eventually(async () => (await get(`${api}/changes?from_index=2`)).status === 503, 5000, 'the failing loop told');
    for (const wait of [0, 1]) {
      const r = await get(`${api}/changes?from_index=2&wait_for_seconds=${wait}`);
      expect(r.status, `wait ${wait}`).toBe(503);
      // When the loop asks again (its backoff, doubling from 500 ms and capped), at least 2 s.
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(2);
      expect(Number(r.headers.get('retry-after'))).toBeLessThanOrEqual(30);
      expect(((await r.json()) as { error: string }).error).toMatch(/failing/);
    }
    b.sim.faults.clear();
    await eventually(async () => (await get(`${api}/changes?from_index=2`)).status === 200, 15_000, 'the events once the loop reads again');
    const page = (await (await get(`${api}/changes?from_index=2`)).json()) as { new_events: unknown[] };
    expect(page.new_events).toHaveLength(3);
  }, 40_000);

  it("while the loop keeps to an upstream 429's Retry-After, a drop-in changes caller told 503 is told to come back when the loop asks again, not in 2 s", async () => {
    // SDK audit, 7 Dec 2026: the loop told `429 Retry-After: 7` waited 7 s while its callers were told `Retry-After: 2`.
    bridge = await startBridge({ UPSTREAM_WAIT_SECONDS: '1' }, { api: 'real' });
    const b = bridge;
    b.sim.createSession('df-429', { initialEvents: 2, imageBytes: 0 });
    const api = `${b.url}/api/v2/sessions/df-429`;
    expect((await get(`${api}/changes?from_index=0`)).status).toBe(200);
    await eventually(() => b.sim.stats('df-429').changesByWait.waiting >= 2, 10_000, 'the loop long-polling');
    b.sim.faults.script([{ kind: 'rate-limit', retryAfterSeconds: 20 }], { session: 'df-429', endpoint: 'changes' });
    await eventually(() => b.sim.stats('df-429').faultsServed >= 1, 10_000, 'the 429');
    const told = performance.now();
    await eventually(async () => (await get(`${api}/changes?from_index=2`)).status === 503, 5000, 'the held-off loop told');
    const r = await get(`${api}/changes?from_index=2&wait_for_seconds=1`);
    expect(r.status).toBe(503);
    const waitS = Number(r.headers.get('retry-after'));
    // 20 s from the 429, less what has passed since (a few seconds at most).
    expect(waitS).toBeGreaterThanOrEqual(20 - Math.ceil((performance.now() - told) / 1000) - 1);
    expect(waitS).toBeLessThanOrEqual(20);
    await r.arrayBuffer();
  }, 40_000);

  it('a wait_for_seconds=0 call whose loop drains an end under a 429 (on its first changes call) is answered at once: 503 with the Retry-After, not at the 10 s bound', async () => {
    // SDK audit, 7 Dec 2026: the SDK's final `include_events=false&wait_for_seconds=0` call on a finished session was
    // held 10 s, then 503, where the API answered its 429 in a millisecond.
    bridge = await startBridge({}, { api: 'real' });
    const b = bridge;
    b.sim.createSession('df-zero', { initialEvents: 3, imageBytes: 0, finished: true });
    b.sim.faults.script([{ kind: 'rate-limit', retryAfterSeconds: 8 }, { kind: 'rate-limit', retryAfterSeconds: 8 }], { session: 'df-zero', endpoint: 'changes' });
    const started = performance.now();
    const r = await get(`${b.url}/api/v2/sessions/df-zero/changes?from_index=0&include_events=false&wait_for_seconds=0`);
    const tookMs = performance.now() - started;
    expect(r.status).toBe(503);
    expect(((await r.json()) as { error: string }).error).toMatch(/cannot tell yet/);
    expect(tookMs).toBeLessThan(UNSETTLED_WAIT_MS / 2);
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(6);
    expect(Number(r.headers.get('retry-after'))).toBeLessThanOrEqual(8);
  }, 30_000);

  it('forty status pollers of an idle session (20 /status and 20 SDK-style /changes + /status waiters) cost the upstream at most one /status call per STATUS_FRESH_SECONDS, not one per poller', async () => {
    // Defaults (25 s long-poll, 10 s freshness), as a deployment runs them. Audit, 7 Dec 2026: with 2 s, ten SDK
    // waiters on an idle session cost 31 /status calls in 55 s against 20 when each called the API itself.
    bridge = await startBridge({}, { api: 'real' });
    const b = bridge;
    b.sim.createSession('df-pollers', { initialEvents: 2, imageBytes: 0 });
    const api = `${b.url}/api/v2/sessions/df-pollers`;
    expect((await get(`${api}/changes?from_index=0`)).status).toBe(200);
    await eventually(() => b.sim.stats('df-pollers').inFlightChanges === 1, 10_000, 'the loop to long-poll');
    const before = b.sim.stats('df-pollers').status;
    const windowMs = 21_000;
    const until = performance.now() + windowMs;
    let answered = 0;
    const statusPoller = async (offsetMs: number) => {
      await new Promise((r) => setTimeout(r, offsetMs));
      while (performance.now() < until) {
        const r = await get(`${api}/status`);
        expect(r.status).toBe(200);
        await r.text();
        answered++;
        await new Promise((r) => setTimeout(r, 1000));
      }
    };
    // The SDK's waitForCompletion: a long-poll of changes (3 s here), then /status, again and again.
    const waiter = async (offsetMs: number) => {
      await new Promise((r) => setTimeout(r, offsetMs));
      while (performance.now() < until) {
        expect((await get(`${api}/changes?from_index=2&wait_for_seconds=3`)).status).toBe(204);
        const r = await get(`${api}/status`);
        expect(r.status).toBe(200);
        await r.text();
        answered += 2;
      }
    };
    await Promise.all([...range(20).map((i) => statusPoller(i * 50)), ...range(20).map((i) => waiter(i * 150))]);
    const upstream = b.sim.stats('df-pollers').status - before;
    expect(answered).toBeGreaterThan(400);
    // One refresh per 10 s at most (the first when the held answer is older than 10 s), and the loop's own /status
    // after its long-poll comes back (once in 21 s at most, 25 s apart): 4 calls at most, where 2 s allowed 11.
    expect(upstream, 'upstream /status calls in 21 s').toBeLessThanOrEqual(4);
  }, 40_000);

  it('a /status call that hangs costs only the callers that came before it was 1 s old their wait: later ones get the status held at once', async () => {
    const b = await startReal();
    b.sim.createSession('df-hung', { initialEvents: 3, imageBytes: 0 });
    const api = `${b.url}/api/v2/sessions/df-hung`;
    expect((await get(`${api}/changes?from_index=0`)).status).toBe(200);
    // The held /status ages past the 2 s it is trusted for here while the loop holds its long-poll; the next one hangs.
    await new Promise((r) => setTimeout(r, 2500));
    b.sim.faults.script([{ kind: 'hang' }], { session: 'df-hung', endpoint: 'status' });
    const t0 = performance.now();
    expect((await get(`${api}/changes?from_index=3`)).status).toBe(204);
    expect(performance.now() - t0, 'the first caller waits for the refresh (up to 1 s)').toBeGreaterThanOrEqual(900);
    expect(b.sim.faults.pending()).toBe(0);
    // Three more /changes callers and a /status caller: each waited 1 s (5 s for /status) on the hung call before.
    const t1 = performance.now();
    for (let i = 0; i < 3; i++) expect((await get(`${api}/changes?from_index=3`)).status).toBe(204);
    expect(performance.now() - t1, 'three /changes calls').toBeLessThan(2000);
    const t2 = performance.now();
    const st = await get(`${api}/status`);
    expect(st.status).toBe(200);
    expect(((await st.json()) as { status: string }).status).toBe('running');
    expect(performance.now() - t2, 'a /status call').toBeLessThan(2500);
  }, 40_000);

  it('one transient failure of a caught-up loop on the default 25 s long-poll: "nothing new" again within seconds, not after the next long-poll', async () => {
    const b = await startReal();
    b.sim.createSession('df-blip', { initialEvents: 2, imageBytes: 0 });
    const api = `${b.url}/api/v2/sessions/df-blip`;
    // A subscriber keeps the loop running; it reads up to date and holds its 25 s long-poll.
    const sub = record(`${b.url}/sessions/df-blip/events`);
    try {
      await sub.until((x) => x.indices().length === 2, 10_000);
      await eventually(() => b.sim.stats('df-blip').inFlightChanges === 1 && b.sim.stats('df-blip').changesByWait.waiting >= 1, 10_000, 'the loop long-polling');
      // One 500: the held long-poll answers the new event, the loop's next call fails once, then it long-polls again.
      b.sim.faults.script([{ kind: 'http', status: 500 }], { session: 'df-blip', endpoint: 'changes' });
      b.sim.appendEvents('df-blip', 1);
      await eventually(() => b.sim.stats('df-blip').faultsServed === 1, 10_000, 'the 500');
      const failedAt = performance.now();
      // Held past a second, the new long-poll shows the upstream answering: before, "failing" stood until it came back (25 s).
      await eventually(async () => (await get(`${api}/changes?from_index=3`)).status === 204, 8000, '"nothing new" again');
      expect(performance.now() - failedAt).toBeLessThan(8000);
      await sub.until((x) => x.indices().length === 3, 5000);
    } finally {
      sub.close();
    }
  }, 40_000);
});
