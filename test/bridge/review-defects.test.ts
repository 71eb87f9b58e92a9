/**
 * Regression tests for the review's defects (issue 10), each reproducing what
 * was seen: big pages, a late status after a long replay, HEAD, short pages,
 * a slow reader at shutdown, and a stream outliving its token.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, range, record, startBridge, type Bridge } from '../helpers/harness.ts';
import { ONE_ADDRESS_ENV, eventIndices, openRawStream, pause, type RawStream } from '../resilience/helpers.ts';
import { JWT_SECRET, token } from '../security/helpers.ts';

let bridge: Bridge | undefined;
const raws: RawStream[] = [];
afterEach(async () => {
  for (const r of raws.splice(0)) r.socket.destroy();
  await bridge?.close();
  bridge = undefined;
});

describe('a page over the body cap', () => {
  it('is asked again with fewer events: 120 events of 200 KB all arrive, then end', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, SESSION_MAX_BYTES: String(64 << 20) });
    bridge.sim.createSession('big-1', { initialEvents: 120, finished: true, detailBytes: 200_000 });
    const r = record(`${bridge.url}/sessions/big-1/events`);
    const end = await r.ended(30_000);
    expect(r.indices()).toEqual(range(120));
    expect(end).toMatchObject({ status: 'completed', last_index: 119 });
    expect(bridge.server.metrics.stats.oversizedEvents).toBe(0);
  });

  it('relays a single event larger than the cap as a placeholder (logged, counted), and the stream goes on', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, UPSTREAM_MAX_BODY_BYTES: '65536' });
    // Every event is ~100 KB, past the 64 KiB cap even alone.
    bridge.sim.createSession('big-2', { initialEvents: 4, finished: true, detailBytes: 100_000 });
    const upstream = bridge.sim.events('big-2');
    const r = record(`${bridge.url}/sessions/big-2/events`);
    const end = await r.ended(15_000);
    expect(r.indices()).toEqual(range(4));
    for (const m of r.messages.filter((x) => x.type === 'message')) {
      // Type and timestamp come from a call without details; the data is marked as omitted.
      expect(m.data).toEqual({ index: m.data.index, type: upstream[m.data.index]!.type, data: null, timestamp: upstream[m.data.index]!.timestamp, omitted: 'too_large' });
    }
    expect(end).toMatchObject({ status: 'completed', last_index: 3 });
    expect(bridge.server.metrics.stats.oversizedEvents).toBe(4);
    // The drop-in takes the same path.
    const res = await fetch(`${bridge.url}/sessions/big-2/changes?from_index=1&limit=2`);
    expect(((await res.json()) as { new_events: Array<{ omitted?: string }> }).new_events.map((e) => e.omitted)).toEqual(['too_large', 'too_large']);
    // A history read for a subscriber behind the buffer does too: a second feed (no details) is not involved.
    const behind = await fetch(`${bridge.url}/sessions/big-2/events?from_index=0`, { signal: AbortSignal.timeout(5000) });
    expect(behind.status).toBe(200);
    await behind.body?.cancel();
  });
});

describe('a subscriber that joins during a long replay', () => {
  it('gets the current status when it is registered, not the stale one it opened with', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, SESSION_MAX_BYTES: String(256 << 20), UPSTREAM_WAIT_SECONDS: '20' });
    bridge.sim.createSession('late-status', { initialEvents: 400, detailBytes: 20_000 });
    // Warm the buffer, so the paused reader's replay comes from memory and waits on its socket.
    const warm = record(`${bridge.url}/sessions/late-status/events`);
    await warm.until((x) => x.indices().length === 400, 15_000);
    const raw = openRawStream(bridge.url, '/sessions/late-status/events', { paused: true });
    raws.push(raw);
    await eventually(() => bridge!.server.streams.size === 2, 5000, 'the paused stream to open');
    await pause(300);
    bridge.sim.setStatus('late-status', { status: 'paused' });
    await warm.until((x) => x.statuses().at(-1)?.status === 'paused', 5000);
    raw.socket.resume();
    await raw.until(() => eventIndices(raw.frames()).length === 400, 15_000);
    await eventually(() => raw.frames().filter((f) => f.event === 'status').length >= 2, 5000, 'the current status');
    const statuses = raw.frames().filter((f) => f.event === 'status').map((f) => JSON.parse(f.data!).status);
    expect(statuses[0]).toBe('running');
    expect(statuses.at(-1)).toBe('paused');
    warm.close();
  });
});

describe('HEAD and other methods', () => {
  it('HEAD answers with the stream headers and the status GET would open with, holds no slot, calls only as a first contact does; POST gets 405 with Allow', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('head-1', { initialEvents: 1 });
    const res = await fetch(`${bridge.url}/sessions/head-1/events`, { method: 'HEAD', signal: AbortSignal.timeout(5000) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const health = (await (await fetch(`${bridge.url}/healthz`)).json()) as { streams: number };
    expect(health).toMatchObject({ streams: 0 });
    const afterFirst = bridge.sim.totalRequests();
    for (const path of ['/sessions/head-1/changes', '/sessions/head-1/status', '/sessions/head-1/events']) {
      expect((await fetch(`${bridge.url}${path}`, { method: 'HEAD', signal: AbortSignal.timeout(5000) })).status).toBe(200);
    }
    // The session's loop answered the first HEAD; the others reach no upstream (a long-poll under way may end meanwhile).
    expect(bridge.sim.totalRequests() - afterFirst).toBeLessThanOrEqual(1);
    // A session the upstream does not know: GET's 404, for every route (HEAD said 200 until 6 Dec 2026).
    for (const path of ['/sessions/nope/events', '/sessions/nope/changes', '/sessions/nope/status']) {
      const head = await fetch(`${bridge.url}${path}`, { method: 'HEAD', signal: AbortSignal.timeout(5000) });
      expect([path, head.status]).toEqual([path, 404]);
    }
    for (const [method, path] of [['POST', '/sessions/head-1/events'], ['DELETE', '/sessions/head-1/changes'], ['PUT', '/sessions/head-1/status']] as const) {
      const r = await fetch(`${bridge.url}${path}`, { method });
      expect(r.status).toBe(405);
      expect(r.headers.get('allow')).toBe('GET, HEAD');
      expect(((await r.json()) as { error: string }).error).toMatch(new RegExp(method));
    }
  });
});

describe('HEAD of a session deleted while its loop runs', () => {
  it('is 404 on /events once the refusal has lasted, as GET is', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, UPSTREAM_WAIT_SECONDS: '1' });
    bridge.sim.createSession('del-1', { initialEvents: 2 });
    const watcher = record(`${bridge.url}/sessions/del-1/events`);
    await watcher.until((r) => r.indices().length === 2, 10_000);
    bridge.sim.deleteSession('del-1');
    // GET answers 404 once the loop's refusal has lasted REFUSAL_SETTLED_MS (5 s); HEAD must say the same.
    await eventually(async () => (await fetch(`${bridge!.url}/sessions/del-1/events`, { signal: AbortSignal.timeout(5000) })).status === 404, 20_000, 'GET 404');
    const head = await fetch(`${bridge.url}/sessions/del-1/events`, { method: 'HEAD', signal: AbortSignal.timeout(5000) });
    expect(head.status).toBe(404);
    watcher.close();
  }, 40_000);
});

describe('an upstream that caps limit below UPSTREAM_PAGE_SIZE', () => {
  it('is not taken for caught up: a drop-in wait-0 call past the loop answers 200, and catch-up is not rate-gated', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, UPSTREAM_PAGE_SIZE: '100', SESSION_MAX_EVENTS: '10000' }, { maxLimit: 50 });
    bridge.sim.createSession('capped', { initialEvents: 3000, detailBytes: 10 });
    const times: number[] = [];
    const r = record(`${bridge.url}/sessions/capped/events`);
    const res = await fetch(`${bridge.url}/sessions/capped/changes?from_index=2500&wait_for_seconds=0&limit=10`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { new_events: Array<{ timestamp: string }> };
    expect(body.new_events.map((e) => e.timestamp)).toEqual(bridge.sim.events('capped').slice(2500, 2510).map((e) => e.timestamp));
    const t0 = performance.now();
    await r.until((x) => x.indices().length === 3000, 20_000);
    times.push(performance.now() - t0);
    expect(r.indices()).toEqual(range(3000));
    // 60 pages of 50: the rate gate (4/s, burst 8) would have taken 13 s; pages right after events are not gated.
    expect(bridge.sim.stats('capped').changes).toBeGreaterThanOrEqual(60);
    expect(times[0]).toBeLessThan(8000);
    r.close();
  });
});

describe('shutdown', () => {
  it('lets a slow reader receive the last bytes of its stream instead of cutting it mid-frame', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, SESSION_MAX_BYTES: String(256 << 20), SHUTDOWN_TIMEOUT_SECONDS: '8' });
    bridge.sim.createSession('slow-at-stop', { initialEvents: 300, detailBytes: 4000 });
    const warm = record(`${bridge.url}/sessions/slow-at-stop/events`);
    await warm.until((x) => x.indices().length === 300, 15_000);
    warm.close();
    const raw = openRawStream(bridge.url, '/sessions/slow-at-stop/events', { paused: true });
    raws.push(raw);
    await eventually(() => bridge!.server.streams.size === 1, 5000, 'the paused stream to open');
    await pause(200);
    const closing = bridge.server.close();
    await pause(300);
    raw.socket.resume();
    await closing;
    await raw.closed;
    // The body ends with chunked coding's last chunk: the response was ended, not cut.
    expect(raw.text().endsWith('0\r\n\r\n')).toBe(true);
    const frames = raw.frames();
    const indices = eventIndices(frames);
    expect(indices).toEqual(range(indices.length));
    expect(indices.length).toBeGreaterThan(0);
  });
});

describe('token expiry', () => {
  it('ends a stream when its token expires, and the reconnect is refused', async () => {
    bridge = await startBridge({ AUTH: '', AUTH_JWT_SECRET: JWT_SECRET, SSE_RETRY_MS: '100' });
    bridge.sim.createSession('exp-1', { initialEvents: 1 });
    const expSeconds = Math.floor(Date.now() / 1000) + 2;
    const t = await token(['exp-1'], { exp: expSeconds });
    const r = record(`${bridge.url}/sessions/exp-1/events?access_token=${t}`);
    await r.until((x) => x.indices().length === 1, 5000);
    await eventually(() => r.es.readyState === r.es.CLOSED, 10_000, 'the stream to be closed and its reconnect refused');
    expect(Date.now()).toBeGreaterThanOrEqual(expSeconds * 1000);
    expect(bridge.server.metrics.stats.streamsClosed.expired).toBe(1);
  });
});
