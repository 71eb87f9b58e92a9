/**
 * Subscriber authentication (CONTRACT.md section 4) on a real bridge: HS256
 * only, exp required and honoured, nbf honoured, the `sessions` claim enforced, from the
 * Authorization header or `access_token`, on the stream and the drop-in route,
 * and nothing sent upstream for a refused request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast } from '../../src/server.ts';
import { eventually, record, startBridge, type Bridge } from '../helpers/harness.ts';
import { JWT_SECRET, token } from './helpers.ts';
import { createTokenVerifier } from '../../src/http/auth-token.ts';

let bridge: Bridge;
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  bridge = await startBridge({ AUTH_JWT_SECRET: JWT_SECRET, AUTH: '' });
  bridge.sim.createSession('au-1', { initialEvents: 3, finished: true });
  bridge.sim.createSession('au-2', { initialEvents: 2, finished: true });
  // Never requested with a valid token: the simulator must never hear of it.
  bridge.sim.createSession('au-locked', { initialEvents: 1, finished: true });
});
afterAll(() => bridge?.close());

/** Bad tokens, each made the way an attacker would. */
async function badTokens(): Promise<Array<[string, string]>> {
  const rsa = await generateKeyPair('RS256', { extractable: true });
  const pem = await exportSPKI(rsa.publicKey);
  const claims = { sessions: ['*'] };
  return [
    ['wrong signature', await token(['*'], { secret: 'another-secret-of-enough-length-0123456789' })],
    ['alg none', new UnsecuredJWT(claims).setIssuedAt().setExpirationTime('1h').encode()],
    ['RS256 signed', await new SignJWT(claims).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('1h').sign(rsa.privateKey)],
    ['HS256 keyed with a public key (alg confusion)', await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(pem))],
    ['HS512 with the right secret (algorithm pinned)', await token(['*'], { alg: 'HS512' })],
    ['expired', await token(['*'], { exp: now() - 60 })],
    ['without exp (it would be valid forever)', await token(['*'], { exp: null })],
    ['not yet valid (nbf in the future)', await token(['*'], { nbf: now() + 120 })],
    ['garbage', 'not.a.jwt'],
    ['tampered payload', (await token(['au-2'])).replace(/^([^.]+)\.([^.]+)\./, (_m, h: string) => `${h}.${Buffer.from(JSON.stringify({ sessions: ['*'], exp: now() + 3600 })).toString('base64url')}.`)],
  ];
}

const ROUTES = [
  ['stream', (id: string) => `/sessions/${id}/events`],
  ['changes', (id: string) => `/sessions/${id}/changes`],
] as const;

describe.each(ROUTES)('auth on the %s route', (_name, path) => {
  it('answers 401 JSON with WWW-Authenticate when no token is sent', async () => {
    const res = await fetch(`${bridge.url}${path('au-locked')}`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(((await res.json()) as { error: string }).error).toMatch(/token/);
  });

  it('answers 401 for every forged, expired or premature token, by header and by query', async () => {
    for (const [what, t] of await badTokens()) {
      const byHeader = await fetch(`${bridge.url}${path('au-locked')}`, { headers: { authorization: `Bearer ${t}` } });
      expect(byHeader.status, `${what} (header)`).toBe(401);
      const body = await byHeader.text();
      expect(body, 'the token is never echoed').not.toContain(t);
      const byQuery = await fetch(`${bridge.url}${path('au-locked')}?access_token=${encodeURIComponent(t)}`);
      expect(byQuery.status, `${what} (query)`).toBe(401);
      await byQuery.body?.cancel();
    }
  });

  it('answers 401 for an Authorization header that is not Bearer', async () => {
    for (const value of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer a b', await token(['*'])]) {
      const res = await fetch(`${bridge.url}${path('au-locked')}`, { headers: { authorization: value } });
      expect(res.status, value.slice(0, 20)).toBe(401);
      await res.body?.cancel();
    }
  });

  it('reads the query or cookie token beside an Authorization header that is not Bearer (a page behind HTTP Basic: audit, 7 Dec 2026)', async () => {
    const good = await token(['au-1']);
    const basic = { authorization: 'Basic dXNlcjpwYXNz' };
    // Seen: 401 "Authorization header must be \"Bearer <token>\"" for both, whatever the query or cookie held.
    const byQuery = await fetch(`${bridge.url}${path('au-1')}?access_token=${good}`, { headers: basic });
    expect(byQuery.status).toBe(200);
    await byQuery.body?.cancel();
    const byCookie = await fetch(`${bridge.url}${path('au-1')}`, { headers: { ...basic, cookie: `pollcast_token=${good}` } });
    expect(byCookie.status).toBe(200);
    await byCookie.body?.cancel();
    // A bad token there is still judged as one.
    const bad = await fetch(`${bridge.url}${path('au-1')}?access_token=${await token(['au-2'])}`, { headers: basic });
    expect(bad.status).toBe(403);
    await bad.body?.cancel();
  });

  it('answers 403 for a valid token without that session, or without a sessions claim', async () => {
    for (const t of [await token(['au-2']), await token([]), await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(JWT_SECRET))]) {
      const res = await fetch(`${bridge.url}${path('au-locked')}`, { headers: { authorization: `Bearer ${t}` } });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { code: string }).code).toBe('forbidden');
    }
  });

  it('answers 401 for a sessions claim that is not an array of ids (a malformed token, renewed on 401), and for an iat in the future', async () => {
    const key = new TextEncoder().encode(JWT_SECRET);
    const signed = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(key);
    const cases: Array<[string, string]> = [
      ['a string', await signed({ sessions: 'au-locked' })],
      ['"*"', await signed({ sessions: '*' })],
      ['an object', await signed({ sessions: { 0: 'au-locked' } })],
      ['a number among ids', await signed({ sessions: [1, 'au-locked'] })],
      ['iat an hour ahead', await signed({ sessions: ['*'], iat: Math.floor(Date.now() / 1000) + 3600 })],
    ];
    for (const [name, t] of cases) {
      const res = await fetch(`${bridge.url}${path('au-locked')}`, { headers: { authorization: `Bearer ${t}` } });
      expect(res.status, name).toBe(401);
      expect(((await res.json()) as { error: string }).error, name).toMatch(/"sessions" claim|iat/);
    }
    // Within the clock tolerance an iat a moment ahead is fine (checked without a request: this file's bridge counts none upstream).
    const verifier = createTokenVerifier({ secret: JWT_SECRET });
    await expect(verifier.verify(await signed({ sessions: ['*'], iat: Math.floor(Date.now() / 1000) + 2 }))).resolves.toMatchObject({ sessions: ['*'] });
  });

  it('lets a token naming the session, or ["*"], through by header and by access_token', async () => {
    const named = await token(['au-2', 'au-1']);
    const star = await token(['*']);
    for (const init of [{ headers: { authorization: `Bearer ${named}` } }, { headers: { authorization: `bearer ${star}` } }]) {
      const res = await fetch(`${bridge.url}${path('au-1')}`, init);
      expect(res.status).toBe(200);
      await res.body?.cancel();
    }
    for (const t of [named, star]) {
      const res = await fetch(`${bridge.url}${path('au-1')}?access_token=${t}`);
      expect(res.status).toBe(200);
      await res.body?.cancel();
    }
  });
});

describe('auth with a real EventSource', () => {
  it('streams to a token in access_token and in the Authorization header', async () => {
    const byQuery = record(`${bridge.url}/sessions/au-1/events?access_token=${await token(['au-1'])}`);
    const byHeader = record(`${bridge.url}/sessions/au-1/events`, { headers: { authorization: `Bearer ${await token(['*'])}` } });
    await byQuery.ended();
    await byHeader.ended();
    expect(byQuery.indices()).toEqual([0, 1, 2]);
    expect(byHeader.indices()).toEqual([0, 1, 2]);
  });

  it('gives up for good on 401 (no stream, no retry loop)', async () => {
    const r = record(`${bridge.url}/sessions/au-locked/events`);
    await eventually(() => r.es.readyState === 2, 5000, 'EventSource closed');
    expect(r.messages).toEqual([]);
    r.close();
  });

  it('sent nothing upstream for any refused request', () => {
    const stats = bridge.sim.stats('au-locked');
    expect(stats.status + stats.changes).toBe(0);
  });
});

describe('without AUTH_JWT_SECRET', () => {
  it('the built-in demo (no UPSTREAM_URL) stays open', async () => {
    const server = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent' }), { log: silentLogger(), processMetrics: false });
    try {
      const res = await fetch(`${server.url}/sessions/demo-1/changes?wait_for_seconds=0`);
      expect([200, 204]).toContain(res.status);
      await res.body?.cancel();
    } finally {
      await server.close();
    }
  });

  it('the demo still demands a token once AUTH_JWT_SECRET is set', async () => {
    const server = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', AUTH_JWT_SECRET: JWT_SECRET }), { log: silentLogger(), processMetrics: false });
    try {
      expect((await fetch(`${server.url}/sessions/demo-1/changes`)).status).toBe(401);
      const ok = await fetch(`${server.url}/sessions/demo-1/changes?wait_for_seconds=0&access_token=${await token(['demo-1'])}`);
      expect([200, 204]).toContain(ok.status);
      await ok.body?.cancel();
    } finally {
      await server.close();
    }
  });
});
