/**
 * Regression tests for the second review's findings, each reproducing what
 * was seen: a drop-in /status refresh that ignored Retry-After, one /events
 * request fanning out to a hundred upstream calls, status-only readers that
 * read a whole history, a drop-in long-poll answering wrong indices after the
 * buffer dropped its start, a multiplexed replay dropped as slow, a 16 s
 * heartbeat gap, refusals counted twice, a terminal status answered without
 * its answer, and CORS heads that differed from hono's.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, record, startBridge, type Bridge } from '../helpers/harness.ts';
import { scrape } from '../helpers/prom-text.ts';
import { ONE_ADDRESS_ENV, logRequests, pause } from '../resilience/helpers.ts';

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

describe('upstream etiquette of the drop-ins and status-only readers', () => {
  it('a /status poller does not make pollcast ask around a 429 Retry-After', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, UPSTREAM_WAIT_SECONDS: '20' }, { api: 'real' });
    const b = bridge;
    b.sim.createSession('st', { initialEvents: 3 });
    const reqs = logRequests(b.sim);
    const r = record(`${b.url}/sessions/st/events`);
    await r.until((x) => x.indices().length === 3);
    await eventually(() => b.sim.stats('st').inFlightChanges === 1, 5000, 'the long-poll');
    b.sim.faults.script(Array.from({ length: 200 }, () => ({ kind: 'rate-limit' as const, retryAfterSeconds: 30 })), { session: 'st', endpoint: 'status' });
    const t0 = performance.now();
    let answers = 0;
    while (performance.now() - t0 < 4000) {
      const res = await fetch(`${b.url}/api/v2/sessions/st/status`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      answers++;
      await pause(50);
    }
    const calls = reqs.between('st', t0, performance.now()).filter((q) => q.endpoint === 'status');
    expect(answers).toBeGreaterThan(20);
    // One refresh met the 429; its Retry-After holds every later one.
    expect(calls.length).toBeLessThanOrEqual(1);
    r.close();
  });

  it('one /events request for a hundred sessions costs a hundred rate tokens, not a hundred free upstream calls', async () => {
    // The default rate, set: at their defaults the per-address limits spare loopback clients such as this test.
    bridge = await startBridge({ RATE_LIMIT_PER_IP: '50', RATE_LIMIT_BURST: '500' }, { api: 'real' });
    const reqs = logRequests(bridge.sim);
    const codes: number[] = [];
    for (let round = 0; round < 20; round++) {
      const ids = Array.from({ length: 100 }, (_, i) => `nx-${round}-${i}`).join(',');
      const res = await fetch(`${bridge.url}/events?sessions=${ids}`);
      codes.push(res.status);
      await res.arrayBuffer();
    }
    // The default burst (500 tokens) lets about five such requests through; the rest are 429 before any upstream call.
    expect(codes.filter((c) => c === 429).length).toBeGreaterThanOrEqual(14);
    expect(reqs.all.length).toBeLessThanOrEqual(600);
  });

  it('a drop-in /status (and an overview stream) on a long session does not read its history', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV }, { api: 'real' });
    bridge.sim.createSession('long', { initialEvents: 3000, imageBytes: 0 });
    bridge.sim.resetStats();
    const res = await fetch(`${bridge.url}/api/v2/sessions/long/status`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { status: string }).status).toBe('running');
    // The first page, then a doubling and a binary search for the last event: ~2 log2(3000/100) probes.
    expect(bridge.sim.stats('long').changes).toBeLessThanOrEqual(14);
    // The loop starts at the head: a live event arrives, and the end carries the right last index.
    const ov = record(`${bridge.url}/events?sessions=long&mode=overview`);
    await ov.until((x) => x.statuses().length > 0);
    bridge.sim.finish('long', { answer: 'done', closingEvents: true });
    const end = await ov.ended(15_000);
    expect(end).toMatchObject({ session: 'long', status: 'completed', answer: 'done', last_index: bridge.sim.eventCount('long') - 1 });
    expect(bridge.sim.stats('long').changes).toBeLessThanOrEqual(24);
  });
});

describe('drop-in /changes', () => {
  it('answers from from_index after its wait even when the buffer dropped that index meanwhile', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, SESSION_MAX_EVENTS: '5' });
    const b = bridge;
    b.sim.createSession('tw', { initialEvents: 2 });
    await (await fetch(`${b.url}/sessions/tw/changes?from_index=0`)).arrayBuffer();
    await eventually(() => b.sim.stats('tw').inFlightChanges === 1, 5000, 'the long-poll');
    const pending = fetch(`${b.url}/sessions/tw/changes?from_index=2&wait_for_seconds=20`);
    await pause(200);
    b.sim.appendEvents('tw', 20);
    const body = (await (await pending).json()) as { new_events: Array<{ timestamp: string }> };
    expect(body.new_events[0]?.timestamp).toBe(b.sim.events('tw')[2]!.timestamp);
  });

  it('never answers a terminal status without its answer and finished_at (the real API answers 204)', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, UPSTREAM_WAIT_SECONDS: '1' }, { api: 'real' });
    bridge.sim.createSession('de', { initialEvents: 3 });
    const base = `${bridge.url}/api/v2/sessions/de/changes`;
    await (await fetch(`${base}?from_index=0`)).arrayBuffer();
    const pending = fetch(`${base}?from_index=3&wait_for_seconds=20`);
    await pause(300);
    bridge.sim.finish('de', { answer: 'the final answer' });
    const res = await pending;
    const text = await res.text();
    if (res.status === 200) {
      const body = JSON.parse(text) as { status: string; answer: unknown; finished_at: unknown };
      if (['completed', 'failed', 'timed_out', 'interrupted'].includes(body.status)) {
        expect(body.answer).toBe('the final answer');
        expect(body.finished_at).not.toBeNull();
      }
    } else expect(res.status).toBe(204);
  });
});

describe('streams', () => {
  it('a multiplexed stream replaying a big upstream history page is paced, not dropped as slow by a live lane', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV });
    bridge.sim.createSession('b-hist', { initialEvents: 60, detailBytes: 250_000 });
    bridge.sim.createSession('a-live', { initialEvents: 1, emitEveryMs: 100, emitCount: 1000, detailBytes: 200 });
    // Someone resumed b-hist near its end: its feed holds only the last events, the rest comes from upstream.
    const warm = record(`${bridge.url}/sessions/b-hist/events?from_index=59`);
    await warm.until((x) => x.indices().length === 1);
    const u = new URL(bridge.url);
    const s = connect({ host: u.hostname, port: Number(u.port) });
    s.on('error', () => {});
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.write(`GET /events?sessions=a-live,b-hist HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`);
    // Read steadily but slowly (about 1 MB/s).
    const t = setInterval(() => {
      let n = 0;
      let c: Buffer | null;
      while (n < 100_000 && (c = s.read() as Buffer | null) !== null) n += c.length;
    }, 100);
    const outcome = await Promise.race([closed.then(() => 'closed'), pause(8000).then(() => 'open')]);
    clearInterval(t);
    s.destroy();
    warm.close();
    expect(outcome).toBe('open');
    expect(bridge.server.metrics.stats.slowDropped).toBe(0);
  });

  it('an idle stream gets a byte at least every HEARTBEAT_SECONDS', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, UPSTREAM_WAIT_SECONDS: '30', HEARTBEAT_SECONDS: '1.5' }, { maxWaitSeconds: 60 });
    bridge.sim.createSession('hb', { initialEvents: 1 });
    const u = new URL(bridge.url);
    const times: number[] = [];
    const s = connect({ host: u.hostname, port: Number(u.port) });
    s.on('error', () => {});
    s.on('data', () => times.push(performance.now()));
    s.write(`GET /sessions/hb/events HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`);
    await pause(6000);
    s.destroy();
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(gaps.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(1500);
  });
});

describe('metrics and CORS heads', () => {
  it('counts each refusal once, under the limit that refused it', async () => {
    // A token every 10 s: the three calls below fall within one however slow the machine (refill is not what is tested).
    bridge = await startBridge({ RATE_LIMIT_PER_IP: '0.1', RATE_LIMIT_BURST: '1' });
    bridge.sim.createSession('m', { initialEvents: 1, finished: true });
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${bridge.url}/sessions/m/changes`);
      codes.push(r.status);
      await r.arrayBuffer();
    }
    expect(codes.filter((c) => c === 429)).toHaveLength(2);
    const m = await scrape(bridge.url);
    expect(m.value('pollcast_requests_rejected_total', { reason: 'rate_limit' })).toBe(2);
    expect(m.value('pollcast_requests_rejected_total', { reason: 'too_many_requests' })).toBe(0);
    expect(m.value('pollcast_requests_rejected_total')).toBe(2);
  });

  it('stream heads written by pollcast carry the same CORS headers as hono\'s answers', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, CORS_ORIGINS: 'https://a.example' });
    bridge.sim.createSession('c1', { initialEvents: 1 });
    const head = (path: string, method: string, origin: string) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const req = request(`${bridge!.url}${path}`, { method, headers: { origin } }, (res) => {
          const h: Record<string, unknown> = { status: res.statusCode };
          for (const [k, v] of Object.entries(res.headers)) if (k.startsWith('access-control') || k === 'vary') h[k] = v;
          res.destroy();
          resolve(h);
        });
        req.on('error', reject);
        req.end();
      });
    for (const origin of ['https://a.example', 'https://evil.example']) {
      const reference = await head('/sessions/c1/changes?from_index=x', 'GET', origin); // hono's middleware, a 400
      const pick = (h: Record<string, unknown>) => ({ origin: h['access-control-allow-origin'], expose: h['access-control-expose-headers'], vary: h.vary });
      for (const [path, method] of [['/sessions/c1/events', 'GET'], ['/sessions/c1/events', 'HEAD'], ['/sessions/c1/events?from_index=x', 'GET'], ['/events?session=c1', 'GET'], ['/events?session=c1', 'HEAD']] as const) {
        expect(pick(await head(path, method, origin)), `${method} ${path} from ${origin}`).toEqual(pick(reference));
      }
    }
  });
});
