import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import type { Simulator } from '../../src/simulator/index.ts';
import { changesUrl, control, get, getChanges } from './helpers.ts';

let sim: Simulator;

beforeEach(async () => {
  sim = await createSimulator({ apiKey: 'k' });
});

afterEach(async () => {
  await sim.close();
});

const auth = { headers: { authorization: 'Bearer k' } };

describe('HTTP control API under /_sim/', () => {
  it('creates a session from a spec and refuses duplicates', async () => {
    expect(await control(sim, 'POST', 'sessions', { id: 'c1', initialEvents: 4 })).toEqual({ status: 201, body: { id: 'c1' } });
    expect(sim.eventCount('c1')).toBe(4);
    expect((await control(sim, 'POST', 'sessions', { id: 'c1' })).status).toBe(409);
    expect((await control(sim, 'POST', 'sessions', { initialEvents: 1 })).status).toBe(400);
    expect((await control(sim, 'POST', 'sessions', { id: 'c2', initialEvents: -1 })).status).toBe(400);
    expect((await control(sim, 'POST', 'sessions', { id: 'c3', emitEveryMs: 'soon' })).status).toBe(400);
  });

  it('appends events, returns the full history, finishes and deletes', async () => {
    await control(sim, 'POST', 'sessions', { id: 'c' });
    expect(await control(sim, 'POST', 'sessions/c/events', { count: 3 })).toEqual({ status: 200, body: { indices: [0, 1, 2] } });
    expect((await control(sim, 'POST', 'sessions/c/events', {})).body).toEqual({ indices: [3] });

    const history = await control(sim, 'GET', 'sessions/c/events');
    expect(history.body.events).toEqual(sim.events('c'));
    const served = await getChanges(changesUrl(sim, 'c'), auth);
    expect(served.new_events).toEqual(history.body.events);

    const finished = await control(sim, 'POST', 'sessions/c/finish', { error: 'boom' });
    expect(finished.status).toBe(200);
    expect(finished.body).toMatchObject({ status: 'failed', error: 'boom', finished_at: expect.any(String) });
    expect((await control(sim, 'POST', 'sessions/c/finish', {})).status).toBe(400);

    expect((await control(sim, 'GET', 'sessions')).body.sessions).toEqual([expect.objectContaining({ id: 'c', status: 'failed', events: 4 })]);
    expect((await control(sim, 'DELETE', 'sessions/c')).status).toBe(200);
    expect((await get(changesUrl(sim, 'c'), auth)).status).toBe(404);
    expect((await control(sim, 'GET', 'sessions/c/events')).status).toBe(404);
    expect((await control(sim, 'DELETE', 'sessions/c')).status).toBe(404);
  });

  it('finishes with an answer object and changes status/metrics', async () => {
    await control(sim, 'POST', 'sessions', { id: 'a', initialEvents: 1 });
    expect((await control(sim, 'POST', 'sessions/a/status', { metrics: { total_cost: 1.5 } })).body.metrics.total_cost).toBe(1.5);
    const done = await control(sim, 'POST', 'sessions/a/finish', { answer: { rows: 2 } });
    expect(done.body).toMatchObject({ status: 'completed', answer: { rows: 2 } });
  });

  it('answers 400 for a body that is not JSON, 404 and 405 for bad routes', async () => {
    const res = await fetch(`${sim.url}/_sim/sessions`, { method: 'POST', body: '{nope', signal: AbortSignal.timeout(2_000) });
    expect(res.status).toBe(400);
    expect((await control(sim, 'GET', 'nothing-here')).status).toBe(404);
    const wrong = await control(sim, 'PUT', 'stats/reset');
    expect(wrong.status).toBe(405);
  });

  it('is not counted in the sessions API stats', async () => {
    await control(sim, 'POST', 'sessions', { id: 'x', initialEvents: 1 });
    await control(sim, 'GET', 'stats');
    expect(sim.totalRequests()).toBe(0);
  });
});
