/** The SSE stream end to end: simulator → pollcast → real EventSource. */
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { startPollcast } from '../../src/server.ts';
import { createSimulator } from '../../src/simulator/index.ts';
import { eventually, range, record, startBridge, strictGet, type Bridge } from '../helpers/harness.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { silentLogger } from '../../src/log.ts';
import { ONE_ADDRESS_ENV } from '../resilience/helpers.ts';

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

describe('GET /sessions/{id}/events', () => {
  it('streams a finished session in full: retry, status snapshot, every event once in order, end', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('done-1', { initialEvents: 25, finished: true });
    const res = await fetch(`${bridge.url}/sessions/done-1/events`);
    expect(res.status).toBe(200);
    // Exactly as CONTRACT.md section 3 writes them.
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const text = await res.text();
    // The wire order of the contract: retry first, then the status snapshot, then events, then end.
    expect(text.startsWith('retry: ')).toBe(true);
    const statusAt = text.indexOf('event: status');
    const firstEventAt = text.indexOf('id: 0\n');
    const endAt = text.indexOf('event: end');
    expect(statusAt).toBeGreaterThan(0);
    expect(firstEventAt).toBeGreaterThan(statusAt);
    expect(endAt).toBeGreaterThan(text.indexOf('id: 24\n'));

    const r = record(`${bridge.url}/sessions/done-1/events`);
    const end = await r.ended();
    expect(r.messages[0]!.type).toBe('status');
    expect(r.indices()).toEqual(range(25));
    const upstream = bridge.sim.events('done-1');
    for (const m of r.messages.filter((x) => x.type === 'message')) {
      expect(m.id).toBe(String(m.data.index));
      expect(m.data.type).toBe(upstream[m.data.index]!.type);
      expect(m.data.timestamp).toBe(upstream[m.data.index]!.timestamp);
      expect(m.data.data).toEqual(upstream[m.data.index]!.data);
    }
    expect(end.last_index).toBe(24);
    expect(end.status).toBe('completed');
    expect(end.finished_at).toEqual(expect.any(String));
    expect(end).toHaveProperty('answer');
    expect(end).toHaveProperty('metrics');
  });

  it('delivers live events as they happen, then status changes and end', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('live-1');
    const r = record(`${bridge.url}/sessions/live-1/events`);
    await r.until((x) => x.statuses().length > 0);
    bridge.sim.appendEvents('live-1', 2);
    await r.until((x) => x.indices().length === 2);
    bridge.sim.appendEvents('live-1', 3);
    await r.until((x) => x.indices().length === 5);
    bridge.sim.finish('live-1', { answer: 'forty-two' });
    const end = await r.ended();
    expect(r.indices()).toEqual(range(5));
    expect(end.answer).toBe('forty-two');
    expect(end.last_index).toBe(4);
    expect(r.statuses().at(-1)!.status).toBe('completed');
    // finished_at only with a status that says the session is over (the changes answer claims the end before
    // /status confirms it: no frame says running with it).
    for (const st of r.statuses()) if (st.finished_at !== null) expect(st.status).toBe('completed');
    expect(r.statuses().at(-1)!.finished_at).toEqual(expect.any(String));
  });

  it('runs one upstream loop for 50 concurrent subscribers', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('fan-1', { emitEveryMs: 20, emitCount: 40 });
    const recorders = range(50).map(() => record(`${bridge!.url}/sessions/fan-1/events`));
    await Promise.all(recorders.map((r) => r.ended(20_000)));
    for (const r of recorders) expect(r.indices()).toEqual(range(40));
    const stats = bridge.sim.stats('fan-1');
    expect(stats.maxInFlightChanges).toBe(1);
    // One loop: its calls are bounded by events and status checks, not by subscribers.
    expect(stats.changes).toBeLessThan(60);
  });

  it('replays from Last-Event-ID and from from_index', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('replay-1', { initialEvents: 30, finished: true });
    const byHeader = record(`${bridge.url}/sessions/replay-1/events`, { headers: { 'Last-Event-ID': '9' } });
    const byQuery = record(`${bridge.url}/sessions/replay-1/events?from_index=20`);
    await Promise.all([byHeader.ended(), byQuery.ended()]);
    expect(byHeader.indices()).toEqual(range(20, 10));
    expect(byQuery.indices()).toEqual(range(10, 20));
    // Last-Event-ID wins over from_index (it is what a reconnecting browser sends).
    const both = record(`${bridge.url}/sessions/replay-1/events?from_index=3`, { headers: { 'Last-Event-ID': '27' } });
    await both.ended();
    expect(both.indices()).toEqual([28, 29]);
  });

  it('resumes a stream cut mid-way with no gap and no repeat (EventSource reconnect)', async () => {
    bridge = await startBridge({ SSE_RETRY_MS: '50' });
    bridge.sim.createSession('cut-1', { emitEveryMs: 15, emitCount: 80 });
    const r = record(`${bridge.url}/sessions/cut-1/events`);
    await r.until((x) => x.indices().length >= 10);
    bridge.server.streams.closeAll('shutdown');
    await r.until((x) => x.indices().length >= 40);
    bridge.server.streams.closeAll('shutdown');
    await r.ended(20_000);
    expect(r.indices()).toEqual(range(80));
    // Each reconnect starts with a fresh status snapshot.
    expect(r.statuses().length).toBeGreaterThanOrEqual(3);
  });

  it('pages through an upstream that returns fewer events than exist', async () => {
    bridge = await startBridge({ UPSTREAM_PAGE_SIZE: '10' }, { maxLimit: 10 });
    bridge.sim.createSession('page-1', { initialEvents: 95, finished: true });
    const r = record(`${bridge.url}/sessions/page-1/events`);
    await r.ended();
    expect(r.indices()).toEqual(range(95));
    // Full pages are followed at once with wait 0; never a long wait in between.
    expect(bridge.sim.stats('page-1').changesByWait.waiting).toBe(0);
  });

  it('follows an upstream whose pages are smaller than pollcast asked for', async () => {
    bridge = await startBridge({ UPSTREAM_PAGE_SIZE: '50' }, { maxLimit: 7 });
    bridge.sim.createSession('page-2', { initialEvents: 40, finished: true });
    const r = record(`${bridge.url}/sessions/page-2/events`);
    await r.ended();
    expect(r.indices()).toEqual(range(40));
  });

  it('serves a late subscriber of a finished session without any upstream call', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('late-1', { initialEvents: 12, finished: true });
    const first = record(`${bridge.url}/sessions/late-1/events`);
    await first.ended();
    await eventually(() => bridge!.server.hub.activeCount === 0, 5000, 'the loop to retire');
    bridge.sim.resetStats();
    const late = record(`${bridge.url}/sessions/late-1/events`);
    await late.ended();
    expect(late.indices()).toEqual(range(12));
    const s = bridge.sim.stats('late-1');
    expect(s.changes + s.status).toBe(0);
  });

  it('fetches events that fell out of the buffer again from upstream', async () => {
    bridge = await startBridge({ SESSION_MAX_EVENTS: '20' });
    bridge.sim.createSession('big-1', { initialEvents: 100, finished: true });
    const first = record(`${bridge.url}/sessions/big-1/events`);
    await first.ended();
    expect(first.indices()).toEqual(range(100));
    const again = record(`${bridge.url}/sessions/big-1/events`);
    await again.ended();
    expect(again.indices()).toEqual(range(100));
    const mid = record(`${bridge.url}/sessions/big-1/events`, { headers: { 'Last-Event-ID': '49' } });
    await mid.ended();
    expect(mid.indices()).toEqual(range(50, 50));
  });

  it('delivers live ~100 KB events to every caught-up HTTP/1.1 subscriber exactly as the upstream sent them', async () => {
    bridge = await startBridge();
    const b = bridge;
    b.sim.createSession('shots-live', { detailBytes: 100_000 });
    const url = `${b.url}/sessions/shots-live/events`;
    const readers = [0, 1].map(() => record(url));
    let opens = 0;
    for (const r of readers) r.es.addEventListener('open', () => opens++);
    // A strict reader too (node:http's parser fails the response on any malformed chunk).
    const raw = strictGet(url);
    raw.catch(() => {}); // awaited below; a failure must not surface first as an unhandled rejection
    await Promise.all(readers.map((r) => r.until((x) => x.statuses().length >= 1)));
    await eventually(() => b.server.streams.size === 3, 5000, 'three streams open');
    // One event alone, then five in one append: live chunks of one big frame and of several.
    b.sim.appendEvents('shots-live', 1);
    await Promise.all(readers.map((r) => r.until((x) => x.indices().length === 1)));
    b.sim.appendEvents('shots-live', 5);
    await Promise.all(readers.map((r) => r.until((x) => x.indices().length === 6)));
    b.sim.finish('shots-live', {});
    await Promise.all(readers.map((r) => r.ended()));
    const upstream = (await (await fetch(`${b.sim.url}/sessions/shots-live/changes?from_index=0&limit=100&include_details=true`)).json()) as { new_events: Array<{ data: unknown }> };
    expect(upstream.new_events).toHaveLength(6);
    expect(JSON.stringify(upstream.new_events[0]!.data).length).toBeGreaterThan(100_000);
    const sent = upstream.new_events.map((e) => e.data);
    for (const r of readers) {
      expect(r.indices()).toEqual(range(6));
      expect(r.messages.filter((m) => m.type === 'message').map((m) => m.data.data)).toEqual(sent);
    }
    expect(opens).toBe(2); // no reader had to reconnect
    const frames = (await raw).split('\n\n').filter((f) => f.startsWith('id: '));
    expect(frames.map((f) => JSON.parse(f.slice(f.indexOf('data: ') + 6)).data)).toEqual(sent);
  });

  it('keeps include_details=false and true as separate loops with their own data', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('det-1', { initialEvents: 5, finished: true, detailBytes: 500 });
    const full = record(`${bridge.url}/sessions/det-1/events`);
    const slim = record(`${bridge.url}/sessions/det-1/events?include_details=false`);
    await Promise.all([full.ended(), slim.ended()]);
    expect(slim.indices()).toEqual(range(5));
    const fullSize = JSON.stringify(full.messages.filter((m) => m.type === 'message')).length;
    const slimSize = JSON.stringify(slim.messages.filter((m) => m.type === 'message')).length;
    expect(slimSize).toBeLessThan(fullSize);
  });

  it('sends a status event when metrics change without a new event', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('stat-1');
    const r = record(`${bridge.url}/sessions/stat-1/events`);
    await r.until((x) => x.statuses().length === 1);
    // Change the metrics while the loop's long-poll is held, as a real session would.
    await eventually(() => bridge!.sim.stats('stat-1').inFlightChanges === 1, 5000, 'the long-poll to start');
    bridge.sim.setStatus('stat-1', { metrics: { steps: 7, total_cost: 1.25 } });
    await r.until((x) => x.statuses().some((s) => s.metrics.steps === 7));
    r.close();
  });

  it('stops the loop after the idle grace period once the last subscriber leaves', async () => {
    bridge = await startBridge({ IDLE_GRACE_SECONDS: '0.3' });
    bridge.sim.createSession('idle-1');
    const r = record(`${bridge.url}/sessions/idle-1/events`);
    await r.until((x) => x.statuses().length === 1);
    await eventually(() => bridge!.sim.stats('idle-1').inFlightChanges === 1, 5000, 'the long-poll to start');
    r.close();
    await eventually(() => bridge!.server.hub.activeCount === 0, 5000, 'the loop to stop');
    await eventually(() => bridge!.sim.stats('idle-1').inFlightChanges === 0, 5000, 'the long-poll to be abandoned');
    const before = bridge.sim.stats('idle-1').changes;
    bridge.sim.appendEvents('idle-1', 1);
    await new Promise((res) => setTimeout(res, 300));
    expect(bridge.sim.stats('idle-1').changes).toBe(before);
  });

  it('an idle session is let go of when IDLE_CACHE_SECONDS is up, with nothing touching the cache', async () => {
    // Memory audit, 7 Dec 2026: idle sessions stayed in the cache past their 10 minutes (lru-cache drops an expired
    // entry only when something touches it), and the gauges, which skip expired entries, said they were gone.
    bridge = await startBridge({ IDLE_GRACE_SECONDS: '0.3', IDLE_CACHE_SECONDS: '3' });
    for (const id of ['kept-1', 'kept-2']) bridge.sim.createSession(id, { initialEvents: 3, imageBytes: 0 });
    // Both read and left at once, so both are in the cache together well within their 3 s (a review: one after the
    // other under a 1 s time could miss it under load).
    const readers = ['kept-1', 'kept-2'].map((id) => record(`${bridge!.url}/sessions/${id}/events`));
    await Promise.all(readers.map((r) => r.until((x) => x.indices().length === 3)));
    for (const r of readers) r.close();
    await eventually(() => bridge!.server.hub.activeCount === 0 && bridge!.server.hub.cachedEntries === 2, 5000, 'both sessions idle in the cache');
    await eventually(() => bridge!.server.hub.cachedEntries === 0, 8000, 'the cache to let them go');
    expect(bridge.server.hub.sessionsByState()).toEqual({ live: 0, finished: 0, idle: 0 });
  });

  it("a loop's 'feed stopped' line counts the events it read, never less than none (a start past the session's end moves its index back)", async () => {
    // An operator audit (7 Dec 2026): `changes?from_index=100000` on a 5-event session logged `events: -99980`.
    const logged = captureLog('info');
    const sim = await createSimulator({ demo: false, api: 'real' });
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH: 'none', LOG_LEVEL: 'info', IDLE_GRACE_SECONDS: '0.3', UPSTREAM_WAIT_SECONDS: '1' });
    const server = await startPollcast(config, { log: logged.log, processMetrics: false });
    bridge = { sim, server, url: server.url, config, close: async () => (await server.close(), await sim.close()) };
    sim.createSession('far', { initialEvents: 5, imageBytes: 0 });
    expect((await fetch(`${server.url}/sessions/far/changes?from_index=100000&wait_for_seconds=1`)).status).toBe(204);
    await eventually(() => logged.lines().some((l) => l.msg === 'feed stopped'), 10_000, 'the feed to stop');
    const line = logged.lines().find((l) => l.msg === 'feed stopped') as unknown as { events: number; reason: string };
    expect(line.reason).toBe('no subscribers');
    // The loop read the session from its start once the requested one was past its end.
    expect(line.events).toBe(5);
  });

  it('a loop stopped after the idle grace while it reads the final answer ends nothing: the next subscriber gets the end with the answer', async () => {
    // The bridge of startBridge, with a log to read: the stopped loop's 'feed stopped' line says it is done.
    const logged = captureLog('info');
    const sim = await createSimulator({ demo: false, api: 'real' });
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH: 'none', LOG_LEVEL: 'info', IDLE_GRACE_SECONDS: '0.3', UPSTREAM_WAIT_SECONDS: '20' });
    const server = await startPollcast(config, { log: logged.log, processMetrics: false });
    const b: Bridge = (bridge = { sim, server, url: server.url, config, close: async () => (await server.close(), await sim.close()) });
    const stopped = () => logged.lines().filter((l) => l.msg === 'feed stopped').length;
    b.sim.createSession('idle-end', { initialEvents: 3 });
    const r = record(`${b.url}/sessions/idle-end/events`);
    await r.until((x) => x.indices().length === 3);
    // The loop's long-poll is held at the head: the faults below reach only the calls after it.
    await eventually(() => b.sim.stats('idle-end').inFlightChanges === 1 && (b.sim.stats('idle-end').changesByWait.waiting ?? 0) >= 1, 5000, 'the loop holding a long-poll');
    // After the long-poll that brings the closing events (status still running in it): the next finds nothing
    // new (204), /status says completed, the drain's two calls find nothing (204), and the call that reads the
    // end's finished_at and answer hangs.
    b.sim.faults.script([{ kind: 'no-change' }, { kind: 'no-change' }, { kind: 'no-change' }, { kind: 'hang' }], { session: 'idle-end' });
    b.sim.finish('idle-end', { status: 'completed', answer: 'FINAL', closingEvents: true });
    const total = b.sim.events('idle-end').length;
    await r.until((x) => x.indices().length === total && x.statuses().at(-1)?.status === 'completed');
    await eventually(() => b.sim.faults.pending() === 0 && b.sim.stats('idle-end').inFlightChanges === 1, 5000, 'the final answer read hanging');
    expect(r.messages.some((m) => m.type === 'end'), 'no end before the answer').toBe(false);
    // The last subscriber leaves: after the grace the loop is stopped in the middle of that read.
    r.close();
    await eventually(() => b.server.hub.activeCount === 0, 5000, 'the loop to stop');
    await eventually(() => stopped() === 1, 5000, 'the stopped loop to be done');
    // The next subscriber's loop reads the answer and ends the session with it, not a cached end without it.
    const again = record(`${b.url}/sessions/idle-end/events?from_index=${total}`);
    const end = await again.ended(10_000);
    expect(end).toMatchObject({ status: 'completed', answer: 'FINAL', finished_at: expect.any(String), last_index: total - 1 });
    const changes = await fetch(`${b.url}/sessions/idle-end/changes?from_index=0&limit=1`);
    expect(changes.status).toBe(200);
    expect(await changes.json()).toMatchObject({ status: 'completed', answer: 'FINAL', finished_at: expect.any(String) });
  });

  it('writes a heartbeat comment on idle streams', async () => {
    bridge = await startBridge({ HEARTBEAT_SECONDS: '0.2' });
    bridge.sim.createSession('beat-1');
    const ac = new AbortController();
    const res = await fetch(`${bridge.url}/sessions/beat-1/events`, { signal: ac.signal });
    const reader = res.body!.getReader();
    let text = '';
    const deadline = Date.now() + 5000;
    while (!text.includes('\n: ') && !text.startsWith(': ') && Date.now() < deadline) {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
    }
    ac.abort();
    expect(text).toMatch(/(^|\n): keep-alive\n/);
  });
});

describe('readers behind the buffer under a long Retry-After', () => {
  it('warn once for the 429 heard, not once per reconnect served the held failure', async () => {
    // A cluster re-audit, 7 Dec 2026: six readers reconnecting during a 20 s hold wrote about 150 warning lines in 15 s.
    const logged = captureLog('info');
    const sim = await createSimulator({ demo: false, api: 'real' });
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH: 'none', LOG_LEVEL: 'info', SESSION_MAX_EVENTS: '20', ...ONE_ADDRESS_ENV });
    const server = await startPollcast(config, { log: logged.log, processMetrics: false });
    bridge = { sim, server, url: server.url, config, close: async () => (await server.close(), await sim.close()) };
    sim.createSession('held', { initialEvents: 200, imageBytes: 0, finished: true });
    const whole = record(`${server.url}/sessions/held/events?from_index=190`);
    await whole.ended();
    whole.close();
    sim.faults.script(range(100).map(() => ({ kind: 'rate-limit' as const, retryAfterSeconds: 30 })), { session: 'held', endpoint: 'changes' });
    const before = sim.stats('held').changes;
    for (let round = 0; round < 3; round++) {
      // Each reader is told at once (a long Retry-After) and stays open, trying again once the hold is over.
      const readers = range(6).map(() => record(`${server.url}/sessions/held/events?from_index=${10 * round}`));
      for (const r of readers) {
        await r.until((x) => x.statuses().some((st) => /history unavailable upstream \(rate-limited\)/.test(String(st.upstream_error))), 5000);
        expect(r.indices()).toEqual([]);
        r.close();
      }
    }
    expect(sim.stats('held').changes - before).toBe(1);
    expect(logged.lines().filter((l) => l.msg === 'history fetch failed; this session of the stream keeps trying')).toHaveLength(1);
  });

  it('a reader whose history fails several times in a row stays open, is told so in its status, and gets every event once it can be read', async () => {
    // Audit, 7 Dec 2026: after four failed history reads the stream was closed with nothing said (only `retry:` and
    // one status), and 40 such readers reconnecting made 5-10 times the upstream calls of one read each.
    const sim = await createSimulator({ demo: false, api: 'real' });
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH: 'none', LOG_LEVEL: 'silent', SESSION_MAX_EVENTS: '20', ...ONE_ADDRESS_ENV });
    const server = await startPollcast(config, { log: silentLogger(), processMetrics: false });
    bridge = { sim, server, url: server.url, config, close: async () => (await server.close(), await sim.close()) };
    sim.createSession('flaky', { initialEvents: 60, imageBytes: 0, finished: true });
    const tail = record(`${server.url}/sessions/flaky/events?from_index=50`);
    await tail.ended();
    tail.close();
    sim.faults.script([{ kind: 'http', status: 503 }, { kind: 'reset' }, { kind: 'invalid-json' }, { kind: 'http', status: 502 }, { kind: 'http', status: 503 }], { session: 'flaky', endpoint: 'changes' });
    const opened = server.metrics.stats.streamsOpened;
    const r = record(`${server.url}/sessions/flaky/events?from_index=5`);
    const end = await r.ended(30_000);
    // One connection: no reconnect (the eventsource client would have resumed on a new one).
    expect(server.metrics.stats.streamsOpened - opened).toBe(1);
    expect(r.indices()).toEqual(range(55).map((k) => 5 + k));
    expect(end.last_index).toBe(59);
    const troubled = r.statuses().findIndex((st) => /^history unavailable upstream/.test(String(st.upstream_error)));
    expect(troubled).toBeGreaterThan(0);
    // The feed's own status follows once the history can be read again.
    expect(r.statuses().at(-1)!.upstream_error).toBeUndefined();
  });
});
