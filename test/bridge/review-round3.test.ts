/**
 * Regression tests for the third review's findings (the pass-through, callers'
 * upstream keys, tokens, the Durable Streams route), each reproducing what was
 * seen on real sockets against the real-API simulator.
 */
import { createServer } from 'node:http';
import { connect as h2connect } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { startBridge, type Bridge } from '../helpers/harness.ts';
import { h2request } from '../helpers/h2.ts';
import { JWT_SECRET, rawRequest, token } from '../security/helpers.ts';
import { KEY_A, startGateway } from '../forward/helpers.ts';
import { captureLog } from '../helpers/log-capture.ts';

const bridges: Bridge[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(bridges.splice(0).map((b) => b.close()));
  for (const c of cleanups.splice(0)) await c();
});

/** Sends a raw GET for `target` and resolves with the status line once the head arrived (streams stay open otherwise). */
function rawHead(baseUrl: string, target: string, timeoutMs = 5000): Promise<string> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no head within ${timeoutMs} ms for ${target}`));
    }, timeoutMs);
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (!got.includes('\r\n\r\n')) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(got.slice(0, got.indexOf('\r\n')));
    });
    socket.on('error', () => {});
    socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  });
}

/** What the upstream received besides the loops' own changes/status calls. */
const forwarded = (b: Bridge) => b.sim.requests().filter((r) => !/\/(changes|status)(\?|$)/.test(r.target));

describe('the pass-through never forwards a pollcast token', () => {
  it('not as a second access_token, nor in a second Authorization header, nor after a tab', async () => {
    const b = await startGateway({ AUTH: '', AUTH_JWT_SECRET: JWT_SECRET, PASSTHROUGH: 'true' });
    bridges.push(b);
    const jwt = await token(['*']);
    const sig = jwt.split('.')[2]!;
    // Seen: the first access_token alone was judged, so a token in the second one went upstream.
    b.sim.clearRequests();
    const res = await fetch(`${b.url}/api/v2/sessions?access_token=junk&access_token=${jwt}&size=1`, { headers: { authorization: `Bearer ${KEY_A}` } });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    // Seen: two Authorization lines read as one joined value, which was no "Bearer <token>", so both went upstream.
    const twice = await rawRequest(b.url, `GET /api/v2/sessions?size=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nAuthorization: Bearer ${jwt}\r\nConnection: close\r\n\r\n`);
    expect(twice.status).toBeGreaterThan(0);
    // Seen: "bearer<TAB><token>" did not match the bearer pattern and went upstream as it was.
    const tab = await rawRequest(b.url, `GET /api/v2/sessions?size=1 HTTP/1.1\r\nHost: x\r\nAuthorization: bearer\t${jwt}\r\nConnection: close\r\n\r\n`);
    expect(tab.status).toBeGreaterThan(0);
    const seen = forwarded(b);
    expect(seen.length).toBe(3);
    for (const r of seen) expect(JSON.stringify(r)).not.toContain(sig);
    // The rest of the query still reaches the upstream as sent.
    expect(seen[0]!.target).toBe('/api/v2/sessions?size=1');
  });
});

describe('the pass-through answer', () => {
  it("keeps the upstream's Vary beside pollcast's own (CORS) Vary: Origin", async () => {
    // An upstream whose answer varies by encoding (the simulator sends no Vary).
    const upstream = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', vary: 'Accept-Encoding' });
      res.end('{"items":[]}');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/api/v2`, AUTH: 'none', LOG_LEVEL: 'silent', CORS_ORIGINS: 'https://app.example' });
    const server = await startPollcast(config, { log: silentLogger(), processMetrics: false });
    cleanups.push(async () => {
      await server.close();
      upstream.closeAllConnections();
      await new Promise((r) => upstream.close(r));
    });
    const res = await fetch(`${server.url}/api/v2/sessions`, { headers: { origin: 'https://app.example' } });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    // Seen: "Origin" alone: pollcast's CORS header replaced the upstream's, so a cache would mix encodings.
    const vary = (res.headers.get('vary') ?? '').split(',').map((v) => v.trim().toLowerCase());
    expect(vary).toEqual(expect.arrayContaining(['accept-encoding', 'origin']));
  });
});

describe('the pass-through for HTTP/2 callers', () => {
  it('cookies sent in several fields reach the HTTP/1.1 upstream in one Cookie header, the pollcast one cut out', async () => {
    const b = await startGateway({ AUTH: 'upstream', AUTH_JWT_SECRET: JWT_SECRET });
    bridges.push(b);
    const jwt = await token(['*']);
    const session = h2connect(b.url);
    cleanups.push(async () => void session.close());
    b.sim.clearRequests();
    // HTTP/2 clients (browsers included) may send each cookie in a field of its own (RFC 9113 §8.2.3).
    const req = h2request(session, '/api/v2/sessions?size=1', { authorization: `Bearer ${KEY_A}`, cookie: ['theme=dark', `pollcast_token=${jwt}`, 'lang=fr'] as unknown as string });
    expect((await req.headers)[':status']).toBe(200);
    await req.done();
    const [seen] = forwarded(b);
    // Seen: two Cookie headers on the HTTP/1.1 request (RFC 6265 §5.4 allows one; servers read the first only).
    expect(seen!.headers.cookie).toEqual(['theme=dark; lang=fr']);
  });
});

describe('keys stay out of the debug log', () => {
  it('a raw "#" in the request target is refused on every route (400, nothing forwarded), and the key after it is not logged', async () => {
    const KEY = 'sk-round3-hash-Qm7Tz2Lp9Wx4';
    const sim: Simulator = await createSimulator({ api: 'real', apiKeys: { [KEY]: 'org-a' } });
    sim.createSession('h1', { organisation: 'org-a', initialEvents: 2, finished: true });
    const logged = captureLog('debug');
    const { log } = logged;
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH: 'upstream', LOG_LEVEL: 'debug' });
    const server: PollcastServer = await startPollcast(config, { log, processMetrics: false });
    cleanups.push(async () => {
      await server.close();
      await sim.close();
    });
    // Browsers never send a fragment; a raw client may. It is refused on every route (a secrets audit, 7 Dec 2026:
    // pollcast's routes read `?access_token=k#rest` as the key `k`, the forwarder as `k#rest`, and
    // `?x=1#access_token=k` was forwarded with the key in its target), and the log still has no key.
    sim.clearRequests();
    for (const target of [`/sessions/h1/events?x=1#&access_token=${KEY}`, `/api/v2/sessions?x=1#&access_token=${KEY}`, `/api/v2/sessions/h1?access_token=${KEY}#rest`, `/v1/stream/sessions/h1?offset=-1#&access_token=${KEY}`, `/sessions/events?x#&access_token=${KEY}`, `/sessions/h1/status?access_token=${KEY}#rest`]) {
      expect(await rawHead(server.url, target)).toMatch(/^HTTP\/1\.1 400 /);
    }
    expect(sim.requests()).toEqual([]);
    await new Promise((r) => setTimeout(r, 50));
    expect(logged.text()).toContain('"msg":"request"');
    expect(logged.text()).not.toContain(KEY);
    expect(logged.text()).toContain('[REDACTED]');
  });

  it('a key a caller puts under api_key, apikey or a …token name on a forwarded call is redacted too', async () => {
    const KEY = 'sk-round3-named-Vb8Rk3Jq5Zt1';
    const sim: Simulator = await createSimulator({ api: 'real', apiKeys: { [KEY]: 'org-a' } });
    const logged = captureLog('debug');
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH: 'upstream', LOG_LEVEL: 'debug' });
    const server: PollcastServer = await startPollcast(config, { log: logged.log, processMetrics: false });
    cleanups.push(async () => {
      await server.close();
      await sim.close();
    });
    for (const name of ['api_key', 'apikey', 'API-KEY', 'id_token']) {
      expect(await rawHead(server.url, `/api/v2/sessions?limit=1&${name}=${KEY}`)).toMatch(/^HTTP\/1\.1 \d{3}/);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(logged.text()).toContain('"msg":"request"');
    expect(logged.text()).not.toContain(KEY);
  });
});

describe('the Durable Streams route', () => {
  it('AUTH=upstream with UPSTREAM_AUTH_HEADER: the key in that header is read there as on every other route', async () => {
    const KEY = 'sk-round3-header-Vb3Nc8Kd1';
    const b = await startBridge({ AUTH: 'upstream', UPSTREAM_AUTH_HEADER: 'X-API-Key' }, { api: 'real', authHeader: 'X-API-Key', apiKeys: { [KEY]: 'org-a' } });
    bridges.push(b);
    b.sim.createSession('dk', { organisation: 'org-a', initialEvents: 3, imageBytes: 0, finished: true });
    const headers = { 'x-api-key': KEY };
    expect((await fetch(`${b.url}/api/v2/sessions/dk/status`, { headers })).status).toBe(200);
    // Seen: 401 "an upstream key is required" on this route only.
    const res = await fetch(`${b.url}/v1/stream/sessions/dk?offset=-1`, { headers });
    expect(res.status).toBe(200);
    const items = (await res.json()) as Array<{ index?: number; event?: string }>;
    expect(items.filter((m) => m.index !== undefined).map((m) => m.index)).toEqual([0, 1, 2]);
    expect(res.headers.get('cache-control')).toMatch(/^private,/);
    // Another organisation's key in that header: the upstream's 404, nothing of the session.
    b.sim.addKey('sk-round3-other-Jq5', 'org-b');
    const other = await fetch(`${b.url}/v1/stream/sessions/dk?offset=-1`, { headers: { 'x-api-key': 'sk-round3-other-Jq5' } });
    expect(other.status).toBe(404);
  });

  it('AUTH=upstream without UPSTREAM_API_KEY: a reader the upstream accepted gets the session, in every mode', async () => {
    const KEY = 'sk-round3-noop-Tr6Wm2Qa';
    const b = await startBridge({ AUTH: 'upstream' }, { api: 'real', apiKeys: { [KEY]: 'org-a' } });
    bridges.push(b);
    b.sim.createSession('df', { organisation: 'org-a', initialEvents: 3, imageBytes: 0, finished: true });
    b.sim.createSession('dl', { organisation: 'org-a', initialEvents: 2, imageBytes: 0 });
    const headers = { authorization: `Bearer ${KEY}` };
    // Seen: 502 "the sessions API rejected pollcast's credential": the route's loop was started with no key at all.
    const done = await fetch(`${b.url}/v1/stream/sessions/df?offset=-1`, { headers });
    expect(done.status).toBe(200);
    expect(done.headers.get('stream-closed')).toBe('true');
    const items = (await done.json()) as Array<{ index?: number; event?: string }>;
    expect(items.at(-1)).toMatchObject({ event: 'end', last_index: 2 });
    const live = await fetch(`${b.url}/v1/stream/sessions/dl?offset=-1`, { headers });
    expect(live.status).toBe(200);
    expect(((await live.json()) as Array<{ index?: number }>).filter((m) => m.index !== undefined).length).toBe(2);
    const head = await fetch(`${b.url}/v1/stream/sessions/dl`, { method: 'HEAD', headers });
    expect(head.status).toBe(200);
  });

  it('a resume at the closed tail the stream gave is answered closed on a fresh instance, in every mode', async () => {
    const b = await startBridge({}, { api: 'real' });
    bridges.push(b);
    b.sim.createSession('dt', { initialEvents: 5, imageBytes: 0, finished: true });
    // What a reader saved (docs/durable-streams.md: the offset kept in localStorage) when it read this session elsewhere.
    const closedTail = '0000000000000005_end';
    // Seen: 400 "past the end of a stream that is not closed": the offset was judged before the new feed knew of the end.
    const res = await fetch(`${b.url}/v1/stream/sessions/dt?offset=${closedTail}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([]);
    expect(res.headers.get('stream-closed')).toBe('true');
    expect(res.headers.get('stream-next-offset')).toBe(closedTail);
    b.sim.createSession('dt2', { initialEvents: 5, imageBytes: 0, finished: true });
    const sse = await fetch(`${b.url}/v1/stream/sessions/dt2?offset=${closedTail}&live=sse`, { signal: AbortSignal.timeout(10_000) });
    expect(sse.status).toBe(200);
    expect(await sse.text()).toContain('"streamClosed":true');
    // The offset of the stream's own first read agrees.
    const first = await fetch(`${b.url}/v1/stream/sessions/dt?offset=-1`);
    expect(first.headers.get('stream-next-offset')).toBe(closedTail);
    await first.arrayBuffer();
  });

  it('a long-poll is held no longer than its token: events that come after exp are not given to it', async () => {
    const b = await startBridge({ AUTH: '', AUTH_JWT_SECRET: JWT_SECRET }, { api: 'real' });
    bridges.push(b);
    b.sim.createSession('dx', { initialEvents: 2, imageBytes: 0 });
    const expMs = (Math.floor(Date.now() / 1000) + 3) * 1000;
    const short = await token(['dx'], { exp: expMs / 1000 });
    const headers = { authorization: `Bearer ${short}` };
    const first = await fetch(`${b.url}/v1/stream/sessions/dx?offset=-1`, { headers });
    expect(first.status).toBe(200);
    await first.arrayBuffer();
    const tail = first.headers.get('stream-next-offset')!;
    let answered = false;
    const poll = fetch(`${b.url}/v1/stream/sessions/dx?offset=${tail}&live=long-poll`, { headers, signal: AbortSignal.timeout(30_000) }).then((r) => {
      answered = true;
      return r;
    });
    // The token runs out while the long-poll waits (the simulator's clock is the same as pollcast's).
    while (Date.now() < expMs + 500 && !answered) await new Promise((r) => setTimeout(r, 50));
    b.sim.appendEvents('dx', 3);
    const res = await poll;
    // Seen: held the full 20 s and answered 200 with the events that came after the token's exp.
    expect(res.status).toBe(204);
    expect(res.headers.get('stream-next-offset')).toBe(tail);
    // The next request is judged again.
    expect((await fetch(`${b.url}/v1/stream/sessions/dx?offset=${tail}`, { headers })).status).toBe(401);
  });

  it('AUTH=none with AUTH_JWT_SECRET requires tokens, so its answers are private, never for a shared cache', async () => {
    const b = await startBridge({ AUTH: 'none', AUTH_JWT_SECRET: JWT_SECRET }, { api: 'real' });
    bridges.push(b);
    b.sim.createSession('dp', { initialEvents: 5, imageBytes: 0, finished: true });
    const url = `${b.url}/v1/stream/sessions/dp?offset=-1`;
    expect((await fetch(url)).status).toBe(401);
    const res = await fetch(url, { headers: { authorization: `Bearer ${await token(['dp'])}` } });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    // Seen: "public, max-age=31536000, immutable": nginx would hand a token-protected session to anyone.
    expect(res.headers.get('cache-control')).toBe('private, max-age=31536000, immutable');
  });
});

describe('the session list', () => {
  it('a date filter off the calendar (Feb 30, hour 24) is 400, and nothing is sent upstream', async () => {
    const b = await startBridge({}, { api: 'real' });
    bridges.push(b);
    b.sim.clearRequests();
    // Seen: 200 and `created_after=2026-02-30T00:00:00Z` sent upstream (Date.parse rolls it over to March 2; the API answers 422).
    for (const value of ['2026-02-30T00:00:00Z', '2025-02-29T08:00Z', '2026-01-01T24:00:00Z']) {
      const res = await fetch(`${b.url}/sessions/events?created_after=${encodeURIComponent(value)}`, { signal: AbortSignal.timeout(5000) });
      expect(res.status, value).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'bad_request' });
    }
    expect(b.sim.requests().filter((r) => /\/sessions(\?|$)/.test(r.target))).toEqual([]);
    // A real leap day is a date.
    const leap = await fetch(`${b.url}/sessions/events?created_after=2024-02-29T08:00:00Z`, { signal: AbortSignal.timeout(5000) });
    expect(leap.status).toBe(200);
    await leap.body?.cancel();
  });
});

describe('AUTH=upstream and the multi-session stream', () => {
  it('one /events request for a hundred sessions costs a hundred rate tokens before the key is checked a hundred times upstream', async () => {
    // The default rate, set: at their defaults the per-address limits spare loopback clients such as this test.
    const b = await startBridge({ AUTH: 'upstream', RATE_LIMIT_PER_IP: '50', RATE_LIMIT_BURST: '500' }, { api: 'real', apiKeys: { 'sk-round3-valid-Hd4': 'org-a' } });
    bridges.push(b);
    const codes: number[] = [];
    for (let round = 0; round < 20; round++) {
      const ids = Array.from({ length: 100 }, (_, i) => `nx-${round}-${i}`).join(',');
      // Any key will do: each (key, session) pair is a check of its own, refused or not.
      const res = await fetch(`${b.url}/events?sessions=${ids}`, { headers: { authorization: `Bearer sk-junk-${round}` } });
      codes.push(res.status);
      await res.arrayBuffer();
    }
    const metrics = await (await fetch(`${b.url}/metrics`)).text();
    const checks = metrics
      .split('\n')
      .filter((l) => l.startsWith('pollcast_upstream_auth_checks_total'))
      .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    // Seen: twenty 401s and 2000 upstream checks. The default burst (500 tokens) lets about five such requests through.
    expect(codes.filter((c) => c === 429).length).toBeGreaterThanOrEqual(14);
    expect(checks).toBeLessThanOrEqual(600);
  });
});

describe('a token signed with AUTH_JWT_SECRET under another HMAC algorithm (combined with AUTH=upstream)', () => {
  it('is pollcast\'s, refused with 401, and never sent upstream; one signed with another secret is a foreign key, checked upstream', async () => {
    const b = await startGateway({ AUTH: 'upstream', AUTH_JWT_SECRET: JWT_SECRET });
    bridges.push(b);
    const sign = (alg: string, secret: string) => new SignJWT({ sessions: ['*'] }).setProtectedHeader({ alg }).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
    const ours = [await sign('HS384', JWT_SECRET), await sign('HS512', JWT_SECRET)];
    const foreign = await sign('HS384', 'another-secret-that-is-at-least-32-bytes!');
    b.sim.clearRequests();
    for (const jwt of ours) {
      const bearer = { authorization: `Bearer ${jwt}` };
      // Seen: the upstream received these tokens on the key check (/status) and on forwarded calls.
      expect((await fetch(`${b.url}/sessions/any-1/events`, { headers: bearer })).status).toBe(401);
      const listed = await fetch(`${b.url}/api/v2/sessions`, { headers: bearer });
      expect(listed.status).toBe(401);
      await listed.arrayBuffer();
      const queried = await fetch(`${b.url}/api/v2/sessions?access_token=${jwt}`);
      expect(queried.status).toBe(401);
      await queried.arrayBuffer();
    }
    for (const jwt of ours) expect(JSON.stringify(b.sim.requests())).not.toContain(jwt.split('.')[2]!);
    // A foreign token is the upstream's to judge (the simulator knows no such key: 401 from there).
    const checked = await fetch(`${b.url}/api/v2/sessions`, { headers: { authorization: `Bearer ${foreign}` } });
    expect(checked.status).toBe(401);
    await checked.arrayBuffer();
    expect(JSON.stringify(b.sim.requests())).toContain(foreign.split('.')[2]!);
  });
});
