/**
 * Limits on a real bridge: streams per client, per session and in total
 * (refused with 429 JSON and Retry-After before any stream starts, given back
 * exactly when a stream closes), the per-client request rate, TRUST_PROXY, and
 * URL and header sizes (414 / 431 JSON, never a crash).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { clientKey, createLimits, LOOPBACK_KEY, RateLimiter, StreamSlots } from '../../src/http/limits.ts';
import { loadConfig } from '../../src/config.ts';
import { eventually, range, record, startBridge, type Bridge } from '../helpers/harness.ts';
import { hold, rawRequest, type HeldResponse } from './helpers.ts';

let bridge: Bridge | undefined;
const held: HeldResponse[] = [];
afterEach(async () => {
  for (const h of held.splice(0)) h.close();
  await bridge?.close();
  bridge = undefined;
});

async function open(url: string, headers: Record<string, string> = {}): Promise<HeldResponse> {
  const h = await hold(url, headers);
  held.push(h);
  return h;
}

async function expect429(res: Response, pattern: RegExp): Promise<void> {
  expect(res.status).toBe(429);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  const body = (await res.json()) as { error: string; code: string };
  expect(body.code).toBe('too_many_requests');
  expect(body.error).toMatch(pattern);
}

const healthStreams = async (b: Bridge) => ((await (await fetch(`${b.url}/healthz`)).json()) as { streams: number }).streams;

describe('stream limits', () => {
  it('refuses a client past MAX_STREAMS_PER_IP with 429 before the stream starts, and frees the slot on close', async () => {
    bridge = await startBridge({ MAX_STREAMS_PER_IP: '2' });
    bridge.sim.createSession('l-1', { initialEvents: 1 });
    const a = await open(`${bridge.url}/sessions/l-1/events`);
    const b = await open(`${bridge.url}/sessions/l-1/events`);
    expect([a.status, b.status]).toEqual([200, 200]);
    await expect429(await fetch(`${bridge.url}/sessions/l-1/events`), /from this client.*limit 2/);
    a.close();
    // Given back exactly when the stream closes: the next open succeeds.
    await eventually(async () => (await healthStreams(bridge!)) === 1, 5000, 'stream closed');
    const c = await open(`${bridge.url}/sessions/l-1/events`);
    expect(c.status).toBe(200);
    expect(c.res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  });

  it('makes a real EventSource give up on 429 (no stream, no reconnect loop)', async () => {
    bridge = await startBridge({ MAX_STREAMS_PER_IP: '1' });
    bridge.sim.createSession('l-2', { initialEvents: 1 });
    const first = record(`${bridge.url}/sessions/l-2/events`);
    await first.until((r) => r.indices().length === 1);
    const second = record(`${bridge.url}/sessions/l-2/events`);
    await eventually(() => second.es.readyState === 2, 5000, 'second EventSource closed');
    expect(second.messages).toEqual([]);
    first.close();
  });

  it('refuses past MAX_STREAMS_PER_SESSION for that session only', async () => {
    bridge = await startBridge({ MAX_STREAMS_PER_SESSION: '2' });
    bridge.sim.createSession('l-3', { initialEvents: 1 });
    bridge.sim.createSession('l-4', { initialEvents: 1 });
    await open(`${bridge.url}/sessions/l-3/events`);
    await open(`${bridge.url}/sessions/l-3/events?include_details=false`);
    await expect429(await fetch(`${bridge.url}/sessions/l-3/events`), /session "l-3".*limit 2/);
    expect((await open(`${bridge.url}/sessions/l-4/events`)).status).toBe(200);
  });

  it('cannot be overshot by concurrent opens: the slot is reserved before the upstream call', async () => {
    bridge = await startBridge({ MAX_STREAMS: '3' });
    bridge.sim.createSession('l-5', { initialEvents: 1 });
    const all = await Promise.all(range(12).map(() => open(`${bridge!.url}/sessions/l-5/events`)));
    const statuses = all.map((h) => h.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(9);
    expect(await healthStreams(bridge)).toBe(3);
  });

  it('gives the slot back when an open fails upstream and when a stream ends', async () => {
    bridge = await startBridge({ MAX_STREAMS_PER_IP: '1' });
    bridge.sim.createSession('l-6', { initialEvents: 2, finished: true });
    for (let i = 0; i < 3; i++) {
      const missing = await fetch(`${bridge.url}/sessions/no-such-${i}/events`);
      expect(missing.status).toBe(404);
      await missing.body?.cancel();
    }
    for (let i = 0; i < 3; i++) {
      const r = record(`${bridge.url}/sessions/l-6/events`);
      expect((await r.ended()).last_index).toBe(1);
      await eventually(async () => (await healthStreams(bridge!)) === 0, 5000, 'stream closed');
    }
    expect((await open(`${bridge.url}/sessions/l-6/events`)).status).toBe(200);
  });
});

describe('request rate per client', () => {
  it('answers 429 with Retry-After once the burst is spent, on /changes and stream opens alike', async () => {
    bridge = await startBridge({ RATE_LIMIT_PER_IP: '0.5', RATE_LIMIT_BURST: '3' });
    bridge.sim.createSession('r-1', { initialEvents: 1, finished: true });
    for (let i = 0; i < 2; i++) {
      const ok = await fetch(`${bridge.url}/sessions/r-1/changes`);
      expect(ok.status).toBe(200);
      await ok.body?.cancel();
    }
    const r = record(`${bridge.url}/sessions/r-1/events`);
    await r.ended();
    const limited = await fetch(`${bridge.url}/sessions/r-1/events`);
    await expect429(limited, /too many requests/);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(2);
    await expect429(await fetch(`${bridge.url}/sessions/r-1/changes`), /too many requests/);
    // Health and metrics stay reachable for the operator.
    expect((await fetch(`${bridge.url}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`${bridge.url}/metrics`)).text();
    expect(metrics).toMatch(/pollcast_requests_rejected_total\{reason="rate_limit"\} [1-9]/);
  });

  it('ignores forwarding headers unless TRUST_PROXY says a proxy sets them', async () => {
    bridge = await startBridge({ RATE_LIMIT_PER_IP: '0.01', RATE_LIMIT_BURST: '2' });
    const statuses: number[] = [];
    for (const ip of ['1.1.1.1', '2.2.2.2', '3.3.3.3']) {
      const res = await fetch(`${bridge.url}/sessions/-bad/changes`, { headers: { 'x-forwarded-for': ip, 'fly-client-ip': ip } });
      statuses.push(res.status);
      await res.body?.cancel();
    }
    expect(statuses).toEqual([400, 400, 429]);
  });

  it('with TRUST_PROXY=x-forwarded-for limits by the last X-Forwarded-For entry', async () => {
    bridge = await startBridge({ TRUST_PROXY: 'x-forwarded-for', RATE_LIMIT_PER_IP: '0.01', RATE_LIMIT_BURST: '2' });
    const status = async (xff: string) => {
      const res = await fetch(`${bridge!.url}/sessions/-bad/changes`, { headers: { 'x-forwarded-for': xff } });
      await res.body?.cancel();
      return res.status;
    };
    expect(await status('203.0.113.7')).toBe(400);
    expect(await status('203.0.113.7')).toBe(400);
    expect(await status('203.0.113.7')).toBe(429);
    // The client may write what it likes before the proxy's own entry: it is not believed.
    expect(await status('198.51.100.1, 203.0.113.7')).toBe(429);
    expect(await status('203.0.113.7, 198.51.100.1')).toBe(400);
    // An IPv6 client is one client per /64.
    expect(await status('2001:db8:1:2::1')).toBe(400);
    expect(await status('2001:db8:1:2:ffff::9')).toBe(400);
    expect(await status('2001:db8:1:2:aaaa::3')).toBe(429);
  });

  it('with TRUST_PROXY=fly limits by Fly-Client-IP', async () => {
    bridge = await startBridge({ TRUST_PROXY: 'fly', RATE_LIMIT_PER_IP: '0.01', RATE_LIMIT_BURST: '1' });
    const status = async (ip: string) => {
      const res = await fetch(`${bridge!.url}/sessions/-bad/changes`, { headers: { 'fly-client-ip': ip } });
      await res.body?.cancel();
      return res.status;
    };
    expect([await status('192.0.2.1'), await status('192.0.2.1'), await status('192.0.2.2')]).toEqual([400, 429, 400]);
  });
});

describe('URL and header sizes', () => {
  it('answers a URL past MAX_URL_BYTES with 414 JSON, and headers past MAX_HEADER_BYTES with 431 JSON', async () => {
    bridge = await startBridge({ MAX_URL_BYTES: '1024', MAX_HEADER_BYTES: '4096' });
    bridge.sim.createSession('u-1', { initialEvents: 1 });
    const longUrl = await fetch(`${bridge.url}/sessions/u-1/changes?pad=${'a'.repeat(1100)}`);
    expect(longUrl.status).toBe(414);
    expect(((await longUrl.json()) as { code: string }).code).toBe('uri_too_long');
    const okUrl = await fetch(`${bridge.url}/sessions/u-1/changes?pad=${'a'.repeat(900)}`);
    expect(okUrl.status).toBe(200);
    await okUrl.body?.cancel();

    const bigHeader = await rawRequest(bridge.url, `GET /sessions/u-1/changes HTTP/1.1\r\nHost: x\r\nX-Pad: ${'b'.repeat(5000)}\r\n\r\n`);
    expect(bigHeader.status).toBe(431);
    expect(JSON.parse(bigHeader.body)).toMatchObject({ code: 'headers_too_large' });
    const hugeUrl = await rawRequest(bridge.url, `GET /sessions/u-1/changes?${'c'.repeat(8000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(hugeUrl.status).toBe(431);
    const garbage = await rawRequest(bridge.url, 'NOT HTTP AT ALL\r\n\r\n');
    expect(garbage.status).toBe(400);
    expect(JSON.parse(garbage.body)).toMatchObject({ code: 'bad_request' });
    expect((await fetch(`${bridge.url}/healthz`)).status).toBe(200);
  });

  it('answers an HTTP/1.1 request without Host, or with a Host no URL can be built from, with 400 JSON; HTTP/1.0 needs none', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('h-1', { initialEvents: 1, finished: true });
    for (const path of ['/healthz', '/sessions/h-1/status', '/sessions/h-1/events']) {
      const noHost = await rawRequest(bridge.url, `GET ${path} HTTP/1.1\r\nConnection: close\r\n\r\n`);
      expect(noHost.status, path).toBe(400);
      expect(JSON.parse(noHost.body), path).toEqual({ error: 'the Host header is required (HTTP/1.1)', code: 'bad_request' });
    }
    const badHost = await rawRequest(bridge.url, 'GET /sessions/h-1/status HTTP/1.1\r\nHost: bad host!\r\nConnection: close\r\n\r\n');
    expect(badHost.status).toBe(400);
    expect(JSON.parse(badHost.body)).toEqual({ code: 'bad_request', error: 'the Host header is malformed (no URL can be built from it)' });
    // Each of the four refusals counted once, the malformed Host's too.
    expect(await (await fetch(`${bridge.url}/metrics`)).text()).toMatch(/^pollcast_requests_rejected_total\{reason="bad_request"\} 4$/m);
    // The single-session stream (served before hono) refuses a malformed Host as every other route does; two Hosts
    // (RFC 9112: 400) are refused too, before anything is forwarded; an expectation pollcast cannot meet is a JSON 417.
    for (const head of ['Host: a b', 'Host: a/b?c', 'Host: x\r\nHost: y', 'Host: x:99999']) {
      for (const path of ['/sessions/h-1/events', '/api/v2/sessions']) {
        const refused = await rawRequest(bridge.url, `GET ${path} HTTP/1.1\r\n${head}\r\nConnection: close\r\n\r\n`);
        expect(refused.status, `${head} ${path}`).toBe(400);
        expect(JSON.parse(refused.body), `${head} ${path}`).toMatchObject({ code: 'bad_request', error: expect.stringMatching(/Host/) });
      }
    }
    const expect200 = await rawRequest(bridge.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nConnection: close\r\n\r\n');
    expect(expect200.status).toBe(417);
    expect(JSON.parse(expect200.body)).toMatchObject({ code: 'expectation_failed' });
    // IPv6 literals however written, on hono's routes and the stream fast path alike.
    for (const host of ['[::1]:8080', '[::ffff:127.0.0.1]', '[0:0:0:0:0:0:0:1]:80', '[::FFFF:7F00:1]']) {
      for (const path of ['/sessions/h-1/status', '/sessions/h-1/events']) {
        const ipv6 = await rawRequest(bridge.url, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
        expect(ipv6.status, `${host} ${path}`).toBe(200);
      }
    }
    // CONNECT (node:http drops it without a word unless someone listens): a JSON 405.
    for (const target of ['127.0.0.1:443', '/sessions/h-1/events']) {
      const connect = await rawRequest(bridge.url, `CONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(connect.status).toBe(405);
      expect(JSON.parse(connect.body)).toMatchObject({ code: 'method_not_allowed', error: expect.stringMatching(/CONNECT/) });
    }
    const http10 = await rawRequest(bridge.url, 'GET /sessions/h-1/status HTTP/1.0\r\n\r\n');
    expect(http10.status).toBe(200);
    expect(JSON.parse(http10.body)).toMatchObject({ status: 'completed' });
  });
});

describe('per-address limits at their defaults', () => {
  it('spare loopback clients (the host itself: tests, a sidecar, a load generator) where the socket is the client', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('d-1', { initialEvents: 1 });
    const local = await Promise.all(range(210).map(() => open(`${bridge!.url}/sessions/d-1/events`)));
    expect(local.filter((h) => h.status === 200)).toHaveLength(210);
    await local[209]!.readUntil((t) => t.includes('id: 0'));
    // 600 long-poll calls at once, past the burst of 500: none refused from loopback.
    const polls = await Promise.all(range(600).map(() => fetch(`${bridge!.url}/sessions/d-1/changes?from_index=0&wait_for_seconds=0`).then(async (r) => (await r.arrayBuffer(), r.status))));
    expect(polls.filter((s) => s === 200)).toHaveLength(600);
  });

  it('hold behind a proxy (TRUST_PROXY): for each forwarded address, and for the proxy\'s own loopback address when a request lacks the header', async () => {
    bridge = await startBridge({ TRUST_PROXY: 'x-forwarded-for' });
    bridge.sim.createSession('d-2', { initialEvents: 1 });
    const remote = { 'x-forwarded-for': '203.0.113.7' };
    const far = await Promise.all(range(200).map(() => open(`${bridge!.url}/sessions/d-2/events`, remote)));
    expect(far.filter((h) => h.status === 200)).toHaveLength(200);
    await expect429(await fetch(`${bridge.url}/sessions/d-2/events`, { headers: remote }), /from this client.*limit 200/);
    // No header (or a malformed one): the socket's loopback address, which behind a proxy is not the host's own client.
    const bare = await Promise.all(range(200).map(() => open(`${bridge!.url}/sessions/d-2/events`)));
    expect(bare.filter((h) => h.status === 200)).toHaveLength(200);
    await expect429(await fetch(`${bridge.url}/sessions/d-2/events`), /from this client.*limit 200/);
  });

  it('hold for loopback clients too once set, even to the default values', () => {
    const spared = createLimits(loadConfig({}));
    const set = createLimits(loadConfig({ MAX_STREAMS_PER_IP: '200', RATE_LIMIT_BURST: '500' }));
    for (const limits of [spared, set]) for (let i = 0; i < 200; i++) limits.streams.reserve(LOOPBACK_KEY, []);
    expect(() => spared.streams.reserve(LOOPBACK_KEY, [])).not.toThrow();
    expect(() => set.streams.reserve(LOOPBACK_KEY, [])).toThrow(/from this client.*limit 200/);
    const taken = (limits: ReturnType<typeof createLimits>) => range(501).map(() => limits.rate.take(LOOPBACK_KEY, 0)).filter((wait) => wait > 0).length;
    expect([taken(spared), taken(set)]).toEqual([0, 1]);
    // RATE_LIMIT_PER_IP alone counts as set as well.
    expect(taken(createLimits(loadConfig({ RATE_LIMIT_PER_IP: '50' })))).toBe(1);
    // A remote client is limited at the defaults.
    expect(range(501).map(() => spared.rate.take('203.0.113.9', 0)).filter((wait) => wait > 0)).toHaveLength(1);
    // And loopback too behind a proxy.
    expect(taken(createLimits(loadConfig({ TRUST_PROXY: 'fly' })))).toBe(1);
  });
});

describe('limit mechanics', () => {
  it('refills the token bucket at the configured rate up to the burst', () => {
    const rate = new RateLimiter(2, 3);
    expect([0, 0, 0].map(() => rate.take('a', 0))).toEqual([0, 0, 0]);
    expect(rate.take('a', 0)).toBeCloseTo(0.5);
    expect(rate.take('b', 0)).toBe(0);
    expect(rate.take('a', 500)).toBe(0);
    expect(rate.take('a', 500)).toBeGreaterThan(0);
    // A long pause refills to the burst, not beyond.
    expect([0, 0, 0, 1].map(() => rate.take('a', 100_000) > 0)).toEqual([false, false, false, true]);
    expect(new RateLimiter(0, 1).take('x', 0)).toBe(0);
  });

  it('keys IPv4 by address and IPv6 by /64', () => {
    expect(clientKey('203.0.113.9')).toBe('203.0.113.9');
    expect(clientKey('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientKey('2001:DB8:0:0:1::2')).toBe('2001:db8:0:0::/64');
    expect(clientKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    // Loopback, however written, is one client: the host.
    expect(['127.0.0.1', '127.3.2.1', '::ffff:127.0.0.1', '::1', '0:0:0:0:0:0:0:1'].map(clientKey)).toEqual(Array(5).fill(LOOPBACK_KEY));
    expect(clientKey('::2')).toBe('0:0:0:0::/64');
  });

  it('releases each reservation once, whatever calls it again', () => {
    const slots = new StreamSlots({ maxTotal: 2, maxPerClient: 0, maxPerSession: 0 });
    const r1 = slots.reserve('a', ['s']);
    slots.reserve('b', ['s', 's']);
    expect(slots.forSession('s')).toBe(2);
    expect(() => slots.reserve('c', ['t'])).toThrow(/limit 2/);
    // The refusal names its limit, which /metrics counts it under (once, where errors become answers).
    expect(() => slots.reserve('c', ['t'])).toThrow(expect.objectContaining({ limit: 'streams_total' }));
    r1.release();
    r1.release();
    expect(slots.total).toBe(1);
    expect(slots.forClient('a')).toBe(0);
    expect(slots.forSession('s')).toBe(1);
  });
});
