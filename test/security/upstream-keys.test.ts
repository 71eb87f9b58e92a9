/**
 * AUTH=upstream, callers' own keys (CONTRACT.md section 4, "Upstream keys"),
 * against the simulator in real-API mode with per-key visibility: a key sees
 * its organisation's sessions, another's is 404. Key A must not read B's
 * session by any route, and no byte of it may come back; the upstream's
 * refusals are answered as they are; combined with tokens, a valid token is
 * judged by its claims and anything else by the upstream.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast } from '../../src/server.ts';
import { createSimulator } from '../../src/simulator/index.ts';
import { record, startBridge, type Bridge } from '../helpers/harness.ts';
import { CHECKS_PER_REQUEST_CONCURRENCY } from '../../src/http/auth-upstream.ts';
import { readAll, recordMany, sessionQuery } from '../helpers/multi.ts';
import { waitForSession } from '../helpers/sdk-client.ts';
import { ONE_ADDRESS_ENV } from '../resilience/helpers.ts';
import type { SimulatorOptions } from '../../src/simulator/index.ts';
import { JWT_SECRET, startKeylessDelayProxy, token } from './helpers.ts';

const KEY_A = 'sk-org-a-Vb7Qm2Lx9Rt4';
const KEY_B = 'sk-org-b-Np3Wz8Hc5Ky1';
const OPERATOR = 'sk-operator-Jd8Fh3Lq';

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

/** A bridge on the real dialect with two organisations' keys, and a finished session of each. */
async function start(env: Record<string, string> = {}, sim: SimulatorOptions = {}): Promise<Bridge> {
  bridge = await startBridge({ ...ONE_ADDRESS_ENV, AUTH: 'upstream', UPSTREAM_WAIT_SECONDS: '1', ...env }, { api: 'real', apiKeys: { [KEY_A]: 'org-a', [KEY_B]: 'org-b' }, ...sim });
  bridge.sim.createSession('a-1', { organisation: 'org-a', initialEvents: 4, finished: true });
  bridge.sim.createSession('b-1', { organisation: 'org-b', initialEvents: 4, finished: true });
  return bridge;
}

/** Every route that reads one session, as paths under pollcast. */
function readRoutes(id: string): string[] {
  return [`/sessions/${id}/events`, `/sessions/${id}/changes`, `/sessions/${id}/status`, `/api/v2/sessions/${id}/changes`, `/api/v2/sessions/${id}/status`, `/events?session=${id}`];
}

/** GET with a bearer; the whole body (bounded: a refusal is short, and a stream of a finished session ends). */
async function get(b: Bridge, path: string, headers: Record<string, string>): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(`${b.url}${path}`, { headers, signal: AbortSignal.timeout(20_000) });
  return { status: res.status, type: res.headers.get('content-type'), body: await readAll(res) };
}

describe('AUTH=upstream: a key reads only what the upstream lets it', () => {
  it('key A reads its own session by every route, and B\'s by none, with no byte of it', async () => {
    const b = await start();
    for (const path of readRoutes('a-1')) {
      const r = await get(b, path, { authorization: `Bearer ${KEY_A}` });
      expect(r.status, path).toBe(200);
    }
    const bEvents = JSON.stringify(b.sim.events('b-1').map((e) => e.data));
    for (const path of readRoutes('b-1')) {
      for (const headers of [{ authorization: `Bearer ${KEY_A}` }, {}] as Array<Record<string, string>>) {
        const sep = path.includes('?') ? '&' : '?';
        const target = Object.keys(headers).length === 0 ? `${path}${sep}access_token=${KEY_A}` : path;
        const r = await get(b, target, headers);
        expect(r.status, target).toBe(404);
        expect(r.type, target).toMatch(/^application\/json/);
        expect(JSON.parse(r.body).code, target).toBe('session_not_found');
        expect(r.body).not.toContain('"index"');
        expect(bEvents.length).toBeGreaterThan(10);
        for (const e of b.sim.events('b-1')) expect(r.body).not.toContain(JSON.stringify(e.data).slice(0, 40));
      }
    }
    // A mixed multi-session stream needs every session accepted: one refused, the whole stream refused.
    const mixed = await get(b, `/events?${sessionQuery(['a-1', 'b-1'])}`, { authorization: `Bearer ${KEY_A}` });
    expect(mixed.status).toBe(403);
    expect(mixed.body).not.toContain('"index"');
    const post = await fetch(`${b.url}/events`, { method: 'POST', headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' }, body: JSON.stringify({ sessions: ['b-1'] }) });
    expect(post.status).toBe(404);
    // Nothing of B's session was ever read upstream: no loop was started for it.
    expect(b.sim.stats('b-1').changes).toBe(0);
  });

  it('answers 401 with no key, a malformed key, an unknown or a revoked key; 403 as the upstream says it', async () => {
    const b = await start();
    for (const headers of [{}, { authorization: 'Basic abc' }, { authorization: 'Bearer sk-nobody' }, { authorization: 'Bearer has\u00e9accent' }]) {
      const r = await fetch(`${b.url}/sessions/a-1/status`, { headers: headers as Record<string, string> });
      expect(r.status, JSON.stringify(headers)).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
      expect((await r.json()).code).toBe('unauthorized');
    }
    // No key: no upstream call at all.
    b.sim.clearRequests();
    expect((await fetch(`${b.url}/sessions/a-1/events`)).status).toBe(401);
    expect(b.sim.requests()).toHaveLength(0);
    // The upstream's 403 is answered as a 403.
    b.sim.faults.script([{ kind: 'http', status: 403 }], { session: 'a-1', endpoint: 'status' });
    const forbidden = await fetch(`${b.url}/sessions/a-1/changes`, { headers: { authorization: `Bearer ${KEY_A}` } });
    expect(forbidden.status).toBe(403);
    // Beside another scheme (a page behind HTTP Basic), the key in access_token is read (audit, 7 Dec 2026: it was a 401).
    b.sim.createSession('a-basic', { organisation: 'org-a', initialEvents: 1, finished: true });
    const beside = await fetch(`${b.url}/sessions/a-basic/status?access_token=${KEY_A}`, { headers: { authorization: 'Basic abc' } });
    expect(beside.status).toBe(200);
    await beside.arrayBuffer();
    // Forwarded the same: the key goes upstream as its Bearer, in place of the Basic line (a review: it went with neither).
    const forwarded = await fetch(`${b.url}/api/v2/sessions?access_token=${KEY_A}&tag=basic`, { headers: { authorization: 'Basic abc' } });
    expect(forwarded.status).toBe(200);
    await forwarded.arrayBuffer();
    const seen = b.sim.requests().filter((r) => r.target.includes('tag=basic'));
    expect(seen.map((r) => r.headers.authorization)).toEqual([[`Bearer ${KEY_A}`]]);
    expect(seen[0]!.target).not.toContain('access_token');
  });

  it('a key the upstream refuses outright (401) on a stream of 100 sessions costs a few checks, not one per session', async () => {
    const b = await start();
    const ids = Array.from({ length: 100 }, (_, i) => `m-${i}`);
    for (const id of ids) b.sim.createSession(id, { organisation: 'org-a', initialEvents: 1 });
    b.sim.clearRequests();
    const r = await fetch(`${b.url}/events?sessions=${ids.join(',')}`, { headers: { authorization: 'Bearer sk-junk-Zq4Wd8' }, signal: AbortSignal.timeout(20_000) });
    expect(r.status).toBe(401);
    expect((await r.json()).code).toBe('unauthorized');
    // The checks under way when the first 401 came back finish; no new one starts (a check per session made 100).
    expect(b.sim.requests().length).toBeGreaterThan(0);
    expect(b.sim.requests().length).toBeLessThanOrEqual(CHECKS_PER_REQUEST_CONCURRENCY);
    // The same key's access to other sessions is still judged as before (a good key is not held up by it).
    const ok = await fetch(`${b.url}/events?sessions=m-1,m-2`, { headers: { authorization: `Bearer ${KEY_A}` }, signal: AbortSignal.timeout(5_000) });
    expect(ok.status).toBe(200);
    await ok.body?.cancel();
  });

  it('an upstream that cannot judge the key answers a drop-in 503 with Retry-After; the failure is kept a second, not as a verdict', async () => {
    const b = await start();
    b.sim.faults.script([{ kind: 'http', status: 500 }], { session: 'a-1', endpoint: 'status' });
    const headers = { authorization: `Bearer ${KEY_A}` };
    const r = await fetch(`${b.url}/sessions/a-1/status`, { headers });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('5');
    expect((await r.json()).code).toBe('upstream_unavailable');
    // Asked again at once: the failure is kept (no second upstream call within UNAVAILABLE_KEPT_MS)...
    b.sim.clearRequests();
    expect((await fetch(`${b.url}/sessions/a-1/status`, { headers })).status).toBe(503);
    expect(b.sim.requests().filter((q) => q.target.includes('/sessions/a-1/status'))).toHaveLength(0);
    // ...and only that long: then the upstream is asked, and accepts.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await fetch(`${b.url}/sessions/a-1/status`, { headers })).status).toBe(200);
  });

  it('a keyed viewer of each organisation gets its whole session by SSE, /events and the SDK loop', async () => {
    const b = await start();
    const a = record(`${b.url}/sessions/a-1/events?access_token=${KEY_A}`);
    const bb = record(`${b.url}/sessions/b-1/events`, { headers: { authorization: `Bearer ${KEY_B}` } });
    expect((await a.ended()).last_index).toBe(3);
    expect((await bb.ended()).last_index).toBe(3);
    expect(a.indices()).toEqual([0, 1, 2, 3]);
    const many = recordMany(`${b.url}/events?${sessionQuery(['a-1'])}&access_token=${KEY_A}`, ['a-1']);
    await many.allEnded();
    expect(many.indices('a-1')).toEqual([0, 1, 2, 3]);
    const sdk = await waitForSession(`${b.url}/api/v2`, 'b-1', { apiKey: KEY_B, waitSeconds: 1 });
    expect(sdk.events).toHaveLength(4);
    expect(sdk.status).toBe('completed');
  });
});

describe('UPSTREAM_AUTH_HEADER', () => {
  it('reads the key raw from that header (or access_token) and sends it upstream there', async () => {
    const b = await start({ UPSTREAM_AUTH_HEADER: 'X-API-Key' }, { authHeader: 'x-api-key' });
    b.sim.clearRequests();
    const byHeader = await fetch(`${b.url}/api/v2/sessions/a-1/status`, { headers: { 'x-api-key': KEY_A } });
    expect(byHeader.status).toBe(200);
    const byQuery = record(`${b.url}/sessions/b-1/events?access_token=${KEY_B}`);
    expect((await byQuery.ended()).last_index).toBe(3);
    const sent = b.sim.requests().filter((r) => r.target.includes('/sessions/'));
    expect(sent.length).toBeGreaterThan(0);
    for (const r of sent) {
      expect(r.headers.authorization).toBeUndefined();
      expect([KEY_A, KEY_B]).toContain(r.headers['x-api-key']?.[0]);
    }
    expect((await fetch(`${b.url}/sessions/b-1/status`, { headers: { 'x-api-key': KEY_A } })).status).toBe(404);
  });
});

describe('combined with tokens', () => {
  it('a valid pollcast token is judged by its claims, any other bearer by the upstream', async () => {
    const b = await start({ AUTH_JWT_SECRET: JWT_SECRET, UPSTREAM_API_KEY: OPERATOR }, { apiKey: OPERATOR });
    const forB = await token(['b-1']);
    b.sim.clearRequests();
    // A token for b-1 reads b-1 (no key check), and a key reads its own session.
    expect((await fetch(`${b.url}/sessions/b-1/status`, { headers: { authorization: `Bearer ${forB}` } })).status).toBe(200);
    expect(b.sim.requests().some((r) => (r.headers.authorization ?? []).some((v) => v.includes(forB)))).toBe(false);
    const byToken = record(`${b.url}/sessions/b-1/events?access_token=${forB}`);
    expect((await byToken.ended()).last_index).toBe(3);
    expect((await fetch(`${b.url}/sessions/a-1/changes`, { headers: { authorization: `Bearer ${KEY_A}` } })).status).toBe(200);
    // A valid token short of the session stays a 403 (never asked upstream); a key of another organisation is a 404.
    expect((await fetch(`${b.url}/sessions/a-1/status`, { headers: { authorization: `Bearer ${forB}` } })).status).toBe(403);
    expect((await fetch(`${b.url}/sessions/b-1/status`, { headers: { authorization: `Bearer ${KEY_A}` } })).status).toBe(404);
    expect((await fetch(`${b.url}/sessions/a-1/status`, { headers: { authorization: 'Bearer neither-a-token-nor-a-key' } })).status).toBe(401);
    // An expired pollcast token is refused as a token: it is not sent upstream as if it were a key.
    const expired = await token(['a-1'], { exp: Math.floor(Date.now() / 1000) - 60 });
    b.sim.clearRequests();
    expect((await fetch(`${b.url}/sessions/a-1/status`, { headers: { authorization: `Bearer ${expired}` } })).status).toBe(401);
    expect((await fetch(`${b.url}/sessions/a-1/events?access_token=${expired}`)).status).toBe(401);
    expect(b.sim.requests().filter((r) => JSON.stringify(r).includes(expired))).toEqual([]);
    // In the cookie (read as a token only, never as a key), its fault is named as in the header, not "a key is
    // required" (fuzz audit, 7 Dec 2026); a cookie that is no token at all is told what is wrong with it too.
    for (const [cookie, message] of [[expired, /expired/], ['not.a-jwt', /malformed|invalid/]] as const) {
      const res = await fetch(`${b.url}/sessions/a-1/status`, { headers: { cookie: `pollcast_token=${cookie}` } });
      expect(res.status).toBe(401);
      const { error } = (await res.json()) as { error: string };
      expect(error, cookie).toMatch(message);
      expect(error, cookie).not.toMatch(/upstream key is required/);
    }
  });

  it('without UPSTREAM_API_KEY, a token holder\'s /status on a session with no loop does not refuse a keyed stream opening meanwhile: its keyless first contact (502) is its own', async () => {
    const sim = await createSimulator({ api: 'real', apiKeys: { [KEY_A]: 'org-a' } });
    sim.createSession('kx', { organisation: 'org-a', initialEvents: 2, imageBytes: 0 });
    // Calls with no key are held a second on their way upstream: the keyed opening lands inside that window.
    const proxy = await startKeylessDelayProxy(sim.origin, 1000);
    const server = await startPollcast(loadConfig({ ...ONE_ADDRESS_ENV, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: `${proxy.url}/api/v2`, AUTH: 'upstream', AUTH_JWT_SECRET: JWT_SECRET, UPSTREAM_WAIT_SECONDS: '1' }), { log: silentLogger(), processMetrics: false });
    try {
      const status = fetch(`${server.url}/api/v2/sessions/kx/status`, { headers: { authorization: `Bearer ${await token(['kx'])}` } });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const keyed = record(`${server.url}/sessions/kx/events?access_token=${KEY_A}`);
      try {
        await keyed.until((r) => r.indices().length === 2, 10_000);
      } finally {
        keyed.close();
      }
      expect((await status).status).toBe(502);
    } finally {
      await server.close();
      await proxy.close();
      await sim.close();
    }
  });

  it('a pollcast token put in UPSTREAM_AUTH_HEADER is never sent upstream, to check it or forwarded', async () => {
    const b = await start({ AUTH_JWT_SECRET: JWT_SECRET, UPSTREAM_API_KEY: OPERATOR, UPSTREAM_AUTH_HEADER: 'X-API-Key' }, { apiKey: OPERATOR, authHeader: 'x-api-key' });
    const valid = await token(['a-1']);
    const expired = await token(['a-1'], { exp: Math.floor(Date.now() / 1000) - 60 });
    b.sim.clearRequests();
    for (const t of [valid, expired]) {
      const refused = await fetch(`${b.url}/sessions/a-1/changes`, { headers: { 'x-api-key': t } });
      expect(refused.status).toBe(401);
      // The refusal says where a token goes, and that this header is not one of those places.
      const { error } = (await refused.json()) as { error: string };
      expect(error).toMatch(/Authorization: Bearer/);
      expect(error).toMatch(/not from X-API-Key/);
      expect(error).not.toContain(t);
      // Forwarded without it: the upstream judges the request as one with no key.
      expect((await fetch(`${b.url}/api/v2/sessions?page=1`, { headers: { 'x-api-key': t } })).status).toBe(401);
    }
    // The same expired token in Authorization too: the bearer's own fault is the answer.
    const both = await fetch(`${b.url}/sessions/a-1/changes`, { headers: { authorization: `Bearer ${expired}`, 'x-api-key': expired } });
    expect(both.status).toBe(401);
    expect(((await both.json()) as { error: string }).error).toMatch(/expired/);
    const forwarded = b.sim.requests().filter((r) => r.target.startsWith('/api/v2/sessions?'));
    expect(forwarded).toHaveLength(2);
    for (const r of forwarded) expect(r.headers['x-api-key']).toBeUndefined();
    expect(b.sim.requests().filter((r) => JSON.stringify(r).includes(valid) || JSON.stringify(r).includes(expired))).toEqual([]);
    // A key in that header still works as a key.
    expect((await fetch(`${b.url}/sessions/a-1/changes`, { headers: { 'x-api-key': KEY_A } })).status).toBe(200);
  });
});
