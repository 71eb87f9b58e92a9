import { afterEach, describe, expect, it, vi } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import type { Simulator } from '../../src/simulator/index.ts';
import { changesUrl, get, getChanges, track, within } from './helpers.ts';

const opened: Simulator[] = [];

async function start(options: Parameters<typeof createSimulator>[0] = {}): Promise<Simulator> {
  const sim = await createSimulator(options);
  opened.push(sim);
  return sim;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((sim) => sim.close()));
});

describe('upstream API key', () => {
  it('requires Authorization: Bearer <key> by default', async () => {
    const sim = await start({ apiKey: 'sekrit' });
    sim.createSession('s', { initialEvents: 1 });
    const urls = [changesUrl(sim, 's'), `${sim.url}/sessions/s/status`, `${sim.url}/sessions`];
    for (const url of urls) {
      const missing = await get(url);
      expect(missing.status).toBe(401);
      expect(((await missing.json()) as { error: string }).error).toEqual(expect.any(String));
      expect((await get(url, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await get(url, { headers: { authorization: 'sekrit' } })).status).toBe(401);
      expect((await get(url, { headers: { authorization: 'Bearer sekrit' } })).status).toBe(200);
    }
  });

  it('reads the raw key from a custom header', async () => {
    const sim = await start({ apiKey: 'k-123', authHeader: 'X-API-Key' });
    sim.createSession('s', { initialEvents: 1 });
    expect((await get(changesUrl(sim, 's'), { headers: { authorization: 'Bearer k-123' } })).status).toBe(401);
    expect((await get(changesUrl(sim, 's'), { headers: { 'x-api-key': 'k-12' } })).status).toBe(401);
    expect((await get(changesUrl(sim, 's'), { headers: { 'x-api-key': 'k-123' } })).status).toBe(200);
  });

  it('never guards the control API', async () => {
    const sim = await start({ apiKey: 'sekrit' });
    const res = await get(`${sim.url}/_sim/stats`);
    expect(res.status).toBe(200);
  });
});

describe('stats', () => {
  it('counts changes and status requests per session, split by wait', async () => {
    const sim = await start();
    sim.createSession('s', { initialEvents: 3 });
    await getChanges(changesUrl(sim, 's'));
    await getChanges(changesUrl(sim, 's', { wait_for_seconds: 0 }));
    await getChanges(changesUrl(sim, 's', { wait_for_seconds: 5 }));
    await get(`${sim.url}/sessions/s/status`);
    await get(changesUrl(sim, 'unknown'));
    await get(`${sim.url}/sessions`);
    expect(sim.stats('s')).toEqual({
      changes: 3,
      status: 1,
      inFlightChanges: 0,
      maxInFlightChanges: 1,
      changesByWait: { zero: 2, waiting: 1 },
      faultsServed: 0,
    });
    expect(sim.stats('unknown').changes).toBe(1);
    expect(sim.stats('never-asked').changes).toBe(0);
    expect(sim.totalRequests()).toBe(6);
    expect(Object.keys(sim.allStats()).sort()).toEqual(['s', 'unknown']);
    expect(sim.totals()).toMatchObject({ requests: 6, changes: 4, status: 1 });
  });

  it('measures concurrent long-polls on one session (maxInFlightChanges = 2)', async () => {
    const sim = await start();
    sim.createSession('s');
    const a = track(getChanges(changesUrl(sim, 's', { wait_for_seconds: 20 })));
    const b = track(getChanges(changesUrl(sim, 's', { wait_for_seconds: 20 })));
    await vi.waitFor(() => expect(sim.stats('s').inFlightChanges).toBe(2), { timeout: 2_000, interval: 5 });
    expect(a.settled() || b.settled()).toBe(false);
    sim.appendEvents('s', 1);
    const [bodyA, bodyB] = await within(Promise.all([a.promise, b.promise]), 2_000, 'both long-polls');
    expect(bodyA.new_events).toHaveLength(1);
    expect(bodyB.new_events).toEqual(bodyA.new_events);
    await vi.waitFor(() => expect(sim.stats('s').inFlightChanges).toBe(0), { timeout: 2_000, interval: 5 });
    expect(sim.stats('s').maxInFlightChanges).toBe(2);
    expect(sim.stats('s').changesByWait).toEqual({ zero: 0, waiting: 2 });
  });

  it('resetStats zeroes the counters', async () => {
    const sim = await start();
    sim.createSession('s', { initialEvents: 1 });
    await getChanges(changesUrl(sim, 's'));
    sim.resetStats();
    expect(sim.stats('s').changes).toBe(0);
    expect(sim.totalRequests()).toBe(0);
    await getChanges(changesUrl(sim, 's'));
    expect(sim.stats('s')).toMatchObject({ changes: 1, maxInFlightChanges: 1 });
  });

  it('exposes the same numbers on the control API', async () => {
    const sim = await start();
    sim.createSession('s', { initialEvents: 1 });
    await getChanges(changesUrl(sim, 's'));
    const one = (await (await get(`${sim.url}/_sim/stats/s`)).json()) as { changes: number };
    expect(one.changes).toBe(1);
    const all = (await (await get(`${sim.url}/_sim/stats`)).json()) as { totals: { requests: number }; sessions: Record<string, unknown> };
    expect(all.totals.requests).toBe(1);
    expect(Object.keys(all.sessions)).toEqual(['s']);
    expect((await get(`${sim.url}/_sim/stats/reset`, { method: 'POST' })).status).toBe(200);
    expect(sim.totalRequests()).toBe(0);
  });
});
