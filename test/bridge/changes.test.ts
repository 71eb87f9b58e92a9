/** The drop-in long-poll endpoint: same shape and codes as the upstream, answered from the shared loop. */
import { afterEach, describe, expect, it } from 'vitest';
import { HISTORY_EMPTY_ATTEMPTS, UNSETTLED_RETRY_AFTER_SECONDS, UNSETTLED_WAIT_MS } from '../../src/http/dropin-routes.ts';
import { eventually, record, startBridge, type Bridge } from '../helpers/harness.ts';

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

interface Changes {
  status: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  answer: unknown;
  metrics: Record<string, unknown>;
  new_events: Array<{ type: string; data: unknown; timestamp: string }>;
}

describe('GET /sessions/{id}/changes', () => {
  it('answers 200 with the upstream shape, numbered from from_index and cut at limit', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('dc-1', { initialEvents: 10 });
    const res = await fetch(`${bridge.url}/sessions/dc-1/changes?from_index=3&limit=4`);
    expect(res.status).toBe(200);
    // True once: no cache between the caller and pollcast may keep a long-poll's answer or a live status.
    expect(res.headers.get('cache-control')).toBe('no-store');
    for (const path of ['/sessions/dc-1/status', '/sessions/dc-1/changes?from_index=x']) expect((await fetch(`${bridge.url}${path}`)).headers.get('cache-control'), path).toBe('no-store');
    const body = (await res.json()) as Changes;
    expect(Object.keys(body).sort()).toEqual(['answer', 'error', 'finished_at', 'metrics', 'new_events', 'started_at', 'status']);
    expect(body.new_events).toEqual(bridge.sim.events('dc-1').slice(3, 7));
  });

  it('answers a page that starts before the buffer as the upstream does: the history read, then the buffer, up to limit', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('dc-page', { initialEvents: 8 });
    // A subscriber from index 5: the loop's buffer starts there, the events before it are upstream's to give again.
    const sub = record(`${bridge.url}/sessions/dc-page/events?from_index=5`);
    try {
      await eventually(() => sub.indices().length === 3, 10_000, 'the subscriber to read 5-7');
      for (const [query, want] of [['from_index=0', [0, 8]], ['from_index=0&limit=6', [0, 6]], ['from_index=1&limit=3', [1, 4]], ['from_index=2', [2, 8]]] as const) {
        const res = await fetch(`${bridge.url}/sessions/dc-page/changes?${query}`);
        expect(res.status, query).toBe(200);
        expect(((await res.json()) as Changes).new_events, query).toEqual(bridge.sim.events('dc-page').slice(...want));
      }
    } finally {
      sub.close();
    }
  });

  it('never answers an empty page for events it knows exist: a history read that comes back empty is asked again, then 503', async () => {
    // Five events held: a page from index 5 is read again from upstream.
    bridge = await startBridge({ SESSION_MAX_EVENTS: '5' });
    const { sim } = bridge;
    sim.createSession('dc-hole', { initialEvents: 20, finished: true });
    expect((await fetch(`${bridge.url}/sessions/dc-hole/changes?limit=1000`).then((r) => r.json() as Promise<Changes>)).new_events).toHaveLength(20);
    // One empty answer (an upstream behind itself): asked again.
    sim.faults.script([{ kind: 'no-change' }], { session: 'dc-hole', endpoint: 'changes' });
    const once = await fetch(`${bridge.url}/sessions/dc-hole/changes?from_index=5&limit=2`);
    expect(once.status).toBe(200);
    expect(((await once.json()) as Changes).new_events).toEqual(sim.events('dc-hole').slice(5, 7));
    // Empty every time: a 503 to retry after, not a 200 with no events that a poller would take for the end.
    sim.faults.script(Array.from({ length: HISTORY_EMPTY_ATTEMPTS }, () => ({ kind: 'no-change' as const })), { session: 'dc-hole', endpoint: 'changes' });
    const always = await fetch(`${bridge.url}/sessions/dc-hole/changes?from_index=8&limit=2`);
    expect(always.status).toBe(503);
    expect(always.headers.get('retry-after')).toBe('5');
    expect(((await always.json()) as { error: string }).error).toMatch(/none of the events asked for/);
    expect(sim.faults.pending()).toBe(0);
  });

  it('answers 204 at once with wait_for_seconds=0 when nothing is new', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('dc-2', { initialEvents: 2 });
    const t0 = performance.now();
    const res = await fetch(`${bridge.url}/sessions/dc-2/changes?from_index=2&wait_for_seconds=0`);
    expect(res.status).toBe(204);
    // Not held for the whole unsettled-loop bound: the loop's first empty answer settles it.
    expect(performance.now() - t0).toBeLessThan(UNSETTLED_WAIT_MS / 2);
  });

  it('releases a waiting poller when the shared loop brings events', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('dc-3', { initialEvents: 1 });
    const pending = fetch(`${bridge.url}/sessions/dc-3/changes?from_index=1&wait_for_seconds=20`);
    await eventually(() => bridge!.sim.stats('dc-3').inFlightChanges === 1, 5000, 'the loop to long-poll');
    const started = Date.now();
    bridge.sim.appendEvents('dc-3', 2);
    const res = await pending;
    expect(res.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(10_000);
    const body = (await res.json()) as Changes;
    expect(body.new_events).toEqual(bridge.sim.events('dc-3').slice(1, 3));
  });

  it('a waiting poller woken by events that came under a new status (resumed upstream) gets that status with them, not the one held before', async () => {
    bridge = await startBridge({ STATUS_FRESH_SECONDS: '2' }, { api: 'real' });
    const b = bridge;
    b.sim.createSession('dc-resumed', { initialEvents: 2 });
    const base = `${b.url}/api/v2/sessions/dc-resumed`;
    // The loop with event details runs (and stays through its idle grace); its /status answer ages past the
    // 2 s a drop-in /status may reuse, so the next one asks the upstream.
    expect((await fetch(`${base}/changes?from_index=0`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2200));
    b.sim.setStatus('dc-resumed', { status: 'paused' });
    expect(((await (await fetch(`${base}/status`)).json()) as { status: string }).status).toBe('paused');
    // Resumed upstream with no event of its own: the loop's long-poll is not woken by that (real API).
    b.sim.setStatus('dc-resumed', { status: 'running' });
    const pending = fetch(`${base}/changes?from_index=2&wait_for_seconds=20`);
    await eventually(() => b.sim.stats('dc-resumed').inFlightChanges === 1, 5000, 'the loop to long-poll');
    b.sim.appendEvents('dc-resumed', 1);
    const res = await pending;
    expect(res.status).toBe(200);
    const body = (await res.json()) as Changes;
    expect(body.new_events).toEqual(b.sim.events('dc-resumed').slice(2, 3));
    expect(body.status).toBe('running');
  });

  it('a change of status that wakes the loop\'s long-poll (simplified upstream: an empty 200) costs one /status call', async () => {
    bridge = await startBridge();
    const b = bridge;
    b.sim.createSession('dc-woken', { initialEvents: 1 });
    const reader = record(`${b.url}/sessions/dc-woken/events`);
    try {
      await reader.until((r) => r.indices().length === 1, 10_000);
      await eventually(() => b.sim.stats('dc-woken').inFlightChanges === 1 && (b.sim.stats('dc-woken').changesByWait.waiting ?? 0) >= 1, 5000, 'the loop to long-poll');
      const before = b.sim.stats('dc-woken').status;
      b.sim.setStatus('dc-woken', { status: 'paused' });
      await reader.until((r) => r.statuses().some((st) => st.status === 'paused'), 5000);
      await new Promise((r) => setTimeout(r, 500));
      expect(b.sim.stats('dc-woken').status - before).toBe(1);
    } finally {
      reader.close();
    }
  });

  it('never answers "nothing new" it cannot know: a call of any wait while the loop\'s changes call hangs is a 503 to retry (wait 0: after UNSETTLED_WAIT_MS), and 204 once the loop has read up to date', async () => {
    // 20 s: past the call's own wait (UNSETTLED_WAIT_MS), which starts once its open has waited FIRST_ANSWER_GRACE_MS
    // for a first answer. With 12 s the hung call's end raced the answer (2 + 10 s): a CI run got the "failing" 503.
    bridge = await startBridge({ UPSTREAM_TIMEOUT_MARGIN_SECONDS: '20' }, { api: 'real' });
    const b = bridge;
    b.sim.createSession('dc-hung', { initialEvents: 3 });
    // The loop's first page (a wait-0 call) gets no answer until its deadline (wait 0 + 20 s).
    b.sim.faults.script([{ kind: 'hang' }], { session: 'dc-hung', endpoint: 'changes' });
    const base = `${b.url}/api/v2/sessions/dc-hung`;
    const started = performance.now();
    // A call with a wait of its own, meanwhile: when it is over, "nothing new" is no truer (an audit, 7 Dec 2026: 204).
    const waiting = fetch(`${base}/changes?from_index=0&wait_for_seconds=3`);
    // Three events exist: a 204 would say there is none.
    const res = await fetch(`${base}/changes?from_index=0&wait_for_seconds=0`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe(String(UNSETTLED_RETRY_AFTER_SECONDS));
    expect(await res.json()).toMatchObject({ code: 'upstream_unavailable', error: expect.stringMatching(/not read up to date/) });
    expect(performance.now() - started).toBeGreaterThanOrEqual(UNSETTLED_WAIT_MS - 50);
    const waited = await waiting;
    expect(waited.status).toBe(503);
    expect(await waited.json()).toMatchObject({ code: 'upstream_unavailable', error: expect.stringMatching(/not read up to date/) });
    // Past the hung call the loop reads up to date: the events, and then that nothing is new.
    await eventually(async () => (await fetch(`${base}/changes?from_index=0&wait_for_seconds=0`)).status === 200, 20_000, 'the events once read up to date');
    expect((await fetch(`${base}/changes?from_index=3&wait_for_seconds=0`)).status).toBe(204);
  }, 50_000);

  it('holds a long-poll asking for more than 25 s only 25 s, the real API\'s own cap', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('dc-cap', { initialEvents: 1 });
    const t0 = performance.now();
    const res = await fetch(`${bridge.url}/sessions/dc-cap/changes?from_index=1&wait_for_seconds=100`, { signal: AbortSignal.timeout(40_000) });
    const heldMs = performance.now() - t0;
    expect(res.status).toBe(204);
    expect(heldMs).toBeGreaterThanOrEqual(24_500);
    expect(heldMs, 'not the 100 s asked for, nor the 60 s cap before').toBeLessThan(30_000);
  }, 45_000);

  it('answers 204 when the wait runs out, and 404/400 like the upstream', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('dc-4');
    const res = await fetch(`${bridge.url}/sessions/dc-4/changes?from_index=0&wait_for_seconds=0.3`);
    expect(res.status).toBe(204);
    expect((await fetch(`${bridge.url}/sessions/missing-1/changes`)).status).toBe(404);
    expect((await fetch(`${bridge.url}/sessions/dc-4/changes?limit=-5`)).status).toBe(400);
    // Not a count, whichever way: one message.
    for (const limit of ['0', '-1', 'ten']) {
      const bad = await fetch(`${bridge.url}/sessions/dc-4/changes?limit=${limit}`);
      expect(bad.status, limit).toBe(400);
      expect(await bad.json(), limit).toMatchObject({ error: 'limit must be a positive integer' });
    }
    // Any wait is capped, as the upstream caps it, however many digits it has; a limit too.
    bridge.sim.appendEvents('dc-4', 2);
    for (const url of [`${bridge.sim.url}/sessions/dc-4/changes?wait_for_seconds=99999999999&limit=100000000000000000`, `${bridge.url}/sessions/dc-4/changes?wait_for_seconds=99999999999&limit=100000000000000000`]) {
      const big = await fetch(url);
      expect(big.status, url).toBe(200);
      expect(((await big.json()) as { new_events: unknown[] }).new_events, url).toHaveLength(2);
    }
    // A parameter given with no value is malformed, for the upstream as for pollcast, and named in the error.
    for (const name of ['from_index', 'limit', 'include_events', 'wait_for_seconds']) {
      for (const url of [`${bridge.sim.url}/sessions/dc-4/changes?${name}=`, `${bridge.url}/sessions/dc-4/changes?${name}=`]) {
        const empty = await fetch(url);
        expect(empty.status, url).toBe(400);
        expect(JSON.stringify(await empty.json()), url).toContain(name);
      }
    }
  });

  it('shares one upstream loop between many long-poll clients and stream subscribers', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('dc-5', { emitEveryMs: 30, emitCount: 20 });
    const stream = record(`${bridge.url}/sessions/dc-5/events`);
    const pollers = Array.from({ length: 10 }, async () => {
      const seen: number[] = [];
      let from = 0;
      for (let i = 0; i < 200; i++) {
        const res = await fetch(`${bridge!.url}/sessions/dc-5/changes?from_index=${from}&wait_for_seconds=5`);
        if (res.status === 204) continue;
        const body = (await res.json()) as Changes;
        for (let k = 0; k < body.new_events.length; k++) seen.push(from + k);
        from += body.new_events.length;
        if (body.finished_at !== null && body.new_events.length === 0) break;
      }
      return seen;
    });
    const results = await Promise.all(pollers);
    await stream.ended();
    for (const seen of results) expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(bridge.sim.stats('dc-5').maxInFlightChanges).toBe(1);
  });

  it('never answers a terminal status without the finished_at and answer that come with it, while the loop drains the end', async () => {
    bridge = await startBridge({ UPSTREAM_WAIT_SECONDS: '20' }, { api: 'real' });
    const b = bridge;
    b.sim.createSession('dc-end', { initialEvents: 6 });
    const held = fetch(`${b.url}/sessions/dc-end/changes?from_index=6&wait_for_seconds=20`);
    // The loop's long-poll is held at the head: the faults below reach only the calls after it.
    await eventually(() => b.sim.stats('dc-end').inFlightChanges === 1 && (b.sim.stats('dc-end').changesByWait.waiting ?? 0) >= 1, 5000, 'the loop holding a long-poll');
    // After the long-poll that brings the closing events: the next one finds nothing new (204), /status says
    // completed, and the drain that fetches the end's changes answer takes about a second.
    b.sim.faults.script([{ kind: 'no-change' }, { kind: 'slow-body', chunkDelayMs: 400, chunks: 3 }], { session: 'dc-end' });
    b.sim.finish('dc-end', { status: 'completed', answer: 'FINAL', closingEvents: true });
    expect((await held).status).toBe(200);
    const seen: Changes[] = [];
    for (let k = 0; k < 10; k++) {
      const res = await fetch(`${b.url}/sessions/dc-end/changes?from_index=6`);
      expect(res.status).toBe(200);
      seen.push((await res.json()) as Changes);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const body of seen) {
      if (body.status === 'completed') expect(body, 'a completed answer carries its end').toMatchObject({ finished_at: expect.any(String), answer: 'FINAL' });
    }
    expect(seen.at(-1)!.status).toBe('completed');
  });

  it('waits for a drain that stalls within the call\'s one bound (its wait_for_seconds, or UNSETTLED_WAIT_MS when longer), not that bound after its own wait, then answers 503 to retry (not 204: the drain has not said nothing is left)', async () => {
    // The drain's call is left hanging for 30 s (the upstream call's margin past its wait of 0), longer than any bound here.
    bridge = await startBridge({ UPSTREAM_WAIT_SECONDS: '20', UPSTREAM_TIMEOUT_MARGIN_SECONDS: '30' }, { api: 'real' });
    const b = bridge;
    b.sim.createSession('dc-stall', { initialEvents: 6 });
    const held = fetch(`${b.url}/sessions/dc-stall/changes?from_index=6&wait_for_seconds=20`);
    // The loop's long-poll is held at the head: the faults below reach only the calls after it.
    await eventually(() => b.sim.stats('dc-stall').inFlightChanges === 1 && (b.sim.stats('dc-stall').changesByWait.waiting ?? 0) >= 1, 5000, 'the loop holding a long-poll');
    // After the long-poll that brings the closing events: the next one finds nothing new (204), /status says
    // completed, and the first call of the drain hangs.
    b.sim.faults.script([{ kind: 'no-change' }, { kind: 'hang' }], { session: 'dc-stall' });
    b.sim.finish('dc-stall', { status: 'completed', answer: 'FINAL', closingEvents: true });
    expect((await held).status).toBe(200);
    await eventually(() => b.sim.faults.pending() === 0 && b.sim.stats('dc-stall').inFlightChanges === 1, 5000, 'the drain call hanging');
    const end = b.sim.events('dc-stall').length;
    // Both bounds are UNSETTLED_WAIT_MS (10 s): wait_for_seconds=0 (the unsettled bound), and 10. The bound
    // after the wait, added to it, made both 20 s.
    const timed = async (wait: number) => {
      const t0 = performance.now();
      const res = await fetch(`${b.url}/sessions/dc-stall/changes?from_index=${end}&wait_for_seconds=${wait}`, { signal: AbortSignal.timeout(35_000) });
      await res.arrayBuffer();
      return { wait, status: res.status, retryAfter: res.headers.get('retry-after'), ms: performance.now() - t0 };
    };
    const answers = await Promise.all([timed(0), timed(UNSETTLED_WAIT_MS / 1000)]);
    expect(b.sim.stats('dc-stall').inFlightChanges, 'the drain still hanging').toBe(1);
    for (const { wait, status, retryAfter, ms } of answers) {
      expect(status, `wait_for_seconds=${wait}`).toBe(503);
      expect(retryAfter, `wait_for_seconds=${wait}`).toBe(String(UNSETTLED_RETRY_AFTER_SECONDS));
      expect(ms, `wait_for_seconds=${wait}: held for the drain`).toBeGreaterThanOrEqual(UNSETTLED_WAIT_MS - 1000);
      expect(ms, `wait_for_seconds=${wait}: one bound, not the wait and then the drain's`).toBeLessThan(UNSETTLED_WAIT_MS + 5000);
    }
  }, 45_000);

  it('answers a finished session at once with its final state', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('dc-6', { initialEvents: 3, finished: true });
    const res = await fetch(`${bridge.url}/sessions/dc-6/changes?from_index=3&wait_for_seconds=20`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Changes;
    expect(body.finished_at).not.toBeNull();
    expect(body.new_events).toEqual([]);
  });
});
