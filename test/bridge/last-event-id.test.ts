/**
 * `last_event_id` in the query (CONTRACT.md section 3): a new EventSource
 * resumes where an old one stopped, on the single stream (the header wins over
 * it, it wins over `from_index`, a bad value is 400) and on the multi-session
 * stream (it holds the cursor). Real `eventsource` clients and raw fetch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { range, record, startBridge, type Bridge } from '../helpers/harness.ts';
import { parseSse, readAll, recordMany } from '../helpers/multi.ts';

let bridge: Bridge;

beforeAll(async () => {
  bridge = await startBridge();
  bridge.sim.createSession('le-1', { initialEvents: 6, finished: true });
  bridge.sim.createSession('le-2', { initialEvents: 4, finished: true });
  bridge.sim.createSession('le-3', { initialEvents: 3, finished: true });
});
afterAll(() => bridge?.close());

const indicesOf = (text: string) => parseSse(text).filter((f) => f.event === undefined && f.data !== undefined).map((f) => JSON.parse(f.data!).index as number);

describe('last_event_id on the single stream', () => {
  it('resumes after it with a real EventSource', async () => {
    const r = record(`${bridge.url}/sessions/le-1/events?last_event_id=2`);
    await r.ended();
    expect(r.indices()).toEqual([3, 4, 5]);
  });

  it('loses to the Last-Event-ID header and wins over from_index (raw fetch)', async () => {
    const header = await fetch(`${bridge.url}/sessions/le-1/events?last_event_id=1&from_index=0`, { headers: { 'last-event-id': '3' } });
    expect(indicesOf(await readAll(header))).toEqual([4, 5]);
    const query = await fetch(`${bridge.url}/sessions/le-1/events?last_event_id=1&from_index=0`);
    expect(indicesOf(await readAll(query))).toEqual([2, 3, 4, 5]);
    // An empty header counts as absent (no EventSource sends one); an empty query value is not an index: 400.
    const emptyHeader = await fetch(`${bridge.url}/sessions/le-1/events?from_index=4`, { headers: { 'last-event-id': '' } });
    expect(indicesOf(await readAll(emptyHeader))).toEqual([4, 5]);
    for (const query of ['last_event_id=&from_index=4', 'from_index=4&last_event_id=', 'last_event_id=']) {
      const empty = await fetch(`${bridge.url}/sessions/le-1/events?${query}`);
      expect(empty.status, query).toBe(400);
      expect(((await empty.json()) as { error: string }).error).toMatch(/last_event_id/);
    }
    for (const path of ['/events?session=le-1&last_event_id=', '/sessions/events?last_event_id=']) {
      const res = await fetch(`${bridge.url}${path}`);
      expect(res.status, path).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/last_event_id/);
    }
  });

  it('refuses a value that is not a non-negative integer with 400, on GET and on HEAD (the hono route)', async () => {
    for (const bad of ['-1', 'x', '1.5', '%201', '99999999999999999999']) {
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(`${bridge.url}/sessions/le-1/events?last_event_id=${bad}`, { method });
        expect(res.status, `${method} ${bad}`).toBe(400);
        if (method === 'GET') expect(((await res.json()) as { error: string }).error).toMatch(/last_event_id/);
      }
    }
  });
});

describe('a single-valued query parameter given twice', () => {
  it('is 400 naming it when the values differ (stream, drop-in, Durable Stream, multi-session stream), and harmless when they agree', async () => {
    const refused = [
      '/sessions/le-1/events?last_event_id=1&last_event_id=3',
      '/sessions/le-1/events?from_index=0&from_index=4',
      '/sessions/le-1/events?include_events=true&include_events=false',
      '/sessions/le-1/changes?from_index=0&from_index=2',
      '/sessions/le-1/changes?wait_for_seconds=0&wait_for_seconds=5',
      '/v1/stream/sessions/le-1?offset=now&offset=-1',
      '/events?sessions=le-1&from_index=0&from_index=1',
    ];
    for (const path of refused) {
      const name = /[?&]([a-z_]+)=[^&]*&\1=/.exec(path)![1]!;
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(`${bridge.url}${path}`, { method, signal: AbortSignal.timeout(5000) });
        expect(res.status, `${method} ${path}`).toBe(400);
        if (method === 'GET') expect(((await res.json()) as { error: string }).error, path).toContain(name);
      }
    }
    expect(indicesOf(await readAll(await fetch(`${bridge.url}/sessions/le-1/events?from_index=4&from_index=4`)))).toEqual([4, 5]);
  });
});

describe('last_event_id on the multi-session stream', () => {
  it('carries the cursor: a new EventSource resumes every session where the old one stopped', async () => {
    const ids = ['le-1', 'le-2', 'le-3'];
    const first = recordMany(`${bridge.url}/events?sessions=${ids.join(',')}`, ids);
    await first.allEnded();
    // Cut after the fifth event frame, as if the page had gone there.
    const cut = first.frames.findIndex((f, i) => f.type === 'message' && first.frames.slice(0, i + 1).filter((g) => g.type === 'message').length === 5);
    const before = first.frames.slice(0, cut + 1);
    const cursor = before.at(-1)!.id;
    const had = (id: string) => before.filter((f) => f.type === 'message' && f.data.session === id).map((f) => f.data.index as number);
    const endedBefore = new Set(before.filter((f) => f.type === 'end').map((f) => f.data.session as string));
    const rest = ids.filter((id) => !endedBefore.has(id));
    const second = recordMany(`${bridge.url}/events?sessions=${ids.join(',')}&last_event_id=${encodeURIComponent(cursor)}`, rest);
    await second.allEnded();
    for (const [id, count] of [['le-1', 6], ['le-2', 4], ['le-3', 3]] as const) {
      expect([...had(id), ...second.indices(id)], id).toEqual(range(count));
    }
    expect(second.frames.filter((f) => f.type === 'end' && endedBefore.has(f.data.session)), 'ends sent twice').toEqual([]);
  });

  it('loses to the Last-Event-ID header, and refuses a malformed cursor with 400', async () => {
    const all = await fetch(`${bridge.url}/events?sessions=le-2`);
    const frames = parseSse(await readAll(all)).filter((f) => f.event === undefined && f.data !== undefined);
    const afterFirst = frames[0]!.id!;
    const afterThird = frames[2]!.id!;
    const both = await fetch(`${bridge.url}/events?sessions=le-2&last_event_id=${encodeURIComponent(afterFirst)}`, { headers: { 'last-event-id': afterThird } });
    expect(indicesOf(await readAll(both))).toEqual([3]);
    const query = await fetch(`${bridge.url}/events?sessions=le-2&last_event_id=${encodeURIComponent(afterFirst)}&from_index=3`);
    expect(indicesOf(await readAll(query))).toEqual([1, 2, 3]);
    const bad = await fetch(`${bridge.url}/events?sessions=le-2&last_event_id=not-a-cursor`);
    expect(bad.status).toBe(400);
    await bad.body?.cancel();
    // A cursor of another session list is no cursor for this one.
    const other = await fetch(`${bridge.url}/events?sessions=le-3&last_event_id=${encodeURIComponent(afterFirst)}`);
    expect(other.status).toBe(400);
    await other.body?.cancel();
  });

  it('refuses a last_event_id of only whitespace with the 400 of an empty one (GET and POST), not a stream from the start', async () => {
    const calls: Array<[string, RequestInit]> = [];
    for (const value of ['%20%20', '%20', '%09', '+']) {
      calls.push([`/events?sessions=le-2&last_event_id=${value}`, {}]);
      calls.push([`/events?last_event_id=${value}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sessions: ['le-2'] }) }]);
    }
    for (const [path, init] of calls) {
      const what = `${init.method ?? 'GET'} ${path}`;
      const res = await fetch(`${bridge.url}${path}`, { ...init, signal: AbortSignal.timeout(5000) });
      if (res.status !== 400) await res.body?.cancel();
      expect(res.status, what).toBe(400);
      expect(res.headers.get('content-type'), what).toMatch(/^application\/json/);
      expect(((await res.json()) as { error: string }).error, what).toMatch(/^last_event_id is empty/);
    }
  });
});
