/**
 * GET /events?session=…: several sessions on one stream, simulator → pollcast
 * → real EventSource: every event of each session once and in order, status
 * first and end last per session, the response ending after the last end,
 * exact resumption after a connection reset, and one upstream loop per session
 * shared with single streams and drop-in pollers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { range, record, startBridge, type Bridge } from '../helpers/harness.ts';
import { parseSse, readAll, recordMany, sessionQuery, startTcpProxy, type MultiRecorder, type TcpProxy } from '../helpers/multi.ts';

let bridge: Bridge | undefined;
let proxy: TcpProxy | undefined;
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await bridge?.close();
  bridge = undefined;
});

/** Every session of `r`: status first, its events exactly `range(count)`, end last with the right last_index. */
function expectComplete(r: MultiRecorder, counts: Record<string, number>): void {
  for (const [id, count] of Object.entries(counts)) {
    const frames = r.of(id);
    expect(frames[0]!.type, `${id}: first frame`).toBe('status');
    expect(frames.at(-1)!.type, `${id}: last frame`).toBe('end');
    expect(frames.filter((f) => f.type === 'end'), `${id}: one end`).toHaveLength(1);
    expect(r.indices(id), `${id}: events`).toEqual(range(count));
    expect(frames.at(-1)!.data.last_index).toBe(count - 1);
  }
}

describe('GET /events (multiplexed)', () => {
  it('carries 20 live sessions on one stream: each event once and in order, status first, end last, then the response ends', async () => {
    bridge = await startBridge();
    const counts: Record<string, number> = {};
    const ids = range(20).map((i) => `mx-${String(i).padStart(2, '0')}`);
    ids.forEach((id, i) => {
      counts[id] = 12 + i;
      bridge!.sim.createSession(id, { emitEveryMs: 15 + (i % 7), emitCount: counts[id] });
    });
    const url = `${bridge.url}/events?${sessionQuery(ids)}`;
    const r = recordMany(url, ids);
    // The same stream read raw, to see the response itself end after the last `end`.
    const raw = readAll(await fetch(url));
    await r.allEnded(30_000);
    expectComplete(r, counts);
    // Every event frame carries a cursor as its id, and tags its session.
    for (const f of r.frames.filter((x) => x.type === 'message')) {
      expect(f.id).toMatch(/^[A-Za-z0-9_-]{10,}$/);
      expect(ids).toContain(f.data.session);
    }
    const text = await raw;
    const frames = parseSse(text).filter((f) => !f.comment);
    expect(frames.at(-1)!.event).toBe('end');
    expect(frames.filter((f) => f.event === 'end')).toHaveLength(20);
    expect(frames.filter((f) => f.event === undefined && f.data !== undefined)).toHaveLength(Object.values(counts).reduce((a, b) => a + b, 0));
    // One loop per session, not one per stream.
    for (const id of ids) expect(bridge.sim.stats(id).maxInFlightChanges).toBe(1);
  });

  it('resumes every session exactly after the connection is reset mid-stream (EventSource reconnects by itself)', async () => {
    bridge = await startBridge({ SSE_RETRY_MS: '30' });
    proxy = await startTcpProxy(bridge.url);
    const counts: Record<string, number> = {};
    const ids = range(8).map((i) => `rs-${i}`);
    ids.forEach((id, i) => {
      counts[id] = 60 + i * 5;
      bridge!.sim.createSession(id, { emitEveryMs: 8, emitCount: counts[id] });
    });
    const r = recordMany(`${proxy.url}/events?${sessionQuery(ids)}`, ids);
    const total = () => r.frames.filter((f) => f.type === 'message').length;
    for (const threshold of [40, 150, 300]) {
      await r.until(() => total() >= threshold, 20_000);
      expect(proxy.resetAll()).toBeGreaterThanOrEqual(1);
    }
    await r.allEnded(30_000);
    expect(r.opens()).toBeGreaterThanOrEqual(4);
    expectComplete(r, counts);
  });

  it('resumes from a cursor given by hand, and answers 204 once every session has ended', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('cu-a', { initialEvents: 5, finished: true });
    bridge.sim.createSession('cu-b', { initialEvents: 3, finished: true });
    const url = `${bridge.url}/events?sessions=cu-b,cu-a`;
    const first = parseSse(await readAll(await fetch(url)));
    const events = first.filter((f) => f.event === undefined && f.data);
    expect(events).toHaveLength(8);
    // Resume after the fourth event: whatever came before it is not sent again.
    const cursor = events[3]!.id!;
    const seen = events.slice(0, 4).map((f) => JSON.parse(f.data!) as { session: string; index: number });
    const again = parseSse(await readAll(await fetch(url, { headers: { 'last-event-id': cursor } })));
    const rest = again.filter((f) => f.event === undefined && f.data).map((f) => JSON.parse(f.data!) as { session: string; index: number });
    expect([...seen, ...rest].map((e) => `${e.session}:${e.index}`).sort()).toEqual([...range(5).map((i) => `cu-a:${i}`), ...range(3).map((i) => `cu-b:${i}`)].sort());
    // The same list in another order or spelling is the same stream.
    const reordered = await fetch(`${bridge.url}/events?session=cu-a&session=cu-b&session=cu-a`, { headers: { 'last-event-id': cursor } });
    expect(reordered.status).toBe(200);
    await reordered.body?.cancel();
    // The cursor of the last `end` says every session is over: 204, so EventSource stops.
    const lastEnd = first.filter((f) => f.event === 'end').at(-1)!.id!;
    const done = await fetch(url, { headers: { 'last-event-id': lastEnd } });
    expect(done.status).toBe(204);
  });

  it('shares one upstream loop between a multiplexed stream, a single stream and a drop-in poller', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('sh-1', { emitEveryMs: 25, emitCount: 30 });
    bridge.sim.createSession('sh-2', { emitEveryMs: 25, emitCount: 20 });
    const many = recordMany(`${bridge.url}/events?sessions=sh-1,sh-2`, ['sh-1', 'sh-2']);
    const single = record(`${bridge.url}/sessions/sh-1/events`);
    const overview = recordMany(`${bridge.url}/events?sessions=sh-1,sh-2&mode=overview`, ['sh-1', 'sh-2']);
    const poller = (async () => {
      const seen: number[] = [];
      let from = 0;
      for (let i = 0; i < 200; i++) {
        const res = await fetch(`${bridge!.url}/sessions/sh-1/changes?from_index=${from}&wait_for_seconds=5`);
        if (res.status === 204) continue;
        const body = (await res.json()) as { new_events: unknown[]; finished_at: string | null };
        for (let k = 0; k < body.new_events.length; k++) seen.push(from + k);
        from += body.new_events.length;
        if (body.finished_at !== null && body.new_events.length === 0) break;
      }
      return seen;
    })();
    await Promise.all([many.allEnded(), single.ended(20_000), overview.allEnded()]);
    expect(await poller).toEqual(range(30));
    expectComplete(many, { 'sh-1': 30, 'sh-2': 20 });
    expect(single.indices()).toEqual(range(30));
    const stats = bridge.sim.stats('sh-1');
    expect(stats.maxInFlightChanges).toBe(1);
    // One loop: its calls follow the events and status checks, not the number of readers.
    expect(stats.changes).toBeLessThan(50);
    expect(bridge.sim.stats('sh-2').maxInFlightChanges).toBe(1);
  });

  it('overview mode carries status and end per session, and no event frame', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('ov-1', { emitEveryMs: 20, emitCount: 10 });
    bridge.sim.createSession('ov-2', { initialEvents: 4, finished: true });
    const r = recordMany(`${bridge.url}/events?sessions=ov-1,ov-2&mode=overview`, ['ov-1', 'ov-2']);
    await r.allEnded();
    expect(r.frames.filter((f) => f.type === 'message')).toEqual([]);
    for (const id of ['ov-1', 'ov-2']) {
      expect(r.of(id)[0]!.type).toBe('status');
      expect(r.of(id).at(-1)!.type).toBe('end');
    }
    expect(r.of('ov-1').at(-1)!.data.last_index).toBe(9);
    expect(r.of('ov-2').at(-1)!.data).toMatchObject({ session: 'ov-2', status: 'completed', last_index: 3 });
    // Steps and cost move live in the status frames, without any event.
    expect(r.of('ov-1').filter((f) => f.type === 'status').length).toBeGreaterThan(1);
  });

  it('ends a session the upstream does not know on its own, and answers 404 when none exists', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('nf-1', { initialEvents: 2, finished: true });
    const r = recordMany(`${bridge.url}/events?sessions=nf-1,nf-missing`, ['nf-1', 'nf-missing']);
    await r.allEnded();
    expect(r.indices('nf-1')).toEqual([0, 1]);
    expect(r.of('nf-missing').map((f) => f.type)).toEqual(['status', 'end']);
    expect(r.of('nf-missing')[1]!.data.upstream_error).toMatch(/not found/);
    const none = await fetch(`${bridge.url}/events?sessions=nf-missing,nf-missing-2`);
    expect(none.status).toBe(404);
    expect(((await none.json()) as { code: string }).code).toBe('session_not_found');
    // A HEAD answers what the GET would (fuzz audit, 7 Dec 2026: 200 when no session existed), and opens nothing.
    expect((await fetch(`${bridge.url}/events?sessions=nf-missing,nf-missing-2`, { method: 'HEAD' })).status).toBe(404);
    expect((await fetch(`${bridge.url}/events?sessions=nf-1,nf-missing`, { method: 'HEAD' })).status).toBe(200);
    expect(bridge.server.streams.size).toBe(0);
  });

  it('takes the list as a POST body too', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('po-1', { initialEvents: 3, finished: true });
    bridge.sim.createSession('po-2', { initialEvents: 2, finished: true });
    const post = (init: RequestInit) => recordMany(`${bridge!.url}/events`, ['po-1', 'po-2'], {
      fetch: (input, i) => fetch(input, { ...i, method: 'POST', ...init }),
    });
    const r = post({ body: JSON.stringify({ sessions: ['po-2', 'po-1'] }) });
    await r.allEnded();
    expectComplete(r, { 'po-1': 3, 'po-2': 2 });
    const bad = async (body: string, query = '') => {
      const res = await fetch(`${bridge!.url}/events${query}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      return [res.status, ((await res.json()) as { code: string }).code];
    };
    expect(await bad('not json')).toEqual([400, 'bad_request']);
    expect(await bad('["po-1"]')).toEqual([400, 'bad_request']);
    expect(await bad('{"sessions": "po-1"}')).toEqual([400, 'bad_request']);
    expect(await bad('{"sessions": ["po-1"], "mode": "overview"}')).toEqual([400, 'bad_request']);
    expect(await bad('{"sessions": ["po-1"]}', '?session=po-2')).toEqual([400, 'bad_request']);
    expect(await bad('{"sessions": []}')).toEqual([400, 'bad_request']);
    // Sessions in the query only, the body empty (audit, 7 Dec 2026: it was told "not both").
    const queryOnly = await fetch(`${bridge.url}/events?session=po-1`, { method: 'POST', body: '' });
    expect(queryOnly.status).toBe(400);
    expect(((await queryOnly.json()) as { error: string }).error).toContain('in the body');
    expect(await bad(JSON.stringify({ sessions: ['x'.repeat(300 * 1024)] }))).toEqual([413, 'payload_too_large']);
  });

  it('validates the list: ids, count, mode, from_index; duplicates collapse', async () => {
    bridge = await startBridge({ MAX_SESSIONS_PER_STREAM: '5' });
    bridge.sim.createSession('va-1', { initialEvents: 1, finished: true });
    const status = async (query: string) => {
      const res = await fetch(`${bridge!.url}/events${query}`);
      await res.body?.cancel();
      return res.status;
    };
    expect(await status('')).toBe(400);
    expect(await status('?session=')).toBe(400);
    expect(await status('?sessions=va-1,')).toBe(400);
    expect(await status('?session=-bad')).toBe(400);
    expect(await status(`?sessions=${range(6).map((i) => `va-${i}`).join(',')}`)).toBe(400);
    expect(await status('?session=va-1&mode=everything')).toBe(400);
    expect(await status('?session=va-1&from_index=-1')).toBe(400);
    expect(await status(`?sessions=${['va-1', 'va-1', 'va-1', 'va-1', 'va-1', 'va-1'].join(',')}`)).toBe(200);
    expect((await fetch(`${bridge.url}/events`, { method: 'PUT' })).status).toBe(405);
    expect(bridge.sim.stats('-bad').status + bridge.sim.stats('va-5').status).toBe(0);
    const fromIndex = parseSse(await readAll(await fetch(`${bridge.url}/events?session=va-1&from_index=1`)));
    expect(fromIndex.filter((f) => f.event === undefined && f.data)).toEqual([]);
  });
});
