import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import type { Fault, Simulator, TrajectoryChanges } from '../../src/simulator/index.ts';
import { changesUrl, get, getChanges } from './helpers.ts';

let sim: Simulator;

beforeEach(async () => {
  sim = await createSimulator();
  sim.createSession('s', { initialEvents: 20 });
  sim.createSession('other', { initialEvents: 20 });
});

afterEach(async () => {
  await sim.close();
});

const statusUrl = (id = 's') => `${sim.url}/sessions/${id}/status`;

describe('scripted faults, seen from the client', () => {
  it('http: the scripted status with a JSON error body', async () => {
    sim.faults.script([{ kind: 'http', status: 503 }, { kind: 'http', status: 403 }]);
    const first = await get(changesUrl(sim, 's'));
    expect(first.status).toBe(503);
    expect(((await first.json()) as { error: string }).error).toEqual(expect.any(String));
    expect((await get(changesUrl(sim, 's'))).status).toBe(403);
    expect((await get(changesUrl(sim, 's'))).status).toBe(200);
    expect(sim.stats('s').faultsServed).toBe(2);
    expect(sim.faults.pending()).toBe(0);
  });

  it('rate-limit: 429 with Retry-After', async () => {
    sim.faults.script([{ kind: 'rate-limit', retryAfterSeconds: 7 }]);
    const res = await get(changesUrl(sim, 's'));
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('7');
    await res.arrayBuffer();
  });

  it('reset: fetch rejects without any response', async () => {
    sim.faults.script([{ kind: 'reset' }]);
    await expect(get(changesUrl(sim, 's'))).rejects.toThrow();
    expect((await get(changesUrl(sim, 's'))).status).toBe(200);
  });

  it('hang: no answer until the client gives up', async () => {
    sim.faults.script([{ kind: 'hang' }]);
    const started = performance.now();
    const error = await get(changesUrl(sim, 's'), {}, 300).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.name).toBe('TimeoutError');
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    // The server noticed the disconnect: nothing is left in flight.
    await vi.waitFor(() => expect(sim.stats('s').inFlightChanges).toBe(0), { timeout: 2_000, interval: 5 });
  });

  it('slow-body: a valid body delivered in delayed chunks', async () => {
    sim.faults.script([{ kind: 'slow-body', chunkDelayMs: 60, chunks: 4 }]);
    const started = performance.now();
    const body = await getChanges(changesUrl(sim, 's', { limit: 5 }));
    expect(performance.now() - started).toBeGreaterThanOrEqual(3 * 60 - 10);
    expect(body.new_events).toEqual(sim.events('s').slice(0, 5));
  });

  it('invalid-json: 200 application/json that does not parse', async () => {
    sim.faults.script([{ kind: 'invalid-json' }]);
    const res = await get(changesUrl(sim, 's'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    await expect(res.json()).rejects.toThrow(SyntaxError);
  });

  it('truncated: headers arrive, the body read fails', async () => {
    sim.faults.script([{ kind: 'truncated' }]);
    const res = await get(changesUrl(sim, 's'));
    expect(res.status).toBe(200);
    expect(Number(res.headers.get('content-length'))).toBeGreaterThan(100);
    await expect(res.text()).rejects.toThrow();
  });

  it('no-change: 204 at once even with events and a long wait', async () => {
    sim.faults.script(Array.from({ length: 5 }, (): Fault => ({ kind: 'no-change' })));
    const started = performance.now();
    for (let i = 0; i < 5; i++) expect((await get(changesUrl(sim, 's', { wait_for_seconds: 20 }))).status).toBe(204);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect((await get(changesUrl(sim, 's'))).status).toBe(200);
  });

  it('short-limit: a normal answer with at most max events', async () => {
    sim.faults.script([{ kind: 'short-limit', max: 3 }]);
    const body = await getChanges(changesUrl(sim, 's', { from_index: 2, limit: 50 }));
    expect(body.new_events).toEqual(sim.events('s').slice(2, 5));
  });

  it('patch: a normal answer with fields overridden, so endpoints can disagree', async () => {
    const finishedAt = '2030-01-01T00:00:00.000Z';
    sim.faults.script([{ kind: 'patch', body: { status: 'completed', finished_at: finishedAt, extra: { outcome: 'success' } } }]);
    sim.faults.script([{ kind: 'patch', body: { status: 'running' } }], { endpoint: 'status' });
    const changed = await getChanges(changesUrl(sim, 's', { from_index: 18 }));
    expect(changed).toMatchObject({ status: 'completed', finished_at: finishedAt, extra: { outcome: 'success' } });
    expect(changed.new_events).toEqual(sim.events('s').slice(18));
    const status = (await (await get(statusUrl())).json()) as { status: string; finished_at: string | null };
    expect(status).toMatchObject({ status: 'running', finished_at: null });
    expect((await getChanges(changesUrl(sim, 's'))).finished_at).toBeNull();
    expect(sim.stats('s').faultsServed).toBe(2);
    expect(() => sim.faults.script([{ kind: 'patch', body: [1] } as unknown as Fault])).toThrow(/body/);
  });

  it('applies to status too, and spoils status bodies', async () => {
    sim.faults.script([{ kind: 'http', status: 502 }, { kind: 'truncated' }], { endpoint: 'status' });
    expect((await get(changesUrl(sim, 's'))).status).toBe(200);
    expect((await get(statusUrl())).status).toBe(502);
    const res = await get(statusUrl());
    await expect(res.text()).rejects.toThrow();
    expect((await get(statusUrl())).status).toBe(200);
  });
});

describe('fault scopes and order', () => {
  it('a session scope leaves other sessions alone', async () => {
    sim.faults.script([{ kind: 'http', status: 500 }], { session: 'other' });
    expect((await get(changesUrl(sim, 's'))).status).toBe(200);
    expect((await get(statusUrl('other'))).status).toBe(200);
    expect((await get(changesUrl(sim, 'other'))).status).toBe(500);
    expect(sim.stats('other').faultsServed).toBe(1);
    expect(sim.stats('s').faultsServed).toBe(0);
  });

  it("endpoint 'any' hits changes and status in request order", async () => {
    sim.faults.script([{ kind: 'http', status: 500 }, { kind: 'http', status: 502 }], { endpoint: 'any' });
    expect((await get(statusUrl())).status).toBe(500);
    expect((await get(changesUrl(sim, 's'))).status).toBe(502);
    expect((await get(statusUrl())).status).toBe(200);
  });

  it('clear() drops queued faults and random rules', async () => {
    sim.faults.script([{ kind: 'http', status: 500 }]);
    sim.faults.random({ seed: 1, rate: 1, kinds: [{ kind: 'http', status: 503 }] });
    sim.faults.clear();
    expect((await get(changesUrl(sim, 's'))).status).toBe(200);
  });

  it('rejects malformed faults', () => {
    expect(() => sim.faults.script([{ kind: 'explode' } as unknown as Fault])).toThrow(/unknown fault kind/);
    expect(() => sim.faults.script([{ kind: 'http' } as unknown as Fault])).toThrow(/status/);
    expect(() => sim.faults.random({ seed: 1, rate: 2, kinds: [{ kind: 'reset' }] })).toThrow(/rate/);
  });
});

describe('seeded random faults', () => {
  const kinds: Fault[] = [{ kind: 'http', status: 500 }, { kind: 'no-change' }, { kind: 'rate-limit', retryAfterSeconds: 1 }];

  async function statuses(seed: number, requests = 40, rate = 0.5): Promise<number[]> {
    sim.faults.clear();
    sim.faults.random({ seed, rate, kinds });
    const out: number[] = [];
    for (let i = 0; i < requests; i++) {
      const res = await get(changesUrl(sim, 's'));
      await res.arrayBuffer();
      out.push(res.status);
    }
    return out;
  }

  it('are reproducible for one seed and differ for another', async () => {
    const first = await statuses(42);
    const again = await statuses(42);
    const other = await statuses(43);
    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
    const faulted = first.filter((s) => s !== 200).length;
    expect(faulted).toBeGreaterThan(5);
    expect(faulted).toBeLessThan(35);
    expect(new Set(first)).toEqual(new Set([200, 204, 429, 500]));
  });

  it('rate 0 never fires and rate 1 always does', async () => {
    expect(new Set(await statuses(7, 10, 0))).toEqual(new Set([200]));
    sim.faults.clear();
    sim.faults.random({ seed: 7, rate: 1, kinds: [{ kind: 'http', status: 502 }] });
    for (let i = 0; i < 5; i++) expect((await get(changesUrl(sim, 's'))).status).toBe(502);
  });
});

describe('faults over the control API', () => {
  it('scripts faults with a scope', async () => {
    const res = await fetch(`${sim.url}/_sim/faults/script`, {
      method: 'POST',
      body: JSON.stringify({ faults: [{ kind: 'http', status: 503 }], session: 'other', endpoint: 'status' }),
      signal: AbortSignal.timeout(2_000),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ pending: 1 });
    expect((await get(changesUrl(sim, 'other'))).status).toBe(200);
    expect((await get(statusUrl('other'))).status).toBe(503);
  });

  it('refuses a malformed fault with 400', async () => {
    const res = await fetch(`${sim.url}/_sim/faults/script`, {
      method: 'POST',
      body: JSON.stringify({ faults: [{ kind: 'nope' }] }),
      signal: AbortSignal.timeout(2_000),
    });
    expect(res.status).toBe(400);
  });

  it('random and clear', async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${sim.url}/_sim/faults/${path}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(2_000) });
    expect((await post('random', { seed: 3, rate: 1, kinds: [{ kind: 'http', status: 500 }] })).status).toBe(200);
    expect((await get(changesUrl(sim, 's'))).status).toBe(500);
    expect((await post('clear', {})).status).toBe(200);
    const body = (await (await get(changesUrl(sim, 's'))).json()) as TrajectoryChanges;
    expect(body.new_events).toHaveLength(20);
  });
});
