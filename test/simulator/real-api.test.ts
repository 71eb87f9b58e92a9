import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import type { RealSessionStatus, RealTrajectoryChanges, Simulator } from '../../src/simulator/index.ts';
import { changesUrl, control, get, track, within } from './helpers.ts';

let sim: Simulator;

beforeEach(async () => {
  sim = await createSimulator({ api: 'real' });
});

afterEach(async () => {
  await sim.close();
});

const statusUrl = (id: string) => `${sim.url}/sessions/${encodeURIComponent(id)}/status`;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

async function changes(id: string, query: Record<string, string | number | boolean> = {}): Promise<RealTrajectoryChanges> {
  const res = await get(changesUrl(sim, id, query));
  if (res.status !== 200) throw new Error(`expected 200, got ${res.status}: ${await res.text()}`);
  return (await res.json()) as RealTrajectoryChanges;
}

async function status(id: string): Promise<RealSessionStatus> {
  return (await (await get(statusUrl(id))).json()) as RealSessionStatus;
}

describe('real dialect: routes', () => {
  it('serves the sessions API under /api/v2, with url = origin + /api/v2, and nothing at the root', async () => {
    expect(sim.api).toBe('real');
    expect(sim.origin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(sim.url).toBe(`${sim.origin}/api/v2`);
    sim.createSession('r1', { initialEvents: 3, imageBytes: 0 });
    expect((await get(`${sim.origin}/api/v2/sessions/r1/changes`)).status).toBe(200);
    expect((await get(`${sim.origin}/api/v2/sessions/r1/status`)).status).toBe(200);
    // The real dialect lists sessions as the API does: a page of summaries (see real-rest.test.ts).
    const list = (await (await get(`${sim.origin}/api/v2/sessions`)).json()) as { items: Array<{ id: string; status: string }> };
    expect(list.items).toEqual([expect.objectContaining({ id: 'r1', status: 'running' })]);
    for (const path of ['/sessions/r1/changes', '/sessions/r1/status', '/sessions', '/api/v2', '/api/v1/sessions/r1/status', '/api/v2x/sessions/r1/status']) {
      const res = await get(`${sim.origin}${path}`);
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { error: string }).error).toEqual(expect.any(String));
    }
  });

  it('answers the control API at the origin root and under the base path', async () => {
    expect(await control(sim, 'POST', 'sessions', { id: 'c', initialEvents: 2 })).toEqual({ status: 201, body: { id: 'c' } });
    const atRoot = await get(`${sim.origin}/_sim/sessions/c`);
    expect(atRoot.status).toBe(200);
    expect(((await atRoot.json()) as { events: number }).events).toBe(2);
    expect((await get(`${sim.url}/_sim/stats`)).status).toBe(200);
    expect(sim.totalRequests()).toBe(0);
  });

  it('leaves the simple dialect at the root, with url = origin', async () => {
    const simple = await createSimulator();
    try {
      expect(simple.api).toBe('simple');
      expect(simple.url).toBe(simple.origin);
      simple.createSession('s', { initialEvents: 1 });
      expect((await get(`${simple.origin}/sessions/s/status`)).status).toBe(200);
      expect((await get(`${simple.origin}/api/v2/sessions/s/status`)).status).toBe(404);
    } finally {
      await simple.close();
    }
  });

  it('refuses an unknown dialect', async () => {
    await expect(createSimulator({ api: 'soap' as never })).rejects.toThrow(/api must be/);
  });
});

describe('real dialect: /status', () => {
  it('answers exactly {status, error, steps, usage_per_model, subagent_session_ids}', async () => {
    sim.createSession('st', { initialEvents: 30, imageBytes: 0 });
    const body = await status('st');
    expect(Object.keys(body).sort()).toEqual(['error', 'status', 'steps', 'subagent_session_ids', 'usage_per_model']);
    expect(body).toMatchObject({ status: 'running', error: null, subagent_session_ids: [] });
    const { metrics } = await changes('st');
    expect(body.steps).toBe(metrics.steps);
    expect(body.steps).toBeGreaterThan(0);
    expect(body.usage_per_model).toHaveLength(1);
    const [usage] = body.usage_per_model;
    expect(Object.keys(usage!).sort()).toEqual(['input_tokens', 'name', 'output_tokens', 'reasoning_tokens']);
    expect(usage).toMatchObject({ name: metrics.cost_per_model[0]!.name, input_tokens: metrics.cost_per_model[0]!.input_tokens, reasoning_tokens: expect.any(Number) });
  });

  it('is pending with no usage before the first event', async () => {
    sim.createSession('p');
    expect(await status('p')).toEqual({ status: 'pending', error: null, steps: 0, usage_per_model: [], subagent_session_ids: [] });
  });
});

describe('real dialect: /changes', () => {
  it('returns TrajectoryChanges with the Agent API metrics', async () => {
    sim.createSession('c', { initialEvents: 12, imageBytes: 0 });
    const body = await changes('c', { from_index: 4 });
    expect(Object.keys(body).sort()).toEqual(['answer', 'error', 'finished_at', 'metrics', 'new_events', 'started_at', 'status']);
    expect(body).toMatchObject({ status: 'running', started_at: expect.stringMatching(ISO), finished_at: null, error: null, answer: null });
    expect(Object.keys(body.metrics).sort()).toEqual(['cost_per_model', 'input_cost', 'output_cost', 'steps', 'total_cost']);
    expect(Object.keys(body.metrics.cost_per_model[0]!).sort()).toEqual(['input_tokens', 'name', 'output_tokens', 'total_cost']);
    expect(body.metrics.total_cost).toBeCloseTo(body.metrics.input_cost + body.metrics.output_cost, 5);
    expect(body.new_events).toEqual(sim.events('c').slice(4));
  });

  it('respects limit, capped by maxLimit', async () => {
    sim.createSession('paged', { initialEvents: 230, imageBytes: 0 });
    const all = sim.events('paged');
    expect((await changes('paged', { limit: 7 })).new_events).toEqual(all.slice(0, 7));
    expect((await changes('paged', { from_index: 7, limit: 500 })).new_events).toEqual(all.slice(7, 107));
    expect((await changes('paged', { from_index: 200 })).new_events).toEqual(all.slice(200));
  });

  it('include_events=false keeps type and timestamp and sets data to null', async () => {
    sim.createSession('lean', { initialEvents: 9 });
    const full = await changes('lean');
    const lean = await changes('lean', { include_events: false });
    expect(lean.new_events).toEqual(full.new_events.map((e) => ({ type: e.type, data: null, timestamp: e.timestamp })));
    expect(JSON.stringify(lean).length).toBeLessThan(JSON.stringify(full).length / 2);
  });

  it('accepts include_details as an alias and refuses the two disagreeing', async () => {
    sim.createSession('alias', { initialEvents: 3, imageBytes: 0 });
    expect((await changes('alias', { include_details: false })).new_events[0]!.data).toBeNull();
    expect((await changes('alias', { include_details: false, include_events: false })).new_events[0]!.data).toBeNull();
    expect((await changes('alias', { include_details: true })).new_events[0]!.data).not.toBeNull();
    const conflict = await get(changesUrl(sim, 'alias', { include_events: false, include_details: true }));
    expect(conflict.status).toBe(400);
  });

  it('answers 204 at once after the end when nothing is new, 200 while events remain', async () => {
    sim.createSession('done', { initialEvents: 7, imageBytes: 0 });
    sim.finish('done');
    const drained = await changes('done', { wait_for_seconds: 20 });
    expect(drained.new_events).toHaveLength(7);
    expect(drained).toMatchObject({ status: 'completed', finished_at: expect.stringMatching(ISO), answer: expect.any(String), error: null });
    const started = performance.now();
    const after = await get(changesUrl(sim, 'done', { from_index: 7, wait_for_seconds: 20 }));
    expect(after.status).toBe(204);
    expect(performance.now() - started).toBeLessThan(1_000);
    // The "status says over, one last changes call drains" race.
    sim.appendEvents('done', 1);
    expect((await changes('done', { from_index: 7 })).new_events).toHaveLength(1);
  });

  it('holds a long-poll and releases it with 200 on new events', async () => {
    sim.createSession('lp', { initialEvents: 2, imageBytes: 0 });
    const pending = track(changes('lp', { from_index: 2, wait_for_seconds: 20 }));
    await vi.waitFor(() => expect(sim.stats('lp').inFlightChanges).toBe(1), { timeout: 2_000, interval: 5 });
    expect(pending.settled()).toBe(false);
    expect(sim.appendEvents('lp', 2)).toEqual([2, 3]);
    expect((await within(pending.promise, 2_000, 'release on events')).new_events).toEqual(sim.events('lp').slice(2));
  });

  it('does not release a held long-poll on a status change or the end: it times out with 204', async () => {
    sim.createSession('hold', { initialEvents: 6, imageBytes: 0 });
    const started = performance.now();
    const pending = track(get(changesUrl(sim, 'hold', { from_index: 6, wait_for_seconds: 1 })));
    await vi.waitFor(() => expect(sim.stats('hold').inFlightChanges).toBe(1), { timeout: 2_000, interval: 5 });
    sim.setStatus('hold', { status: 'idle' });
    sim.setStatus('hold', { metrics: { steps: 99 } });
    sim.finish('hold', { error: 'boom' });
    expect(pending.settled()).toBe(false);
    const res = await within(pending.promise, 3_000, 'timeout');
    expect(res.status).toBe(204);
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    expect(await status('hold')).toMatchObject({ status: 'failed', error: 'boom', steps: 99 });
  });

  it('answers 404 to a held long-poll when the session is deleted', async () => {
    sim.createSession('gone');
    const pending = track(get(changesUrl(sim, 'gone', { wait_for_seconds: 20 })));
    await vi.waitFor(() => expect(sim.stats('gone').inFlightChanges).toBe(1), { timeout: 2_000, interval: 5 });
    sim.deleteSession('gone');
    expect((await within(pending.promise, 2_000, 'release on delete')).status).toBe(404);
  });
});

describe('real dialect: the patch fault', () => {
  it('lets changes say the session is over while /status says it runs', async () => {
    sim.createSession('pf', { initialEvents: 6, imageBytes: 0 });
    const finishedAt = '2030-01-01T00:00:00.000Z';
    sim.faults.script([{ kind: 'patch', body: { status: 'completed', finished_at: finishedAt, answer: 'early', outcome: 'success' } }]);
    sim.faults.script([{ kind: 'patch', body: { usage_per_model: [] } }], { endpoint: 'status' });
    const patched = (await changes('pf')) as RealTrajectoryChanges & { outcome?: string };
    expect(patched).toMatchObject({ status: 'completed', finished_at: finishedAt, answer: 'early', outcome: 'success' });
    expect(patched.new_events).toHaveLength(6);
    const live = await status('pf');
    expect(live).toMatchObject({ status: 'running', usage_per_model: [] });
    expect(await status('pf')).toMatchObject({ status: 'running', usage_per_model: [expect.any(Object)] });
    expect((await changes('pf')).finished_at).toBeNull();
  });
});
