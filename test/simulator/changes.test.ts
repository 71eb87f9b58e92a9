import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import type { Simulator, SessionSnapshot } from '../../src/simulator/index.ts';
import { changesUrl, get, getChanges, track, within } from './helpers.ts';

let sim: Simulator;

beforeEach(async () => {
  sim = await createSimulator();
});

afterEach(async () => {
  await sim.close();
});

describe('GET /sessions/{id}/changes: answers at once', () => {
  it('returns events from from_index with the TrajectoryChanges shape', async () => {
    sim.createSession('s1', { initialEvents: 10 });
    const body = await getChanges(changesUrl(sim, 's1', { from_index: 4 }));
    expect(Object.keys(body).sort()).toEqual(['answer', 'error', 'finished_at', 'metrics', 'new_events', 'started_at', 'status'].sort());
    expect(body.status).toBe('running');
    expect(body.started_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(body.finished_at).toBeNull();
    expect(body.error).toBeNull();
    expect(body.answer).toBeNull();
    expect(Object.keys(body.metrics).sort()).toEqual(['cost_per_model', 'input_cost', 'output_cost', 'steps', 'total_cost']);
    expect(body.new_events).toHaveLength(6);
    // The k-th element has index from_index + k: compare with the full history.
    expect(body.new_events).toEqual(sim.events('s1').slice(4));
    for (const event of body.new_events) {
      expect(Object.keys(event).sort()).toEqual(['data', 'timestamp', 'type']);
      expect(typeof event.data.emitted_at_ms).toBe('number');
      expect(new Date(event.timestamp).getTime()).toBe(Math.floor(event.data.emitted_at_ms as number));
    }
  });

  it('pages by limit and caps limit at maxLimit', async () => {
    sim.createSession('paged', { initialEvents: 250 });
    const all = sim.events('paged');
    const first = await getChanges(changesUrl(sim, 'paged', { limit: 40 }));
    expect(first.new_events).toEqual(all.slice(0, 40));
    const second = await getChanges(changesUrl(sim, 'paged', { from_index: 40, limit: 40 }));
    expect(second.new_events).toEqual(all.slice(40, 80));
    const capped = await getChanges(changesUrl(sim, 'paged', { from_index: 80, limit: 1000 }));
    expect(capped.new_events).toEqual(all.slice(80, 180));
    const defaulted = await getChanges(changesUrl(sim, 'paged', { from_index: 200 }));
    expect(defaulted.new_events).toEqual(all.slice(200, 250));
  });

  it('drops details with include_details=false and keeps them by default', async () => {
    sim.createSession('d', { initialEvents: 7, detailBytes: 2000 });
    const full = await getChanges(changesUrl(sim, 'd'));
    const lean = await getChanges(changesUrl(sim, 'd', { include_details: false }));
    expect(lean.new_events).toHaveLength(7);
    for (const [i, event] of lean.new_events.entries()) {
      const original = full.new_events[i]!;
      expect(original.data.details).toBeDefined();
      expect(event.data.details).toBeUndefined();
      expect(event.type).toBe(original.type);
      expect(event.data.emitted_at_ms).toBe(original.data.emitted_at_ms);
    }
    expect(JSON.stringify(full).length).toBeGreaterThan(JSON.stringify(lean).length + 7 * 1500);
  });

  it('accepts include_events as the same flag, and refuses the two names disagreeing', async () => {
    sim.createSession('alias', { initialEvents: 3, detailBytes: 500 });
    const lean = await getChanges(changesUrl(sim, 'alias', { include_events: false }));
    for (const event of lean.new_events) expect(event.data.details).toBeUndefined();
    const agreeing = await getChanges(changesUrl(sim, 'alias', { include_events: false, include_details: false }));
    expect(agreeing.new_events).toEqual(lean.new_events);
    const full = await getChanges(changesUrl(sim, 'alias', { include_events: true, include_details: true }));
    expect(full.new_events[0]!.data.details).toBeDefined();
    const conflict = await get(changesUrl(sim, 'alias', { include_events: true, include_details: false }));
    expect(conflict.status).toBe(400);
    expect(((await conflict.json()) as { error: string }).error).toMatch(/include_events.*include_details.*disagree/);
  });

  it('reads include_events as the real API reads a boolean: 1/0, yes/no, on/off, t/f, y/n, any case', async () => {
    sim.createSession('spell', { initialEvents: 2, detailBytes: 200 });
    for (const word of ['0', 'no', 'OFF', 'f', 'N', 'False']) {
      const lean = await getChanges(changesUrl(sim, 'spell', { include_events: word }));
      expect(lean.new_events[0]!.data.details, word).toBeUndefined();
    }
    for (const word of ['1', 'yes', 'On', 'T', 'y', 'TRUE']) {
      const full = await getChanges(changesUrl(sim, 'spell', { include_events: word }));
      expect(full.new_events[0]!.data.details, word).toBeDefined();
    }
    const conflict = await get(changesUrl(sim, 'spell', { include_events: 'yes', include_details: '0' }));
    expect(conflict.status).toBe(400);
  });

  it('generates realistic agent events with growing metrics', async () => {
    sim.createSession('agent', { initialEvents: 21 });
    const types = sim.events('agent').map((e) => e.type);
    for (const type of ['step_started', 'thought', 'tool_call', 'tool_result', 'message', 'metrics_update', 'step_finished']) {
      expect(types).toContain(type);
    }
    const toolCall = sim.events('agent').find((e) => e.type === 'tool_call')!;
    expect(typeof toolCall.data.tool).toBe('string');
    expect(typeof toolCall.data.args).toBe('object');
    const body = (await (await get(`${sim.url}/sessions/agent/status`)).json()) as SessionSnapshot;
    expect(body.metrics.steps).toBe(3);
    expect(body.metrics.total_cost).toBeGreaterThan(0);
    expect(body.metrics.cost_per_model[0]).toMatchObject({ model: expect.any(String), input_tokens: expect.any(Number), output_tokens: expect.any(Number) });
  });

  it('answers a finished session at once, with empty new_events when nothing is new', async () => {
    sim.createSession('done', { initialEvents: 3, finished: true });
    const started = performance.now();
    const body = await getChanges(changesUrl(sim, 'done', { from_index: 3, wait_for_seconds: 20 }));
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(body.new_events).toEqual([]);
    expect(body.status).toBe('completed');
    expect(body.finished_at).not.toBeNull();
    expect(body.answer).toEqual(expect.any(String));
  });

  it('answers 204 at once with the default wait of 0 when nothing is new', async () => {
    sim.createSession('idle');
    const res = await get(changesUrl(sim, 'idle'));
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
  });
});

describe('GET /sessions/{id}/changes: long-poll', () => {
  it('holds the request and releases it with 200 when events are appended', async () => {
    sim.createSession('lp', { initialEvents: 2 });
    const pending = track(getChanges(changesUrl(sim, 'lp', { from_index: 2, wait_for_seconds: 20 })));
    await vi.waitFor(() => expect(sim.stats('lp').inFlightChanges).toBe(1), { timeout: 2_000, interval: 5 });
    expect(pending.settled()).toBe(false);
    const indices = sim.appendEvents('lp', 3);
    expect(indices).toEqual([2, 3, 4]);
    const body = await within(pending.promise, 2_000, 'long-poll release');
    expect(body.new_events).toEqual(sim.events('lp').slice(2, 5));
  });

  it('answers 204 after wait_for_seconds when nothing arrives', async () => {
    sim.createSession('quiet', { initialEvents: 1 });
    const started = performance.now();
    const res = await get(changesUrl(sim, 'quiet', { from_index: 1, wait_for_seconds: 1 }));
    const elapsed = performance.now() - started;
    expect(res.status).toBe(204);
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(3_000);
  });

  it('caps wait_for_seconds at maxWaitSeconds', async () => {
    const capped = await createSimulator({ maxWaitSeconds: 0.2 });
    try {
      capped.createSession('c');
      const started = performance.now();
      const res = await get(changesUrl(capped, 'c', { wait_for_seconds: 25 }));
      expect(res.status).toBe(204);
      expect(performance.now() - started).toBeLessThan(2_000);
    } finally {
      await capped.close();
    }
  });

  it('releases a held request with 200 and empty new_events when the session finishes', async () => {
    sim.createSession('fin', { initialEvents: 1 });
    const pending = track(getChanges(changesUrl(sim, 'fin', { from_index: 1, wait_for_seconds: 20 })));
    await vi.waitFor(() => expect(sim.stats('fin').inFlightChanges).toBe(1), { timeout: 2_000, interval: 5 });
    sim.finish('fin', { error: 'tool crashed' });
    const body = await within(pending.promise, 2_000, 'release on finish');
    expect(body.new_events).toEqual([]);
    expect(body.status).toBe('failed');
    expect(body.error).toBe('tool crashed');
    expect(body.finished_at).not.toBeNull();
  });

  it('releases a held request on a metrics-only status change', async () => {
    sim.createSession('m', { initialEvents: 1 });
    const pending = track(getChanges(changesUrl(sim, 'm', { from_index: 1, wait_for_seconds: 20 })));
    await vi.waitFor(() => expect(sim.stats('m').inFlightChanges).toBe(1), { timeout: 2_000, interval: 5 });
    sim.setStatus('m', { metrics: { steps: 42 } });
    const body = await within(pending.promise, 2_000, 'release on status');
    expect(body.new_events).toEqual([]);
    expect(body.metrics.steps).toBe(42);
  });

  it('keeps holding when appended events are still before from_index', async () => {
    sim.createSession('ahead', { initialEvents: 1 });
    const pending = track(getChanges(changesUrl(sim, 'ahead', { from_index: 3, wait_for_seconds: 20 })));
    await vi.waitFor(() => expect(sim.stats('ahead').inFlightChanges).toBe(1), { timeout: 2_000, interval: 5 });
    sim.appendEvents('ahead', 1);
    expect(sim.stats('ahead').inFlightChanges).toBe(1);
    sim.appendEvents('ahead', 2);
    const body = await within(pending.promise, 2_000, 'release at from_index');
    expect(body.new_events).toEqual(sim.events('ahead').slice(3));
  });

  it('answers 404 to a held request when the session is deleted', async () => {
    sim.createSession('gone');
    const pending = track(get(changesUrl(sim, 'gone', { wait_for_seconds: 20 })));
    await vi.waitFor(() => expect(sim.stats('gone').inFlightChanges).toBe(1), { timeout: 2_000, interval: 5 });
    sim.deleteSession('gone');
    const res = await within(pending.promise, 2_000, 'release on delete');
    expect(res.status).toBe(404);
  });

  it('drops the waiter when the client disconnects', async () => {
    sim.createSession('bye');
    const controller = new AbortController();
    const pending = track(fetch(changesUrl(sim, 'bye', { wait_for_seconds: 20 }), { signal: controller.signal }));
    await vi.waitFor(() => expect(sim.stats('bye').inFlightChanges).toBe(1), { timeout: 2_000, interval: 5 });
    controller.abort();
    await expect(within(pending.promise, 2_000, 'abort')).rejects.toThrow();
    await vi.waitFor(() => expect(sim.stats('bye').inFlightChanges).toBe(0), { timeout: 2_000, interval: 5 });
    // A later append must not try to answer the gone client (it would throw on a destroyed response).
    expect(() => sim.appendEvents('bye', 1)).not.toThrow();
  });

  it('emits on a timer and finishes after emitCount', async () => {
    sim.createSession('timed', { emitEveryMs: 20, batchSize: 3, emitCount: 10 });
    const seen: number[] = [];
    let from = 0;
    let finishedAt: string | null = null;
    const deadline = performance.now() + 5_000;
    while (finishedAt === null && performance.now() < deadline) {
      const res = await get(changesUrl(sim, 'timed', { from_index: from, wait_for_seconds: 2 }));
      if (res.status === 204) continue;
      const body = (await res.json()) as { new_events: unknown[]; finished_at: string | null };
      for (let k = 0; k < body.new_events.length; k++) seen.push(from + k);
      from += body.new_events.length;
      finishedAt = body.finished_at;
    }
    expect(finishedAt).not.toBeNull();
    expect(sim.eventCount('timed')).toBe(10);
    expect(seen).toEqual([...Array(10).keys()]);
  });
});

describe('GET /sessions/{id}/status, errors and listing', () => {
  it('returns the snapshot without new_events', async () => {
    sim.createSession('st', { initialEvents: 8 });
    const res = await get(`${sim.url}/sessions/st/status`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as SessionSnapshot & { new_events?: unknown };
    expect(body.new_events).toBeUndefined();
    expect(body).toMatchObject({ status: 'running', finished_at: null, error: null, answer: null });
    expect(body.metrics.steps).toBe(2);
  });

  it('follows queued → running → completed', async () => {
    sim.createSession('life');
    const status = async () => (await (await get(`${sim.url}/sessions/life/status`)).json()) as SessionSnapshot;
    expect(await status()).toMatchObject({ status: 'queued', started_at: null, finished_at: null });
    sim.appendEvents('life', 1);
    expect((await status()).status).toBe('running');
    sim.finish('life', { answer: { total: 3 } });
    expect(await status()).toMatchObject({ status: 'completed', answer: { total: 3 }, finished_at: expect.any(String) });
  });

  it('answers 404 JSON for unknown and deleted sessions', async () => {
    sim.createSession('del', { initialEvents: 1 });
    sim.deleteSession('del');
    for (const url of [changesUrl(sim, 'nope'), `${sim.url}/sessions/nope/status`, changesUrl(sim, 'del')]) {
      const res = await get(url);
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/application\/json/);
      expect(((await res.json()) as { error: string }).error).toEqual(expect.any(String));
    }
  });

  it.each([
    ['from_index', '-1'],
    ['from_index', '1.5'],
    ['from_index', 'abc'],
    ['limit', '-3'],
    ['limit', '0'],
    ['limit', 'ten'],
    ['include_details', 'maybe'],
    ['include_events', '2'],
    ['include_events', ''],
    ['wait_for_seconds', '-1'],
    ['wait_for_seconds', 'soon'],
  ])('answers 400 JSON for %s=%s', async (name, value) => {
    sim.createSession('q', { initialEvents: 1 });
    const res = await get(`${changesUrl(sim, 'q')}?${name}=${encodeURIComponent(value)}`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toContain(name);
  });

  it('accepts a fractional wait_for_seconds', async () => {
    sim.createSession('frac');
    const res = await get(changesUrl(sim, 'frac', { wait_for_seconds: 0.1 }));
    expect(res.status).toBe(204);
  });

  it('lists sessions on GET /sessions', async () => {
    sim.createSession('a', { initialEvents: 2 });
    sim.createSession('b', { finished: true });
    const body = (await (await get(`${sim.url}/sessions`)).json()) as { sessions: Array<{ id: string; status: string; events: number }> };
    expect(body.sessions.map((s) => [s.id, s.status, s.events])).toEqual([
      ['a', 'running', 2],
      ['b', 'completed', 0],
    ]);
  });

  it('rejects misuse of the in-process API', () => {
    sim.createSession('x');
    expect(() => sim.createSession('x')).toThrow(/exists/);
    expect(() => sim.appendEvents('missing')).toThrow(/no such session/);
    sim.finish('x');
    expect(() => sim.finish('x')).toThrow(/already finished/);
  });
});
