/**
 * Identity-provider tokens on a real bridge (CONTRACT.md section 4): keys
 * published by a local JWKS server (node:http, keys from jose), RS256, ES256
 * and EdDSA, rotation by `kid` with a rate-limited refetch, iss/aud, the
 * sessions claim under a custom name, the endpoint down, HS256 beside JWKS,
 * the token cookie, CORS credentials for listed origins only, and the Origin
 * check of a cookie-borne `POST /events`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { eventually, startBridge, type Bridge } from '../helpers/harness.ts';
import { makeKey, sign, startJwksServer, type JwksServer, type TestKey } from '../helpers/jwks.ts';
import { JWT_SECRET, token as hsToken } from './helpers.ts';
import { createJwtAuthorizer, createTokenVerifier, JWKS_FAILED_REST_NO_KEYS_MS, JWKS_MAX_BYTES, JWKS_MAX_WAIT_MS, JWKS_TIMEOUT_MS } from '../../src/http/auth-token.ts';
import { UnauthorizedError } from '../../src/errors.ts';
import { captureLog } from '../helpers/log-capture.ts';

const ISSUER = 'https://idp.example.com/';
const AUDIENCE = 'pollcast-test';
const CLAIM = 'https://app.example.com/sessions';
const APP = 'http://localhost:5173';
const EVIL = 'https://evil.example.net';
const COOKIE = 'pc_token';
/** The shared bridge's refetch cooldown: long enough that the rotation test's flood falls inside one on a loaded machine. */
const COOLDOWN_SECONDS = 3;

let rsa: TestKey;
let ec: TestKey;
let ed: TestKey;
let jwks: JwksServer;
let bridge: Bridge;

/** A token from the provider: right issuer, audience and claim unless overridden. */
function idpToken(key: TestKey, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  return sign(key, { iss: ISSUER, aud: AUDIENCE, [CLAIM]: ['jw-1', 'jw-2'], ...claims }, header);
}

/** The status of a stream open on `b` (the shared bridge unless named), its body dropped. */
async function openStatus(path: string, headers: Record<string, string> = {}, b: Bridge = bridge): Promise<number> {
  const res = await fetch(`${b.url}${path}`, { headers });
  await res.body?.cancel();
  return res.status;
}
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

beforeAll(async () => {
  [rsa, ec, ed] = await Promise.all([makeKey('RS256', 'rsa-1'), makeKey('ES256', 'ec-1'), makeKey('EdDSA', 'ed-1')]);
  jwks = await startJwksServer([rsa, ec, ed]);
  bridge = await startBridge({
    AUTH: '',
    AUTH_JWKS_URL: jwks.url,
    AUTH_JWT_ISSUER: ISSUER,
    AUTH_JWT_AUDIENCE: AUDIENCE,
    AUTH_JWT_SESSIONS_CLAIM: CLAIM,
    AUTH_JWT_SECRET: JWT_SECRET,
    AUTH_JWKS_COOLDOWN_SECONDS: String(COOLDOWN_SECONDS),
    AUTH_COOKIE_NAME: COOKIE,
    CORS_ORIGINS: APP,
  });
  bridge.sim.createSession('jw-1', { initialEvents: 2, finished: true });
  bridge.sim.createSession('jw-2', { initialEvents: 1, finished: true });
});
afterAll(async () => {
  await bridge?.close();
  await jwks?.close();
});

describe('JWKS tokens', () => {
  it('accepts RS256, ES256 and EdDSA tokens signed by published keys, by header, query and cookie', async () => {
    for (const key of [rsa, ec, ed]) {
      const t = await idpToken(key);
      expect(await openStatus('/sessions/jw-1/events', bearer(t)), key.alg).toBe(200);
      expect(await openStatus(`/sessions/jw-1/events?access_token=${t}`), key.alg).toBe(200);
      expect(await openStatus('/sessions/jw-1/events', { cookie: `other=1; ${COOKIE}=${t}` }), key.alg).toBe(200);
      expect(await openStatus('/sessions/jw-1/changes', bearer(t)), key.alg).toBe(200);
    }
  });

  it('reads the sessions claim under its configured name, and ignores a `sessions` claim then', async () => {
    expect(await openStatus('/sessions/jw-2/events', bearer(await idpToken(ec, { [CLAIM]: ['jw-1'] })))).toBe(403);
    expect(await openStatus('/sessions/jw-2/events', bearer(await idpToken(ec, { [CLAIM]: ['*'] })))).toBe(200);
    expect(await openStatus('/sessions/jw-2/events', bearer(await idpToken(ec, { [CLAIM]: undefined, sessions: ['*'] })))).toBe(403);
    const multi = await fetch(`${bridge.url}/events?sessions=jw-1,jw-2`, { headers: bearer(await idpToken(ed)) });
    expect(multi.status).toBe(200);
    await multi.body?.cancel();
  });

  it('keeps HS256 tokens working beside the JWKS keys (chosen by alg)', async () => {
    // An HS256 token carries its sessions under the configured claim too.
    const t = await new SignJWT({ [CLAIM]: ['jw-1'] }).setProtectedHeader({ alg: 'HS256' }).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('1h').sign(new TextEncoder().encode(JWT_SECRET));
    expect(await openStatus('/sessions/jw-1/events', bearer(t))).toBe(200);
    // iss and aud bind HS256 tokens as well.
    expect(await openStatus('/sessions/jw-1/events', bearer(await hsToken(['*'])))).toBe(401);
  });

  it('answers 401 for a wrong iss or aud, an unknown kid, alg none, no exp, and HS256 keyed with the public key', async () => {
    const stranger = await makeKey('RS256', 'stranger');
    const pem = await exportSPKI(rsa.publicKey);
    const rs384 = await generateKeyPair('RS384');
    const bad: Array<[string, string]> = [
      ['wrong iss', await idpToken(rsa, { iss: 'https://other-idp.example.com/' })],
      ['wrong aud', await idpToken(rsa, { aud: 'someone-else' })],
      ['no iss', await idpToken(rsa, { iss: undefined })],
      ['unknown kid', await idpToken(stranger)],
      ['known kid, other key', await idpToken(stranger, {}, { kid: rsa.kid })],
      ['alg none', new UnsecuredJWT({ iss: ISSUER, aud: AUDIENCE, [CLAIM]: ['*'] }).setExpirationTime('1h').encode()],
      ['no exp', await new SignJWT({ iss: ISSUER, aud: AUDIENCE, [CLAIM]: ['*'] }).setProtectedHeader({ alg: 'RS256', kid: rsa.kid }).sign(rsa.privateKey)],
      ['expired', await idpToken(rsa, { exp: Math.floor(Date.now() / 1000) - 30 })],
      ['HS256 keyed with the RSA public key (alg confusion)', await new SignJWT({ iss: ISSUER, aud: AUDIENCE, [CLAIM]: ['*'] }).setProtectedHeader({ alg: 'HS256', kid: rsa.kid }).setExpirationTime('1h').sign(new TextEncoder().encode(pem))],
      ['RS384 (not pinned)', await new SignJWT({ iss: ISSUER, aud: AUDIENCE, [CLAIM]: ['*'] }).setProtectedHeader({ alg: 'RS384', kid: rsa.kid }).setExpirationTime('1h').sign(rs384.privateKey)],
    ];
    for (const [what, t] of bad) {
      const res = await fetch(`${bridge.url}/sessions/jw-1/events`, { headers: bearer(t) });
      expect(res.status, what).toBe(401);
      expect(((await res.json()) as { code: string }).code, what).toBe('unauthorized');
    }
  });

  it('accepts a key rotated in just after a fetch (the token waits for the next fetch, not refused), and a flood of made-up kids costs one fetch per cooldown', async () => {
    // A fetch now (a made-up kid once the last fetch is older than the cooldown), then the rotation right after it.
    await new Promise((r) => setTimeout(r, COOLDOWN_SECONDS * 1000 + 100));
    const stranger = await makeKey('ES256', 'made-up');
    const before = jwks.requests;
    expect(await openStatus('/sessions/jw-1/events', bearer(await idpToken(stranger))), 'a made-up kid: 401 after a fetch').toBe(401);
    expect(jwks.requests).toBe(before + 1);
    const rotated = await makeKey('ES256', 'ec-2');
    jwks.publish([rsa, ec, ed, rotated]);
    const startedMs = Date.now();
    expect(await openStatus('/sessions/jw-1/events', bearer(await idpToken(rotated))), 'the rotated key, moments after the fetch').toBe(200);
    expect(Date.now() - startedMs, 'it waited for the cooldown, no longer').toBeLessThan(COOLDOWN_SECONDS * 1000 + 2000);
    expect(jwks.requests, 'one fetch for it').toBe(before + 2);
    // Within the next cooldown, ten made-up kids at once wait for one shared fetch and are refused after it.
    const flood = await Promise.all(Array.from({ length: 10 }, async () => openStatus('/sessions/jw-1/events', bearer(await idpToken(stranger)))));
    expect(flood).toEqual(Array(10).fill(401));
    expect(jwks.requests, 'one fetch for the flood').toBe(before + 3);
    // The known ones need none.
    expect(await openStatus('/sessions/jw-1/events', bearer(await idpToken(rotated)))).toBe(200);
    expect(await openStatus('/sessions/jw-1/events', bearer(await idpToken(rsa)))).toBe(200);
    expect(jwks.requests).toBe(before + 3);
  }, 30_000);
});

describe('a token several keys of the set match (audit, 7 Dec 2026)', () => {
  it('is verified with each in turn: no kid while two RSA keys are published (a rotation), or one kid listed twice', async () => {
    const [next, other] = await Promise.all([makeKey('RS256', 'rsa-next'), makeKey('RS256', 'rsa-other')]);
    // A 1024-bit RSA key first (jose refuses to verify with one: a key it cannot use gives way to the next, not the
    // token), rsa-1 listed twice (a provider's mistake, or two views of one key), and a second RSA key.
    const weakPair = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const weak = { ...(await exportJWK(weakPair.publicKey)), kid: 'rsa-weak', alg: 'RS256', use: 'sig' };
    const idp = await startJwksServer([{ ...rsa, kid: 'rsa-weak', jwk: weak }, rsa, next, ec, { ...rsa, jwk: { ...rsa.jwk } }]);
    const b = await startBridge({ AUTH: '', AUTH_JWKS_URL: idp.url, AUTH_JWT_SESSIONS_CLAIM: CLAIM });
    try {
      b.sim.createSession('jm-1', { initialEvents: 1, finished: true });
      const status = (t: string) => openStatus('/sessions/jm-1/events', bearer(t), b);
      const claims = { [CLAIM]: ['jm-1'] };
      // Seen: 401 "access token invalid" for each of the first three (jose's JWKSMultipleMatchingKeys).
      expect(await status(await sign(rsa, claims, { kid: undefined }))).toBe(200);
      expect(await status(await sign(next, claims, { kid: undefined }))).toBe(200);
      expect(await status(await sign(rsa, claims))).toBe(200);
      // Matching keys that all fail to verify it, a key not published: still refused.
      expect(await status(await sign(other, claims, { kid: undefined }))).toBe(401);
      expect(await status(await sign(other, claims, { kid: 'rsa-1' }))).toBe(401);
      // One EC key published: a token without kid was accepted before too.
      expect(await status(await sign(ec, claims, { kid: undefined }))).toBe(200);
    } finally {
      await b.close();
      await idp.close();
    }
  });
});

describe('the wait for a kid the key set lacks', () => {
  it('is taken once by a request that asks twice (as a token, then "is it ours?"), and then once per fetched set for the same foreign kid', async () => {
    const idp = await startJwksServer([rsa]);
    try {
      const verifier = createTokenVerifier({ jwksUrl: idp.url, jwksCooldownMs: 1000 });
      expect(await verifier.isValid(await sign(rsa, { sessions: ['*'] }))).toBe(true);
      expect(idp.requests).toBe(1);
      const foreign = await sign(await makeKey('RS256', 'someone-elses'), { sessions: ['*'] });
      const started = performance.now();
      expect(await verifier.isValid(foreign)).toBe(false);
      const waited = performance.now() - started;
      expect(waited, 'the first ask waited for the next fetch').toBeGreaterThanOrEqual(500);
      expect(idp.requests).toBe(2);
      const again = performance.now();
      expect(await verifier.isOurs(foreign)).toBe(false);
      expect(await verifier.isValid(foreign)).toBe(false);
      expect(performance.now() - again, 'the set fetched for it already lacked the kid: no second wait').toBeLessThan(300);
      expect(idp.requests).toBe(2);
    } finally {
      await idp.close();
    }
  });

  it('is taken once by a forwarded request holding ten foreign JWTs of kids the set lacks (each judged: is it pollcast\'s?)', async () => {
    const KEY = 'sk-caller-Fw3Jk9Qa';
    const idp = await startJwksServer([rsa]);
    const b = await startBridge({ AUTH: 'upstream', AUTH_JWKS_URL: idp.url, AUTH_JWKS_COOLDOWN_SECONDS: '1' }, { api: 'real', apiKeys: { [KEY]: 'org-1' } });
    try {
      b.sim.createSession('jf-1', { initialEvents: 1, finished: true, organisation: 'org-1' });
      // A fetch just now (for pollcast's own token, cut out): every kid the set lacks waits for the next one (up to the 1 s cooldown).
      const warm = await fetch(`${b.url}/api/v2/sessions`, { headers: { ...bearer(KEY), 'x-warm': await sign(rsa, { sessions: ['jf-1'] }) } });
      expect(warm.status).toBe(200);
      await warm.body?.cancel();
      const fetchedBefore = idp.requests;
      expect(fetchedBefore).toBe(1);
      const foreign = await Promise.all(Array.from({ length: 10 }, async (_, i) => sign(await makeKey('RS256', `other-idp-${i}`), { sub: `u${i}` })));
      const headers: Record<string, string> = { ...bearer(KEY) };
      foreign.forEach((t, i) => (headers[`x-other-idp-${i}`] = t));
      b.sim.clearRequests();
      const res = await fetch(`${b.url}/api/v2/sessions`, { headers });
      expect(res.status).toBe(200);
      await res.body?.cancel();
      // One fetch for the ten (judged one after another, each waited for a fetch of its own: ten).
      expect(idp.requests - fetchedBefore, 'key-set fetches for the request').toBe(1);
      // Not pollcast's (the set, reachable, lacks their kids; no issuer or audience names pollcast): forwarded.
      const seen = b.sim.requests().filter((r) => r.target === '/api/v2/sessions');
      expect(seen).toHaveLength(1);
      expect(foreign.map((_, i) => seen[0]!.headers[`x-other-idp-${i}`])).toEqual(foreign.map((t) => [t]));
    } finally {
      await b.close();
      await idp.close();
    }
  }, 30_000);

  it('is not taken when the cooldown left is longer than JWKS_MAX_WAIT_MS: refused at once', async () => {
    const idp = await startJwksServer([rsa]);
    try {
      const verifier = createTokenVerifier({ jwksUrl: idp.url, jwksCooldownMs: JWKS_MAX_WAIT_MS + 30_000 });
      expect(await verifier.isValid(await sign(rsa, { sessions: ['*'] }))).toBe(true);
      const started = performance.now();
      expect(await verifier.isValid(await sign(await makeKey('RS256', 'not-yet'), { sessions: ['*'] }))).toBe(false);
      expect(performance.now() - started).toBeLessThan(1000);
      expect(idp.requests).toBe(1);
    } finally {
      await idp.close();
    }
  });
});

describe('combined with AUTH=upstream: a token whose key cannot be checked is refused, never sent upstream as a key', () => {
  const KEY = 'sk-caller-Pw7Rt2Lm';
  const sawToken = (sim: Bridge['sim'], t: string) => sim.requests().filter((r) => JSON.stringify(r).includes(t)).map((r) => `${r.method} ${r.target}`);

  it('refuses a token naming pollcast\'s issuer signed by a key not yet published, on the stream and forwarded routes', async () => {
    const idp = await startJwksServer([rsa]);
    const b = await startBridge({ AUTH: 'upstream', AUTH_JWKS_URL: idp.url, AUTH_JWT_ISSUER: ISSUER, AUTH_JWT_AUDIENCE: AUDIENCE, AUTH_JWT_SESSIONS_CLAIM: CLAIM, AUTH_JWKS_COOLDOWN_SECONDS: '1' }, { api: 'real', apiKeys: { [KEY]: 'org-1' } });
    try {
      b.sim.createSession('jc-1', { initialEvents: 1, finished: true, organisation: 'org-1' });
      expect(await openStatus('/sessions/jc-1/events', bearer(KEY), b), 'the caller\'s own key').toBe(200);
      expect(await openStatus('/sessions/jc-1/events', bearer(await idpToken(rsa, { [CLAIM]: ['jc-1'] })), b), 'a published key').toBe(200);
      // The provider signs with a key it publishes only later: pollcast fetches the set, which lacks it.
      const early = await makeKey('RS256', 'rsa-early');
      const t = await idpToken(early, { [CLAIM]: ['jc-1'] });
      expect(await openStatus('/sessions/jc-1/events', bearer(t), b)).toBe(401);
      // Forwarded, it is cut out: the upstream sees the request without it (and answers its own 401).
      b.sim.clearRequests();
      const forwarded = await fetch(`${b.url}/api/v2/sessions`, { headers: bearer(t) });
      expect(forwarded.status).toBe(401);
      await forwarded.body?.cancel();
      expect(b.sim.requests().map((r) => [r.target, r.headers.authorization])).toEqual([['/api/v2/sessions', undefined]]);
      expect(sawToken(b.sim, t), 'requests that carried the token upstream').toEqual([]);
      // Named by its audience alone, the same.
      const byAudience = await idpToken(early, { iss: 'https://another-idp.example.com/', [CLAIM]: ['jc-1'] });
      expect(await openStatus('/sessions/jc-1/events', bearer(byAudience), b)).toBe(401);
      expect(sawToken(b.sim, byAudience)).toEqual([]);
      // A JWT that names neither is a foreign credential: the upstream judges it.
      const foreign = await sign(early, { iss: 'https://another-idp.example.com/', aud: 'another-api', [CLAIM]: ['*'] });
      expect(await openStatus('/sessions/jc-1/events', bearer(foreign), b)).toBe(401);
      expect(sawToken(b.sim, foreign).length, 'checked with the upstream').toBeGreaterThan(0);
    } finally {
      await b.close();
      await idp.close();
    }
  }, 20_000);

  it('with no issuer or audience set, takes any token of a JWKS algorithm for ours while the key set cannot be fetched and lacks its key', async () => {
    const idp = await startJwksServer([rsa]);
    try {
      const verifier = createTokenVerifier({ jwksUrl: idp.url, jwksCooldownMs: 1000 });
      expect(await verifier.isOurs(await sign(rsa, { sessions: ['*'] }))).toBe(true);
      const rotated = await makeKey('RS256', 'rsa-rotated');
      // Reachable, the set's verdict stands: a kid it lacks is not ours.
      await new Promise((r) => setTimeout(r, 1100));
      expect(await verifier.isOurs(await sign(rotated, { sessions: ['*'] }))).toBe(false);
      await idp.close();
      await new Promise((r) => setTimeout(r, 1100));
      // Down: the last set lacks the kid, but it may have been rotated in meanwhile.
      expect(await verifier.isOurs(await sign(await makeKey('ES256', 'ec-rotated'), { sessions: ['*'] }))).toBe(true);
      expect(await verifier.isOurs(await sign(rotated, { sessions: ['*'] })), 'asked again while the endpoint rests').toBe(true);
      expect(await verifier.isOurs('not.a.jwt'), 'not a JWT').toBe(false);
    } finally {
      await idp.close();
    }
  }, 20_000);

  it('with an issuer set, an endpoint down refuses no foreign JWT: only tokens naming pollcast are its own', async () => {
    const idp = await startJwksServer([rsa]);
    try {
      const verifier = createTokenVerifier({ jwksUrl: idp.url, jwksCooldownMs: 1000, issuer: ISSUER });
      expect(await verifier.isOurs(await sign(rsa, { iss: ISSUER, sessions: ['*'] }))).toBe(true);
      await idp.close();
      await new Promise((r) => setTimeout(r, 1100));
      const other = await makeKey('RS256', 'upstream-idp');
      expect(await verifier.isOurs(await sign(other, { iss: 'https://upstream-idp.example.com/', sessions: ['*'] })), 'an upstream key that is a JWT').toBe(false);
      expect(await verifier.isOurs(await sign(other, { iss: ISSUER, sessions: ['*'] })), 'naming pollcast\'s issuer').toBe(true);
    } finally {
      await idp.close();
    }
  }, 20_000);
});

describe('the JWKS endpoint down', () => {
  it('keeps known keys working and refuses unknown ones with 401, fresh cache or stale', async () => {
    const idp = await startJwksServer([rsa]);
    // Keys go stale after a second, and unknown kids may refetch after one: every token below tries the endpoint.
    const b = await startBridge({ AUTH: '', AUTH_JWKS_URL: idp.url, AUTH_JWT_SESSIONS_CLAIM: CLAIM, AUTH_JWKS_CACHE_SECONDS: '1', AUTH_JWKS_COOLDOWN_SECONDS: '1' });
    try {
      b.sim.createSession('jd-1', { initialEvents: 1, finished: true });
      const known = await sign(rsa, { [CLAIM]: ['*'] });
      const unknown = await sign(await makeKey('RS256', 'rsa-new'), { [CLAIM]: ['*'] });
      const status = async (t: string) => {
        const res = await fetch(`${b.url}/sessions/jd-1/events`, { headers: bearer(t) });
        await res.body?.cancel();
        return res.status;
      };
      expect(await status(known)).toBe(200);
      await idp.close();
      expect(await status(known)).toBe(200);
      expect(await status(unknown)).toBe(401);
      await new Promise((r) => setTimeout(r, 1500));
      // Stale now: the refresh fails, the last keys fetched still decide.
      expect(await status(known)).toBe(200);
      expect(await status(unknown)).toBe(401);
      expect(await status(known)).toBe(200);
    } finally {
      await b.close();
    }
  });

  it('answers from the last keys without asking a hanging endpoint again for a while (JWKS_FAILED_REST_MS)', async () => {
    const idp = await startJwksServer([rsa]);
    try {
      const authorize = createJwtAuthorizer({ jwksUrl: idp.url, jwksCacheMaxAgeMs: 100, jwksCooldownMs: 60_000 });
      const ask = async (t: string) => authorize({ authorization: `Bearer ${t}`, accessToken: undefined, cookie: undefined }, ['x']);
      const known = await sign(rsa, { sessions: ['*'] });
      await ask(known);
      expect(idp.requests).toBe(1);
      idp.stall(true);
      await new Promise((r) => setTimeout(r, 200));
      // Stale: this one waits for the fetch to time out, then the last keys decide.
      await expect(ask(known)).resolves.toMatchObject({ scope: { kind: 'all' } });
      expect(idp.requests).toBe(2);
      for (let i = 0; i < 3; i++) await expect(ask(known)).resolves.toMatchObject({ scope: { kind: 'all' } });
      await expect(ask(await sign(await makeKey('RS256', 'rsa-x'), { sessions: ['*'] }))).rejects.toBeInstanceOf(UnauthorizedError);
      expect(idp.requests).toBe(2);
    } finally {
      await idp.close();
    }
  }, 20_000);

  it('refuses tokens at once while an endpoint that hung before any key was fetched rests (JWKS_FAILED_REST_NO_KEYS_MS), then asks it again', async () => {
    const idp = await startJwksServer([rsa]);
    try {
      idp.stall(true);
      const captured = captureLog('info');
      const authorize = createJwtAuthorizer({ jwksUrl: idp.url, log: captured.log });
      const ask = async (t: string) => authorize({ authorization: `Bearer ${t}`, accessToken: undefined, cookie: undefined }, ['x']);
      const known = await sign(rsa, { sessions: ['*'] });
      // The first waits for the fetch to time out.
      await expect(ask(known)).rejects.toBeInstanceOf(UnauthorizedError);
      expect(idp.requests).toBe(1);
      // The next ones are refused without asking (each would wait JWKS_TIMEOUT_MS, 5 s, otherwise).
      const t0 = performance.now();
      for (let i = 0; i < 3; i++) await expect(ask(known)).rejects.toBeInstanceOf(UnauthorizedError);
      expect(performance.now() - t0).toBeLessThan(JWKS_TIMEOUT_MS);
      expect(idp.requests).toBe(1);
      idp.stall(false);
      await new Promise((r) => setTimeout(r, JWKS_FAILED_REST_NO_KEYS_MS));
      await expect(ask(known)).resolves.toMatchObject({ scope: { kind: 'all' } });
      // Said once each way, with the endpoint's origin only.
      expect(captured.lines().map((l) => [l.level, l.msg.split(':')[0]])).toEqual([[40, 'JWKS endpoint cannot be fetched'], [30, 'JWKS endpoint answers again']]);
      expect(captured.text()).not.toContain('.well-known');
    } finally {
      await idp.close();
    }
  }, 30_000);

  it('reads a key set of at most JWKS_MAX_BYTES: a bigger one, with its length declared or not, is cut off and counts as a failed fetch (401)', async () => {
    /** An endpoint whose key set holds `rsa`'s key padded to `bytes`, sent in 64 KB writes; `declare`: with Content-Length. */
    const padded = async (bytes: number, declare: boolean) => {
      const body = Buffer.from(JSON.stringify({ keys: [rsa.jwk], pad: 'x'.repeat(bytes) }));
      let cut = false;
      const server = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', ...(declare ? { 'content-length': body.length } : {}) });
        res.on('close', () => (cut = !res.writableFinished));
        let at = 0;
        const more = () => {
          while (at < body.length && !res.destroyed) {
            const ok = res.write(body.subarray(at, (at += 65_536)));
            if (!ok) return void res.once('drain', more);
          }
          if (at >= body.length) res.end();
        };
        more();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
      return { url, cut: () => cut, close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) };
    };
    const t = await sign(rsa, { sessions: ['*'] });
    const ask = (url: string) => createJwtAuthorizer({ jwksUrl: url })({ authorization: `Bearer ${t}`, accessToken: undefined, cookie: undefined }, ['x']);
    for (const declare of [true, false]) {
      const huge = await padded(40 * 1024 * 1024, declare);
      try {
        await expect(ask(huge.url), `declared ${declare}`).rejects.toBeInstanceOf(UnauthorizedError);
        await eventually(async () => huge.cut(), 5000, 'the endpoint sees its answer cut off');
      } finally {
        await huge.close();
      }
    }
    // Under the bound (half of it): read, and its key accepted.
    const fine = await padded(JWKS_MAX_BYTES / 2, false);
    try {
      await expect(ask(fine.url)).resolves.toMatchObject({ scope: { kind: 'all' } });
    } finally {
      await fine.close();
    }
  }, 30_000);

  it('refuses every token with 401 when no key could ever be fetched', async () => {
    const idp = await startJwksServer([rsa]);
    const url = idp.url;
    await idp.close();
    const authorize = createJwtAuthorizer({ jwksUrl: url });
    const t = await sign(rsa, { sessions: ['*'] });
    await expect(authorize({ authorization: `Bearer ${t}`, accessToken: undefined, cookie: undefined }, ['x'])).rejects.toBeInstanceOf(UnauthorizedError);
  });
});

describe('the token cookie and CORS credentials', () => {
  it('takes the token from the header first, then the query, then the cookie', async () => {
    const good = await idpToken(rsa);
    const stale = await idpToken(rsa, { exp: Math.floor(Date.now() / 1000) - 30 });
    expect(await openStatus('/sessions/jw-1/events', { ...bearer(stale), cookie: `${COOKIE}=${good}` })).toBe(401);
    expect(await openStatus(`/sessions/jw-1/events?access_token=${stale}`, { cookie: `${COOKIE}=${good}` })).toBe(401);
    expect(await openStatus(`/sessions/jw-1/events?access_token=${good}`, { cookie: `${COOKIE}=${stale}` })).toBe(200);
    // Another cookie's name is not read.
    expect(await openStatus('/sessions/jw-1/events', { cookie: `pollcast_token=${good}` })).toBe(401);
  });

  it('answers Access-Control-Allow-Credentials to listed origins only: stream head, other routes, preflight', async () => {
    const t = await idpToken(rsa);
    for (const path of ['/sessions/jw-1/events', '/sessions/jw-1/changes', '/events?sessions=jw-1']) {
      const ok = await fetch(`${bridge.url}${path}`, { headers: { origin: APP, cookie: `${COOKIE}=${t}` } });
      expect(ok.status, path).toBe(200);
      expect(ok.headers.get('access-control-allow-origin'), path).toBe(APP);
      expect(ok.headers.get('access-control-allow-credentials'), path).toBe('true');
      await ok.body?.cancel();
      const foreign = await fetch(`${bridge.url}${path}`, { headers: { origin: EVIL, cookie: `${COOKIE}=${t}` } });
      expect(foreign.headers.get('access-control-allow-origin'), path).toBeNull();
      expect(foreign.headers.get('access-control-allow-credentials'), path).toBeNull();
      await foreign.body?.cancel();
    }
    const pre = (origin: string) => fetch(`${bridge.url}/events`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
    const allowed = await pre(APP);
    expect(allowed.headers.get('access-control-allow-credentials')).toBe('true');
    expect((await pre(EVIL)).headers.get('access-control-allow-credentials')).toBeNull();
    // A refusal is readable by a listed origin too (the client learns it was a 401).
    const refused = await fetch(`${bridge.url}/sessions/jw-1/events`, { headers: { origin: APP } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-credentials')).toBe('true');
  });

  it('never allows credentials with CORS_ORIGINS=*', async () => {
    const b = await startBridge({ CORS_ORIGINS: '*' });
    try {
      b.sim.createSession('jc-1', { initialEvents: 1, finished: true });
      for (const path of ['/sessions/jc-1/events', '/sessions/jc-1/changes']) {
        const res = await fetch(`${b.url}${path}`, { headers: { origin: APP } });
        expect(res.headers.get('access-control-allow-origin')).toBe('*');
        expect(res.headers.get('access-control-allow-credentials')).toBeNull();
        await res.body?.cancel();
      }
      const pre = await fetch(`${b.url}/events`, { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'POST' } });
      expect(pre.headers.get('access-control-allow-credentials')).toBeNull();
    } finally {
      await b.close();
    }
  });

  it('refuses a cookie-borne POST /events from a foreign origin, and lets the same or a listed origin through', async () => {
    const t = await idpToken(rsa);
    const post = async (headers: Record<string, string>) => {
      const res = await fetch(`${bridge.url}/events`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ sessions: ['jw-1'] }) });
      await res.body?.cancel();
      return res.status;
    };
    expect(await post({ cookie: `${COOKIE}=${t}`, origin: EVIL })).toBe(403);
    expect(await post({ cookie: `${COOKIE}=${t}`, origin: 'null' })).toBe(403);
    expect(await post({ cookie: `${COOKIE}=${t}`, origin: APP })).toBe(200);
    expect(await post({ cookie: `${COOKIE}=${t}`, origin: bridge.url })).toBe(200);
    // A token the page put in a header is no ambient credential: a foreign origin may send it.
    expect(await post({ ...bearer(t), cookie: `${COOKIE}=${t}`, origin: EVIL })).toBe(200);
  });
});
