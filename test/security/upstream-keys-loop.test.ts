/**
 * AUTH=upstream and the shared loop: many viewers with one key cost one loop
 * and about one upstream check per cache lifetime; concurrent checks of one
 * (key, session) pair share one call; a key revoked upstream stops receiving
 * once its verdict runs out (single and multi-session streams) and cannot
 * reconnect; without UPSTREAM_API_KEY the loop runs on an accepted caller's
 * key and moves to another accepted one when that key is revoked.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { range, record, startBridge, type Bridge } from '../helpers/harness.ts';
import { parseSse, sessionQuery } from '../helpers/multi.ts';
import type { SimulatorOptions } from '../../src/simulator/index.ts';
import { ONE_ADDRESS_ENV } from '../resilience/helpers.ts';
import { hold, metric } from './helpers.ts';

const KEY_A = 'sk-org-a-Cq4Tn8Ws2Ej6';
const KEY_A2 = 'sk-org-a-second-Ym5Rb1Xd7';
const OPERATOR = 'sk-operator-Gp2Kv6Uf9Ha3';

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

async function start(env: Record<string, string>, sim: SimulatorOptions = {}): Promise<Bridge> {
  bridge = await startBridge({ ...ONE_ADDRESS_ENV, AUTH: 'upstream', UPSTREAM_WAIT_SECONDS: '1', ...env }, { api: 'real', apiKeys: { [KEY_A]: 'org-a', [KEY_A2]: 'org-a' }, ...sim });
  return bridge;
}

/** Requests the simulator received for `id`'s `endpoint` carrying `key` as a bearer. */
function callsWith(b: Bridge, id: string, endpoint: 'status' | 'changes', key: string): number {
  return b.sim.requests().filter((r) => r.target.includes(`/sessions/${id}/${endpoint}`) && (r.headers.authorization ?? []).includes(`Bearer ${key}`)).length;
}

describe('one key, many viewers', () => {
  it('20 viewers with one key on one session cost one loop and about one check per cache lifetime', async () => {
    const cacheSeconds = 2;
    const b = await start({ UPSTREAM_API_KEY: OPERATOR, AUTH_UPSTREAM_CACHE_SECONDS: String(cacheSeconds) }, { apiKey: OPERATOR });
    b.sim.createSession('live-20', { organisation: 'org-a', emitEveryMs: 150, emitCount: 40 });
    b.sim.clearRequests();
    const startedMs = Date.now();
    const viewers = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? record(`${b.url}/sessions/live-20/events?access_token=${KEY_A}`) : record(`${b.url}/sessions/live-20/events`, { headers: { authorization: `Bearer ${KEY_A}` } })));
    for (const v of viewers) await v.ended(60_000);
    const elapsedSeconds = (Date.now() - startedMs) / 1000;
    for (const v of viewers) expect(v.indices()).toEqual(range(40));
    // One loop: never two changes calls at once, and the loop ran on the operator's key, not the viewers'.
    expect(b.sim.stats('live-20').maxInFlightChanges).toBe(1);
    expect(callsWith(b, 'live-20', 'changes', KEY_A)).toBe(0);
    // The checks: the first, then one shared renewal per verdict lifetime (renewals come at most a sweep late).
    const checks = callsWith(b, 'live-20', 'status', KEY_A);
    expect(checks).toBeGreaterThanOrEqual(1);
    expect(checks, `${checks} checks in ${elapsedSeconds} s`).toBeLessThanOrEqual(Math.ceil(elapsedSeconds / cacheSeconds) + 1);
    expect(await metric(b, 'pollcast_upstream_auth_cache_hits_total')).toBeGreaterThanOrEqual(19);
  }, 120_000);

  it('concurrent checks of one (key, session) pair share one upstream call', async () => {
    const b = await start({ UPSTREAM_API_KEY: OPERATOR }, { apiKey: OPERATOR });
    b.sim.createSession('cc', { organisation: 'org-a', initialEvents: 3, finished: true });
    b.sim.clearRequests();
    // The check's answer is slow, so every request arrives while it is still in flight.
    b.sim.faults.script([{ kind: 'slow-body', chunkDelayMs: 400, chunks: 3 }], { session: 'cc', endpoint: 'status' });
    const answers = await Promise.all(Array.from({ length: 10 }, () => fetch(`${b.url}/sessions/cc/status`, { headers: { authorization: `Bearer ${KEY_A}` } })));
    expect(answers.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(callsWith(b, 'cc', 'status', KEY_A)).toBe(1);
    expect(await metric(b, 'pollcast_upstream_auth_checks_total{outcome="accepted"}')).toBe(1);
    // Another key is another pair: its own check.
    expect((await fetch(`${b.url}/sessions/cc/status`, { headers: { authorization: `Bearer ${KEY_A2}` } })).status).toBe(200);
    expect(callsWith(b, 'cc', 'status', KEY_A2)).toBe(1);
  });
});

describe('a key revoked upstream', () => {
  it('stops receiving within the cache lifetime, cannot reconnect, and the loop moves to another accepted key', async () => {
    const cacheSeconds = 3;
    // No UPSTREAM_API_KEY: the loop runs on the viewers' keys.
    const b = await start({ AUTH_UPSTREAM_CACHE_SECONDS: String(cacheSeconds) });
    b.sim.createSession('rv', { organisation: 'org-a', emitEveryMs: 100, emitCount: 150 });
    b.sim.createSession('rv-2', { organisation: 'org-a', emitEveryMs: 100, emitCount: 150 });
    const keeper = record(`${b.url}/sessions/rv/events?access_token=${KEY_A2}`);
    await keeper.until((r) => r.indices().length >= 2);
    // Opened last, KEY_A is the newest accepted key: the loop now runs on it.
    const single = await hold(`${b.url}/sessions/rv/events`, { authorization: `Bearer ${KEY_A}` });
    const multi = await hold(`${b.url}/events?${sessionQuery(['rv', 'rv-2'])}`, { authorization: `Bearer ${KEY_A}` });
    expect([single.status, multi.status]).toEqual([200, 200]);
    await single.readUntil((t) => /\nid: \d+/.test(t), 10_000);
    await multi.readUntil((t) => /\nid: /.test(t), 10_000);
    await keeper.until(() => callsWith(b, 'rv', 'changes', KEY_A) > 0, 10_000);
    b.sim.revokeKey(KEY_A);
    b.sim.clearRequests();
    // Within the verdict's lifetime (plus the expiry sweep, and slack for a loaded machine).
    const boundMs = cacheSeconds * 1000 + 5000;
    for (const held of [single, multi]) {
      await held.readUntil((t) => t.includes('event: error'), boundMs);
      const text = await held.readUntil(() => false, 5000);
      const frames = parseSse(text.slice(text.indexOf('event: error')));
      expect(frames[0]).toMatchObject({ event: 'error' });
      expect(JSON.parse(frames[0]!.data!)).toEqual({ error: 'access_revoked' });
      // Nothing after it: the stream was closed.
      expect(frames.filter((f) => !f.comment)).toHaveLength(1);
    }
    const again = await fetch(`${b.url}/sessions/rv/events`, { headers: { authorization: `Bearer ${KEY_A}` } });
    expect(again.status).toBe(401);
    expect(await again.text()).not.toContain('"index"');
    // The other key's viewer gets the whole session and its end: the loop moved to KEY_A2.
    const end = await keeper.ended(60_000);
    expect(keeper.indices()).toEqual(range(150));
    expect(end.last_index).toBe(149);
    expect(callsWith(b, 'rv', 'changes', KEY_A2)).toBeGreaterThan(0);
    expect(await metric(b, 'pollcast_upstream_auth_refusals_total{status="401"}')).toBeGreaterThanOrEqual(2);
  }, 120_000);
});

describe('an upstream outage during a renewal', () => {
  it('is not a refusal: the stream goes on, is checked again, and reaches its end', async () => {
    const b = await start({ UPSTREAM_API_KEY: OPERATOR, AUTH_UPSTREAM_CACHE_SECONDS: '1' }, { apiKey: OPERATOR });
    // Long enough (15 s) for a renewal to meet the outage and to be made again 5 s later, however the machine is loaded.
    b.sim.createSession('outage', { organisation: 'org-a', emitEveryMs: 100, emitCount: 150 });
    const held = await hold(`${b.url}/sessions/outage/events`, { authorization: `Bearer ${KEY_A}` });
    expect(held.status).toBe(200);
    await held.readUntil((t) => /\nid: \d+/.test(t), 10_000);
    b.sim.clearRequests();
    // Every /status call fails for a while: the renewals (and the loop's own status calls) meet 503s.
    b.sim.faults.script(Array.from({ length: 6 }, () => ({ kind: 'http' as const, status: 503 })), { session: 'outage', endpoint: 'status' });
    const text = await held.readUntil((t) => t.includes('event: end'), 60_000);
    expect(text).not.toContain('event: error');
    const indices = parseSse(text).flatMap((f) => (f.id !== undefined && f.event === undefined ? [Number(f.id)] : []));
    expect(indices).toEqual(range(150));
    // The renewal did meet the outage (a failed check), and was made again after it.
    expect(await metric(b, 'pollcast_upstream_auth_checks_total{outcome="unavailable"}')).toBeGreaterThanOrEqual(1);
    expect(callsWith(b, 'outage', 'status', KEY_A)).toBeGreaterThanOrEqual(2);
    held.close();
  }, 120_000);
});

describe('drop-in long-polls with a key', () => {
  it('end by the time the verdict does, so a key revoked meanwhile gets nothing more and its next call is refused', async () => {
    const b = await start({ UPSTREAM_API_KEY: OPERATOR, AUTH_UPSTREAM_CACHE_SECONDS: '2' }, { apiKey: OPERATOR });
    b.sim.createSession('quiet', { organisation: 'org-a', initialEvents: 2 });
    const headers = { authorization: `Bearer ${KEY_A}` };
    const first = await fetch(`${b.url}/api/v2/sessions/quiet/changes?from_index=0&wait_for_seconds=0`, { headers });
    expect(first.status).toBe(200);
    // Asked to wait 20 s for an event that never comes: the answer comes when the 2 s verdict runs out.
    const startedMs = Date.now();
    const poll = fetch(`${b.url}/api/v2/sessions/quiet/changes?from_index=2&wait_for_seconds=20`, { headers, signal: AbortSignal.timeout(40_000) });
    b.sim.revokeKey(KEY_A);
    const answer = await poll;
    expect(answer.status).toBe(204);
    expect(Date.now() - startedMs, 'the long-poll outlived its verdict').toBeLessThan(10_000);
    const next = await fetch(`${b.url}/api/v2/sessions/quiet/changes?from_index=2&wait_for_seconds=20`, { headers });
    expect(next.status).toBe(401);
  }, 60_000);
});
