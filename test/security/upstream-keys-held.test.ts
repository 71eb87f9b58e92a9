/**
 * AUTH=upstream while the upstream cannot judge a key (CONTRACT.md section 3:
 * an outage before the stream starts is a `200` stream with `upstream_error`;
 * section 4: a key reads a session only once the upstream accepted it). The
 * stream opens at once and reads nothing; accepted, the same response goes
 * on; refused, it ends with the refusal and carries no byte of the session.
 * Against the simulator in real-API mode, whose `/status` fails on script.
 */
import { connect as h2connect } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { h2request } from '../helpers/h2.ts';
import { eventually, range, record, startBridge, type Bridge } from '../helpers/harness.ts';
import { parseSse, readAll, sessionQuery } from '../helpers/multi.ts';
import { ONE_ADDRESS_ENV } from '../resilience/helpers.ts';
import { hold, JWT_SECRET, metric, token } from './helpers.ts';

const KEY_A = 'sk-org-a-Hq4Tn8Vw2Zc6';
const OUTAGE = (n: number) => Array.from({ length: n }, () => ({ kind: 'http' as const, status: 500 }));

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

const KEY_B = 'sk-org-b-Lp7Rd3Kx9Mf2';

/** A bridge on the real dialect (no operator key: loops run on callers' keys), and a finished session of org A. */
async function start(env: Record<string, string> = {}): Promise<Bridge> {
  bridge = await startBridge({ ...ONE_ADDRESS_ENV, AUTH: 'upstream', UPSTREAM_WAIT_SECONDS: '1', ...env }, { api: 'real', apiKeys: { [KEY_A]: 'org-a', [KEY_B]: 'org-b' } });
  bridge.sim.createSession('a-1', { organisation: 'org-a', initialEvents: 4, finished: true });
  bridge.sim.createSession('b-1', { organisation: 'org-b', initialEvents: 4, finished: true });
  return bridge;
}

/** GET a stream with key A; its status, content type and whole body (the sessions are finished, so it ends). */
async function stream(b: Bridge, path: string): Promise<{ status: number; type: string | null; frames: ReturnType<typeof parseSse>; text: string }> {
  const res = await fetch(`${b.url}${path}`, { headers: { authorization: `Bearer ${KEY_A}` }, signal: AbortSignal.timeout(30_000) });
  const text = await readAll(res);
  return { status: res.status, type: res.headers.get('content-type'), frames: parseSse(text), text };
}

const eventIndices = (frames: ReturnType<typeof parseSse>) => frames.flatMap((f) => (f.event === undefined && f.data !== undefined ? [JSON.parse(f.data).index as number] : []));

describe('AUTH=upstream: a stream opened while the upstream cannot judge the key', () => {
  it('is a 200 stream showing upstream_error that reads nothing until the key is accepted, then goes on on the same response', async () => {
    const b = await start();
    // The first check and the first check again fail; the next is accepted.
    b.sim.faults.script(OUTAGE(2), { session: 'a-1', endpoint: 'status' });
    const r = await stream(b, '/sessions/a-1/events');
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/event-stream/);
    expect(r.frames[0]!.retry, 'the stream opens with retry:').toBeDefined();
    expect(r.frames.filter((f) => f.retry !== undefined), 'one retry: for the whole response').toHaveLength(1);
    const first = r.frames[1]!;
    expect(first.event).toBe('status');
    expect(JSON.parse(first.data!).upstream_error).toMatch(/could not check the key/);
    // Nothing of the session before a status without upstream_error (the key accepted, the loop answered).
    const firstKnown = r.frames.findIndex((f) => f.event === 'status' && JSON.parse(f.data!).upstream_error === undefined);
    expect(firstKnown).toBeGreaterThan(1);
    expect(r.frames.slice(0, firstKnown).some((f) => f.id !== undefined || (f.event === undefined && f.data !== undefined))).toBe(false);
    expect(eventIndices(r.frames)).toEqual(range(4));
    const end = r.frames.at(-1)!;
    expect(end.event).toBe('end');
    expect(JSON.parse(end.data!).last_index).toBe(3);
    expect(await metric(b, 'pollcast_streams_held_total')).toBe(1);
    expect(await metric(b, 'pollcast_streams_opened_total'), 'a held stream that goes on is one stream').toBe(1);
    expect(await metric(b, 'pollcast_upstream_auth_checks_total{outcome="unavailable"}')).toBe(2);
  }, 40_000);

  it('opens within the grace while a silent upstream has not judged the key yet (one session or several), then goes on once it does', async () => {
    const b = await start();
    b.sim.createSession('a-2', { organisation: 'org-a', initialEvents: 3, finished: true });
    // The first check of each hangs (pollcast gives it up after 10 s); the next is accepted.
    b.sim.faults.script([{ kind: 'hang' }], { session: 'a-1', endpoint: 'status' });
    b.sim.faults.script([{ kind: 'hang' }], { session: 'a-2', endpoint: 'status' });
    for (const path of ['/sessions/a-1/events', `/events?${sessionQuery(['a-2'])}`]) {
      const started = performance.now();
      const res = await fetch(`${b.url}${path}`, { headers: { authorization: `Bearer ${KEY_A}` }, signal: AbortSignal.timeout(30_000) });
      const reader = res.body!.getReader();
      let head = '';
      while (!head.includes('event: status')) head += new TextDecoder().decode((await reader.read()).value);
      const firstStatusMs = performance.now() - started;
      expect(res.status).toBe(200);
      // The loop's own first-contact grace is 2 s; before, the check's whole 10 s timeout.
      expect(firstStatusMs, `${path}: first status after ${Math.round(firstStatusMs)} ms`).toBeLessThan(4_000);
      let text = head;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      const frames = parseSse(text);
      const first = frames.find((f) => f.event === 'status')!;
      expect(JSON.parse(first.data!).upstream_error).toMatch(/could not check the key/);
      expect(eventIndices(frames)).toEqual(path.startsWith('/sessions') ? range(4) : range(3));
      expect(frames.at(-1)!.event).toBe('end');
    }
  }, 60_000);

  it('refuses a multi-session open at the grace with a refusal already in, not held on another session\'s silent check (a review)', async () => {
    const b = await start();
    // Key A's check of a-1 hangs; of b-1 (organisation B's) it is refused at once (404).
    b.sim.faults.script([{ kind: 'hang' }], { session: 'a-1', endpoint: 'status' });
    const started = performance.now();
    const res = await fetch(`${b.url}/events?${sessionQuery(['a-1', 'b-1'])}`, { headers: { authorization: `Bearer ${KEY_A}` }, signal: AbortSignal.timeout(30_000) });
    const body = (await res.json()) as { code: string; error: string };
    expect(res.status).toBe(403);
    expect(body).toMatchObject({ code: 'forbidden' });
    expect(body.error).toMatch(/1 of the 2 sessions/);
    // The grace (2 s), not the silent check's 10 s.
    expect(performance.now() - started).toBeLessThan(5_000);
  }, 30_000);

  it('ends with event: error naming the refusal when the upstream then refuses the key, and the reconnect gets the status code', async () => {
    const b = await start();
    b.sim.faults.script([...OUTAGE(1), { kind: 'http', status: 403 }], { session: 'a-1', endpoint: 'status' });
    const r = await stream(b, '/sessions/a-1/events');
    expect(r.status).toBe(200);
    const last = r.frames.at(-1)!;
    expect(last.event).toBe('error');
    expect(JSON.parse(last.data!)).toMatchObject({ error: 'forbidden', status: 403 });
    expect(r.frames.some((f) => f.id !== undefined || f.event === 'end')).toBe(false);
    expect(r.text).not.toContain('"index"');
    // What EventSource's reconnect meets: the refusal, kept a few seconds, as a status code (it stops there).
    const again = await fetch(`${b.url}/sessions/a-1/events`, { headers: { authorization: `Bearer ${KEY_A}` } });
    expect(again.status).toBe(403);
    expect((await again.json()).code).toBe('forbidden');
  }, 40_000);

  it('ends with event: end and upstream_error when the key proves unable to see the session (404), with no byte of it', async () => {
    const b = await start();
    b.sim.faults.script(OUTAGE(1), { session: 'b-1', endpoint: 'status' });
    const r = await stream(b, '/sessions/b-1/events');
    expect(r.status).toBe(200);
    const end = r.frames.at(-1)!;
    expect(end.event).toBe('end');
    expect(JSON.parse(end.data!)).toMatchObject({ last_index: null, upstream_error: 'session not found upstream (404)' });
    expect(eventIndices(r.frames)).toEqual([]);
    const secret = JSON.stringify(b.sim.events('b-1')[0]!.data);
    expect(r.text).not.toContain(secret.slice(1, -1));
  }, 40_000);

  it('holds a multi-session stream the same way: each session shows upstream_error, then every event once and its end', async () => {
    const b = await start();
    b.sim.faults.script(OUTAGE(1), { session: 'a-1', endpoint: 'status' });
    const r = await stream(b, `/events?${sessionQuery(['a-1'])}`);
    expect(r.status).toBe(200);
    const first = r.frames.find((f) => f.event === 'status')!;
    expect(JSON.parse(first.data!)).toMatchObject({ session: 'a-1', upstream_error: expect.stringMatching(/could not check the key/) });
    expect(eventIndices(r.frames)).toEqual(range(4));
    expect(r.frames.filter((f) => f.event === 'end')).toHaveLength(1);
    expect(r.frames.filter((f) => f.retry !== undefined)).toHaveLength(1);
  }, 40_000);

  it('lets an EventSource read the whole session through the outage, each event once', async () => {
    const b = await start();
    b.sim.faults.script(OUTAGE(2), { session: 'a-1', endpoint: 'status' });
    const es = record(`${b.url}/sessions/a-1/events?access_token=${KEY_A}`);
    expect((await es.ended(30_000)).last_index).toBe(3);
    expect(es.indices()).toEqual(range(4));
    expect(es.statuses()[0]!.upstream_error).toMatch(/could not check the key/);
  }, 40_000);

  it('waits as long as the upstream\'s Retry-After asks before asking again, for one session or several', async () => {
    const b = await start();
    for (const id of ['a-2', 'a-3']) b.sim.createSession(id, { organisation: 'org-a', initialEvents: 2, finished: true });
    // Sessions not asked about before (a verdict is kept): alone, a-1 asks for 3 s; together, a-3 fails
    // plainly (kept 1 s) and a-2 asks for 3 s, and the longer wait wins.
    b.sim.faults.script([{ kind: 'rate-limit', retryAfterSeconds: 3 }], { session: 'a-1', endpoint: 'status' });
    b.sim.faults.script([{ kind: 'rate-limit', retryAfterSeconds: 3 }], { session: 'a-2', endpoint: 'status' });
    b.sim.faults.script(OUTAGE(1), { session: 'a-3', endpoint: 'status' });
    for (const path of ['/sessions/a-1/events', `/events?${sessionQuery(['a-3', 'a-2'])}`]) {
      const startedMs = Date.now();
      const held = await hold(`${b.url}${path}`, { authorization: `Bearer ${KEY_A}` });
      expect(held.status, path).toBe(200);
      await held.readUntil((t) => /\nid: /.test(t), 20_000);
      expect(Date.now() - startedMs, path).toBeGreaterThanOrEqual(2900);
      held.close();
    }
  }, 60_000);

  it('asks the upstream about one key at most about once a second however many streams are held on it', async () => {
    const b = await start();
    b.sim.faults.script(OUTAGE(500), { session: 'a-1', endpoint: 'status' });
    // Before the opens: the calls counted below include theirs.
    const startedMs = Date.now();
    const streams = await Promise.all(range(20).map(() => hold(`${b.url}/sessions/a-1/events`, { authorization: `Bearer ${KEY_A}` })));
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const calls = b.sim.requests().filter((q) => q.target.includes('/sessions/a-1/status')).length;
    const seconds = (Date.now() - startedMs) / 1000;
    expect(streams.every((h) => h.status === 200)).toBe(true);
    // One call opened the outage; then at most one per kept failure (1 s), whatever the 20 schedules.
    expect(calls).toBeLessThanOrEqual(Math.ceil(seconds) + 2);
    for (const h of streams) h.close();
  }, 30_000);

  it('takes no per-session stream slot until the key is accepted: a key held in an outage does not shut out an accepted one', async () => {
    const b = await start({ MAX_STREAMS_PER_SESSION: '1' });
    b.sim.createSession('live', { organisation: 'org-a', emitEveryMs: 200, emitCount: 100 });
    // Key A is accepted for the session before the outage (its verdict is kept 60 s).
    expect((await fetch(`${b.url}/sessions/live/status`, { headers: { authorization: `Bearer ${KEY_A}` } })).status).toBe(200);
    b.sim.faults.script(OUTAGE(3), { session: 'live', endpoint: 'status' });
    const other = await hold(`${b.url}/sessions/live/events`, { authorization: `Bearer ${KEY_B}` });
    expect(other.status).toBe(200);
    await other.readUntil((t) => t.includes('upstream_error'));
    const mine = await hold(`${b.url}/sessions/live/events`, { authorization: `Bearer ${KEY_A}` });
    expect(mine.status, 'the accepted key gets the session\'s one slot').toBe(200);
    await mine.readUntil((t) => /\nid: /.test(t), 15_000);
    // Key B is then judged (org B cannot see it: 404) and its held stream ends without a byte of the session.
    const text = await other.readUntil((t) => t.includes('event: end'), 20_000);
    expect(text).not.toMatch(/\nid: /);
    mine.close();
    other.close();
  }, 60_000);

  it('is dropped, not held, when shutdown begins while its key is being asked about', async () => {
    const b = await start({ UPSTREAM_TIMEOUT_MARGIN_SECONDS: '1' });
    b.sim.faults.script([{ kind: 'hang' }], { session: 'a-1', endpoint: 'status' });
    const opening = fetch(`${b.url}/sessions/a-1/events`, { headers: { authorization: `Bearer ${KEY_A}` } }).then(
      async (r) => ({ status: r.status, body: await r.text().catch((e: Error) => `<<${e.message}>>`) }),
      (e: Error) => ({ status: 0, body: `<<${e.message}>>` }),
    );
    await eventually(() => b.sim.requests().some((q) => q.target.includes('/sessions/a-1/status')), 5000, 'the key check to be asked');
    const closing = b.close();
    bridge = undefined;
    const answer = await opening;
    await closing;
    expect(answer.status, `a stream opened after shutdown began: ${answer.body}`).toBe(0);
    expect(b.server.streams.size).toBe(0);
    expect(b.server.metrics.stats.streamsHeld).toBe(0);
    expect(b.server.metrics.stats.upstreamAuthChecks.unavailable, 'the check did come back unavailable, during shutdown').toBe(1);
  }, 30_000);

  it('holds no loop and no stream once its client leaves, and shutdown ends it', async () => {
    const b = await start();
    b.sim.faults.script(OUTAGE(50), { session: 'a-1', endpoint: 'status' });
    const held = await hold(`${b.url}/sessions/a-1/events`, { authorization: `Bearer ${KEY_A}` });
    expect(held.status).toBe(200);
    await held.readUntil((t) => t.includes('upstream_error'));
    expect(b.server.streams.size).toBe(1);
    held.close();
    await eventually(() => b.server.streams.size === 0, 5000, 'the held stream to be let go');
    expect(b.server.hub.activeCount, 'no loop was started for an unjudged key').toBe(0);
    const second = await hold(`${b.url}/sessions/a-1/events`, { authorization: `Bearer ${KEY_A}` });
    await second.readUntil((t) => t.includes('upstream_error'));
    const closing = b.close();
    bridge = undefined;
    await second.readUntil(() => false, 5000).catch(() => undefined);
    await closing;
    // Ended by shutdown as a tracked stream (not cut with the connections at the deadline, counted as 'client').
    expect(b.server.metrics.stats.streamsClosed).toEqual({ client: 1, shutdown: 1 });
  }, 40_000);
});

describe('AUTH=upstream: what a held stream keeps of the ask', () => {
  it('resumes after Last-Event-ID once the key is accepted: the events after it, each once', async () => {
    const b = await start();
    b.sim.faults.script(OUTAGE(2), { session: 'a-1', endpoint: 'status' });
    const res = await fetch(`${b.url}/sessions/a-1/events`, { headers: { authorization: `Bearer ${KEY_A}`, 'last-event-id': '1' }, signal: AbortSignal.timeout(30_000) });
    expect(res.status).toBe(200);
    const frames = parseSse(await readAll(res));
    expect(JSON.parse(frames.find((f) => f.event === 'status')!.data!).upstream_error).toMatch(/could not check the key/);
    expect(eventIndices(frames)).toEqual([2, 3]);
    expect(frames.filter((f) => f.id !== undefined).map((f) => f.id)).toEqual(['2', '3']);
    expect(await metric(b, 'pollcast_streams_held_total')).toBe(1);
  }, 40_000);

  it('resumes a multi-session stream from its cursor once the keys are accepted, exactly where it left off', async () => {
    const b = await start({ AUTH_UPSTREAM_CACHE_SECONDS: '1' });
    b.sim.createSession('a-2', { organisation: 'org-a', initialEvents: 3, finished: true });
    const path = `/events?${sessionQuery(['a-1', 'a-2'])}`;
    const whole = await stream(b, path);
    const pairs = (frames: ReturnType<typeof parseSse>) =>
      frames.flatMap((f) => (f.event === undefined && f.data !== undefined ? [`${JSON.parse(f.data).session}#${JSON.parse(f.data).index as number}`] : []));
    const all = whole.frames.filter((f) => f.event === undefined && f.data !== undefined);
    expect(all).toHaveLength(7);
    const cut = 3;
    const cursor = all[cut - 1]!.id!;
    const expected = pairs(all.slice(cut));
    // The verdicts kept 1 s run out; the next checks of both pairs fail once.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    b.sim.faults.script(OUTAGE(1), { session: 'a-1', endpoint: 'status' });
    b.sim.faults.script(OUTAGE(1), { session: 'a-2', endpoint: 'status' });
    const heldBefore = await metric(b, 'pollcast_streams_held_total');
    const res = await fetch(`${b.url}${path}`, { headers: { authorization: `Bearer ${KEY_A}`, 'last-event-id': cursor }, signal: AbortSignal.timeout(30_000) });
    expect(res.status).toBe(200);
    const frames = parseSse(await readAll(res));
    expect(frames.some((f) => f.event === 'status' && /could not check the key/.test(JSON.parse(f.data!).upstream_error ?? ''))).toBe(true);
    expect(await metric(b, 'pollcast_streams_held_total')).toBe(heldBefore + 1);
    expect(pairs(frames).sort()).toEqual([...expected].sort());
    expect(frames.filter((f) => f.event === 'end').map((f) => JSON.parse(f.data!).session).sort(), 'one end per session').toEqual(['a-1', 'a-2']);
  }, 40_000);

  it('holds and then goes on over HTTP/2 like over HTTP/1.1', async () => {
    const b = await start();
    b.sim.faults.script(OUTAGE(2), { session: 'a-1', endpoint: 'status' });
    const session = h2connect(b.url);
    try {
      const req = h2request(session, '/sessions/a-1/events', { authorization: `Bearer ${KEY_A}` });
      const headers = await req.headers;
      expect(headers[':status']).toBe(200);
      expect(headers['content-type']).toMatch(/^text\/event-stream/);
      const frames = parseSse(await req.done(30_000));
      expect(JSON.parse(frames.find((f) => f.event === 'status')!.data!).upstream_error).toMatch(/could not check the key/);
      expect(eventIndices(frames)).toEqual(range(4));
      expect(frames.at(-1)!.event).toBe('end');
      expect(await metric(b, 'pollcast_streams_held_total')).toBe(1);
    } finally {
      session.close();
    }
  }, 40_000);

  it('answers HEAD on a key not judged yet with the stream\'s head, and holds nothing', async () => {
    const b = await start();
    b.sim.faults.script(OUTAGE(1), { session: 'a-1', endpoint: 'status' });
    const res = await fetch(`${b.url}/sessions/a-1/events`, { method: 'HEAD', headers: { authorization: `Bearer ${KEY_A}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(await res.text()).toBe('');
    expect(b.server.streams.size).toBe(0);
    expect(b.server.hub.activeCount).toBe(0);
    expect(await metric(b, 'pollcast_streams_held_total')).toBe(0);
    // A refused key is still refused on HEAD (the refusal is not hidden behind the outage).
    b.sim.faults.script([{ kind: 'http', status: 403 }], { session: 'a-1', endpoint: 'status' });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const refused = await fetch(`${b.url}/sessions/a-1/events`, { method: 'HEAD', headers: { authorization: `Bearer ${KEY_A}` } });
    expect(refused.status).toBe(403);
  }, 30_000);

  it('combined with tokens: a key is held while a pollcast token is judged by its claims and never held', async () => {
    const b = await start({ AUTH_JWT_SECRET: JWT_SECRET, UPSTREAM_API_KEY: KEY_A });
    b.sim.faults.script(OUTAGE(2), { session: 'a-1', endpoint: 'status' });
    const jwt = await token(['a-1']);
    const byToken = await hold(`${b.url}/sessions/a-1/events`, { authorization: `Bearer ${jwt}` });
    expect(byToken.status).toBe(200);
    expect(await metric(b, 'pollcast_streams_held_total'), 'a token is not a key to ask the upstream about').toBe(0);
    const text = await byToken.readUntil((t) => t.includes('event: end'), 30_000);
    expect(eventIndices(parseSse(text))).toEqual(range(4));
    byToken.close();
    b.sim.faults.script(OUTAGE(1), { session: 'a-1', endpoint: 'status' });
    const r = await stream(b, '/sessions/a-1/events');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.frames.find((f) => f.event === 'status')!.data!).upstream_error).toMatch(/could not check the key/);
    expect(eventIndices(r.frames)).toEqual(range(4));
    expect(await metric(b, 'pollcast_streams_held_total')).toBe(1);
  }, 60_000);
});
