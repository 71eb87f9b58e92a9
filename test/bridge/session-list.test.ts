/**
 * `GET /sessions/events` against the simulator in real-API mode (UPSTREAM_URL
 * set): one upstream list poll per filter however many viewers, a session
 * created upstream on every stream within the interval plus a second, live
 * status and cost from a running loop without list polls, a cancelled session
 * changing status, a filtered-out one removed, resuming by Last-Event-ID with
 * no duplicate, a token's claim limiting the list, bad filters refused with no
 * upstream call, and an upstream that stops and comes back.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { startBridge, record, eventually, type Bridge, type Recorder } from '../helpers/harness.ts';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { listCalls, listOf } from '../helpers/session-list.ts';
import { LIST_REFUSAL_KEPT_MS } from '../../src/hub/list-hub.ts';
import { TERMINAL_STATUSES as TERMINAL } from '../../src/upstream/types.ts';

const POLL_SECONDS = 1;
/** The bound: a created session reaches every viewer within the poll interval plus a second (ms). */
const APPEAR_WITHIN_MS = POLL_SECONDS * 1000 + 1000;
const LIST_EVENTS = ['snapshot', 'upsert', 'remove', 'total', 'error'];
const SECRET = 'a-test-secret-that-is-at-least-32-bytes-long!';

/** The upstream list calls the simulator received since the last clear. */

async function create(b: Bridge, message = 'Find a flight'): Promise<string> {
  const res = await fetch(`${b.sim.url}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'web-agent', messages: message }) });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

const version = (id: string) => Number(id.split('.')[1]);

/** Opens a list stream on `b` as client `ip` (TRUST_PROXY=x-forwarded-for), kept in `viewers` to be closed. */
function viewAs(b: Bridge, viewers: Recorder[], query: string, ip: string): Recorder {
  const r = record(`${b.url}/sessions/events${query}`, { events: LIST_EVENTS, headers: { 'x-forwarded-for': ip } });
  viewers.push(r);
  return r;
}
const snapshotOf = (r: Recorder) => r.until((x) => x.messages.some((m) => m.type === 'snapshot'), 10_000);

describe('GET /sessions/events', () => {
  let b: Bridge;
  const open: Recorder[] = [];
  const watch = (query = '', headers?: Record<string, string>) => {
    const r = record(`${b.url}/sessions/events${query}`, { events: LIST_EVENTS, headers });
    open.push(r);
    return r;
  };

  beforeAll(async () => {
    b = await startBridge({ SESSION_LIST_POLL_SECONDS: String(POLL_SECONDS), SESSION_LIST_GRACE_SECONDS: '1' }, { api: 'real', run: { eventEveryMs: 150, events: 40 } });
  });
  afterEach(() => {
    for (const r of open.splice(0)) r.close();
  });
  afterAll(async () => {
    await b.close();
  });

  it('ten viewers of one filter cost one upstream list call per interval, and a new session reaches all of them within the interval plus a second', async () => {
    const before = await create(b, 'already there');
    const viewers = Array.from({ length: 10 }, () => watch('?status=running&status=pending'));
    await Promise.all(viewers.map((r) => r.until((x) => x.messages.some((m) => m.type === 'snapshot'))));
    for (const r of viewers) {
      const first = r.messages[0]!;
      expect(first.type).toBe('snapshot');
      expect(first.data.items.map((i: any) => i.id)).toContain(before);
      expect(first.data.total).toBeGreaterThanOrEqual(1);
    }
    expect(b.server.lists.size).toBe(1);

    b.sim.clearRequests();
    const started = performance.now();
    const id = await create(b, 'appears everywhere');
    await Promise.all(viewers.map((r) => r.until((x) => listOf(x).has(id), APPEAR_WITHIN_MS)));
    // Keep watching a few intervals, then count: one list call per started interval at most, however many viewers.
    await new Promise((r) => setTimeout(r, 3 * POLL_SECONDS * 1000));
    const elapsedMs = performance.now() - started;
    const calls = listCalls(b.sim);
    expect(calls).toBeGreaterThanOrEqual(1);
    expect(calls).toBeLessThanOrEqual(Math.ceil(elapsedMs / (POLL_SECONDS * 1000)) + 1);
    for (const r of viewers) {
      const upserts = r.messages.filter((m) => m.type === 'upsert' && m.data.id === id);
      expect(upserts.length).toBeGreaterThanOrEqual(1);
    }
  });

  it('merges a running loop\'s status and cost, changes a cancelled session\'s status, and removes one its filter no longer takes', async () => {
    const id = await create(b, 'watched live');
    const all = watch();
    const running = watch('?status=running');
    await all.until((r) => listOf(r).has(id), 10_000);
    await running.until((r) => listOf(r).has(id), 10_000);
    // A loop runs for the session while someone follows it: its cost reaches the list between polls.
    const follower = record(`${b.url}/sessions/${id}/events`);
    open.push(follower);
    await all.until((r) => (listOf(r).get(id)?.metrics?.total_cost ?? 0) > 0, 10_000);
    const costs = all.messages.filter((m) => m.type === 'upsert' && m.data.id === id && typeof m.data.metrics?.total_cost === 'number').map((m) => m.data.metrics.total_cost as number);
    await all.until((r) => (listOf(r).get(id)?.metrics?.total_cost ?? 0) > costs[0]!, 10_000);

    const res = await fetch(`${b.sim.url}/sessions/${id}`, { method: 'DELETE' });
    expect(res.status).toBe(204);
    await all.until((r) => listOf(r).get(id)?.status === 'interrupted', 10_000);
    await running.until((r) => r.messages.some((m) => m.type === 'remove' && m.data.id === id), 10_000);
    expect(listOf(running).has(id)).toBe(false);
  });

  it('a reconnect with Last-Event-ID gets only what changed since, never a change twice', async () => {
    const first = watch();
    await first.until((r) => r.messages.some((m) => m.type === 'snapshot'));
    const a = await create(b, 'before the drop');
    await first.until((r) => listOf(r).has(a), 10_000);
    const last = first.messages.at(-1)!.id;
    first.close();
    const c = await create(b, 'while away');
    // The list has seen `c` before the viewer comes back (any open viewer keeps the poll going).
    const keeper = watch();
    await keeper.until((r) => listOf(r).has(c), 10_000);

    const again = watch('', { 'Last-Event-ID': last });
    await again.until((r) => r.messages.some((m) => m.type === 'upsert' && m.data.id === c), 10_000);
    const seen = [...first.messages, ...again.messages].filter((m) => m.id !== '');
    expect(again.messages.some((m) => m.type === 'snapshot')).toBe(false);
    for (const m of again.messages) if (m.id) expect(version(m.id)).toBeGreaterThan(version(last));
    const keys = seen.map((m) => m.id);
    expect(new Set(keys).size).toBe(keys.length);

    // A version of another incarnation of the list gets a snapshot instead.
    const stranger = watch('?last_event_id=abcdef.3');
    await stranger.until((r) => r.messages.length > 0);
    expect(stranger.messages[0]!.type).toBe('snapshot');
  });

  it('a viewer that names one page (size, page) watches that page as the upstream cuts it at each poll: a new session pushes the oldest of it off', async () => {
    const ids: string[] = [];
    for (let i = 1; i <= 3; i++) ids.push(await create(b, `pagewatch ${i}`));
    b.sim.clearRequests();
    const r = watch('?search=pagewatch&sort=-created_at&size=2');
    await r.until((x) => x.messages.some((m) => m.type === 'snapshot'));
    const snapshot = r.messages.find((m) => m.type === 'snapshot')!;
    expect(new Set(snapshot.data.items.map((i: any) => i.id)), 'the two newest').toEqual(new Set([ids[2], ids[1]]));
    expect(snapshot.data.total, 'the upstream\'s count of the whole filter').toBe(3);
    const targets = b.sim.requests().filter((q) => q.method === 'GET' && /^\/api\/v2\/sessions\?/.test(q.target)).map((q) => q.target);
    expect(targets.length).toBeGreaterThan(0);
    for (const t of targets) expect(new URL(t, 'http://x').searchParams.getAll('size'), t).toEqual(['2']);
    for (const t of targets) expect(new URL(t, 'http://x').searchParams.has('page'), t).toBe(false);
    const fourth = await create(b, 'pagewatch 4');
    await eventually(() => listOf(r).has(fourth) && !listOf(r).has(ids[1]!), APPEAR_WITHIN_MS + 2000, 'the new session in, the oldest of the page out');
    expect(new Set(listOf(r).keys())).toEqual(new Set([fourth, ids[2]]));
    // The page's upserts and removes cannot tell the whole filter's count: an event of its own does.
    await r.until((x) => x.messages.some((m) => m.type === 'total' && m.data.total === 4), APPEAR_WITHIN_MS + 2000);
    expect(r.messages.filter((m) => m.type === 'total').map((m) => m.data.total)).toEqual([4]);
    const second = watch('?search=pagewatch&sort=-created_at&size=2&page=2');
    await second.until((x) => x.messages.some((m) => m.type === 'snapshot'));
    expect(new Set(listOf(second).keys()), 'page 2: the two oldest').toEqual(new Set([ids[1], ids[0]]));
  });

  it('refuses unknown or malformed filters with 400 and sends nothing upstream', async () => {
    b.sim.clearRequests();
    for (const q of ['?status=done', '?colour=red', '?created_after=yesterday', '?page=0', '?size=101', '?search=a&search=b', '?last_event_id=nope', '?search=%ff', '?search=flights%E2%80%AEsirap', '?agent=a%E2%81%A6b']) {
      const res = await fetch(`${b.url}/sessions/events${q}`);
      expect(res.status, q).toBe(400);
      const body = (await res.json()) as { error: string; code: string };
      expect(typeof body.error).toBe('string');
      expect(body.code).toBeTruthy();
    }
    expect(listCalls(b.sim)).toBe(0);
  });

  it('stops polling once nobody watches (after the grace)', async () => {
    const r = watch('?search=nobody-else');
    await r.until((x) => x.messages.some((m) => m.type === 'snapshot'));
    r.close();
    await eventually(() => b.server.lists.size === 0, 10_000, 'lists dropped');
    // A poll that started before the drop may still be on its way to the simulator (seen once in CI: 1 call); a
    // loop that went on would poll again within the next two intervals.
    await new Promise((res) => setTimeout(res, 300));
    b.sim.clearRequests();
    await new Promise((res) => setTimeout(res, 2 * POLL_SECONDS * 1000));
    expect(listCalls(b.sim)).toBe(0);
  });
});

describe('GET /sessions/events: an end a loop hears first', () => {
  it('reaches the list with its finished_at before the next poll, not a terminal status beside finished_at: null', async () => {
    // Audit, 7 Dec 2026: `completed` with `finished_at: null` until the next poll.
    const b = await startBridge({ SESSION_LIST_POLL_SECONDS: '60', UPSTREAM_WAIT_SECONDS: '1' }, { api: 'real' });
    try {
      b.sim.createSession('ends', { initialEvents: 2 });
      const list = record(`${b.url}/sessions/events`, { events: LIST_EVENTS });
      const follower = record(`${b.url}/sessions/ends/events`);
      try {
        await list.until((r) => listOf(r).get('ends')?.status === 'running', 10_000);
        await follower.until((r) => r.indices().length === 2, 10_000);
        const polls = listCalls(b.sim);
        b.sim.finish('ends', { answer: 'done', closingEvents: true });
        await follower.ended(15_000);
        await list.until((r) => TERMINAL.has(String(listOf(r).get('ends')?.status)) && listOf(r).get('ends')?.finished_at != null, 10_000);
        // From the loop, not from a poll.
        expect(listCalls(b.sim)).toBe(polls);
      } finally {
        follower.close();
        list.close();
      }
    } finally {
      await b.close();
    }
  }, 40_000);
});

describe('GET /sessions/events: a status changed upstream where a loop runs', () => {
  it('a paused session shows paused on the list and on its stream within a poll, not when the loop\'s long-poll ends', async () => {
    // The loop long-polls 25 s (the default): a session paused upstream answers it nothing new.
    const b = await startBridge({ SESSION_LIST_POLL_SECONDS: String(POLL_SECONDS) }, { api: 'real' });
    const open: Recorder[] = [];
    try {
      const id = await create(b, 'paused upstream');
      const follower = record(`${b.url}/sessions/${id}/events`);
      const paused = record(`${b.url}/sessions/events?status=paused`, { events: LIST_EVENTS });
      open.push(follower, paused);
      await follower.until((r) => r.statuses().some((st) => st.status === 'running'), 10_000);
      await paused.until((r) => r.messages.some((m) => m.type === 'snapshot'), 10_000);
      // Let the loop settle into its long-poll.
      await new Promise((r) => setTimeout(r, 500));
      const pausedAt = performance.now();
      b.sim.setStatus(id, { status: 'paused' });
      await paused.until((r) => listOf(r).get(id)?.status === 'paused', APPEAR_WITHIN_MS + 2000);
      await follower.until((r) => r.statuses().at(-1)?.status === 'paused', 2000);
      expect(performance.now() - pausedAt).toBeLessThan(APPEAR_WITHIN_MS + 2000);
    } finally {
      for (const r of open) r.close();
      await b.close();
    }
  });
});

describe('GET /sessions/events: a session that leaves a status filter', () => {
  it('ends on its own stream within a poll when it leaves a list filtered by status (finished with no event), not when the loop\'s long-poll ends', async () => {
    const b = await startBridge({ SESSION_LIST_POLL_SECONDS: String(POLL_SECONDS) }, { api: 'real' });
    const open: Recorder[] = [];
    try {
      const id = await create(b, 'finished upstream');
      const follower = record(`${b.url}/sessions/${id}/events`);
      const running = record(`${b.url}/sessions/events?status=running`, { events: LIST_EVENTS });
      open.push(follower, running);
      await follower.until((r) => r.statuses().some((st) => st.status === 'running'), 10_000);
      await running.until((r) => listOf(r).has(id), 10_000);
      // Let the loop settle into its long-poll (25 s: the default), then end the session with no event of its own.
      await new Promise((r) => setTimeout(r, 500));
      const finishedAt = performance.now();
      b.sim.finish(id, { status: 'failed', error: 'stopped upstream' });
      await running.until((r) => !listOf(r).has(id), APPEAR_WITHIN_MS + 2000);
      await follower.ended(APPEAR_WITHIN_MS + 4000);
      expect(follower.statuses().at(-1)?.status).toBe('failed');
      expect(performance.now() - finishedAt).toBeLessThan(APPEAR_WITHIN_MS + 4000);
    } finally {
      for (const r of open) r.close();
      await b.close();
    }
  });
});

describe('GET /sessions/events: paused and resumed between two polls', () => {
  it('a session paused through pollcast and resumed upstream before the next poll shows running again within a poll, not when the loop\'s long-poll ends', async () => {
    const poll = 5;
    const b = await startBridge({ SESSION_LIST_POLL_SECONDS: String(poll) }, { api: 'real' });
    const open: Recorder[] = [];
    try {
      // Running and quiet: no event wakes its loop's long-poll (25 s) once it is resumed.
      const id = 'pause-resume-1';
      b.sim.createSession(id, { initialEvents: 2 });
      const follower = record(`${b.url}/sessions/${id}/events`);
      const running = record(`${b.url}/sessions/events?status=running`, { events: LIST_EVENTS });
      open.push(follower, running);
      await follower.until((r) => r.statuses().some((st) => st.status === 'running'), 10_000);
      await running.until((r) => listOf(r).get(id)?.status === 'running', 10_000);
      // Right after a poll: both changes fall before the next one, which lists the session running as the last did.
      const polls = listCalls(b.sim);
      await eventually(() => listCalls(b.sim) > polls, 2 * poll * 1000, 'a list poll');
      const seenBefore = b.sim.requests().length;
      const paused = await fetch(`${b.url}/api/v2/sessions/${id}/pause`, { method: 'POST' });
      expect(paused.status).toBeLessThan(300);
      await running.until((r) => !listOf(r).has(id), 2000);
      // The pause's status checks made (the forced one, and once more after one in flight): the loop is back in its
      // long-poll, which the pause did not end.
      const statusCalls = () => b.sim.requests().slice(seenBefore).filter((r) => r.target === `/api/v2/sessions/${id}/status`).length;
      await eventually(() => statusCalls() >= 2, 5000, 'the pause\'s status checks');
      await follower.until((r) => r.statuses().at(-1)?.status === 'paused', 2000);
      const before = listCalls(b.sim);
      b.sim.setStatus(id, { status: 'running' });
      const resumedAt = performance.now();
      // Seen: the list asked the loop nothing (its listed status had not moved), so it came back only when the
      // loop's 25 s long-poll ended.
      await running.until((r) => listOf(r).get(id)?.status === 'running', poll * 1000 + 2000);
      expect(performance.now() - resumedAt).toBeLessThan(poll * 1000 + 2000);
      // Both changes fell between the same two polls: the list showed the session running at both.
      expect(listCalls(b.sim)).toBe(before + 1);
    } finally {
      for (const r of open) r.close();
      await b.close();
    }
  });
});

describe('GET /sessions/events: a list that changes between the pages of one read', () => {
  it('is read again when its count moved between pages: a session pulled onto a page already read is not removed', async () => {
    const sim = await createSimulator({ api: 'real' });
    // 130 sessions: two pages of 100. Just before page 2 is answered, one session of page 1 is deleted: the rest
    // shift by one, and the first of page 2 moves onto page 1, which was read already.
    const ids: string[] = [];
    for (let i = 0; i < 130; i++) ids.push(await create({ sim } as Bridge, `paged ${i}`));
    let deleted: string | undefined;
    let firstPage: string[] = [];
    const proxy = createServer(async (req, res) => {
      const page = new URL(req.url!, 'http://x').searchParams.get('page');
      if (deleted === undefined && page === '2') {
        deleted = firstPage[50]!;
        sim.deleteSession(deleted);
      }
      const answer = await fetch(`${new URL(sim.url).origin}${req.url}`);
      const text = await answer.text();
      if (page === '1' && deleted === undefined) firstPage = ((JSON.parse(text) as { items: Array<{ id: string }> }).items ?? []).map((x) => x.id);
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' }).end(text);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const b = await startBridge({ UPSTREAM_URL: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/api/v2`, SESSION_LIST_POLL_SECONDS: '30' }, { api: 'real' });
    const viewer = record(`${b.url}/sessions/events`, { events: LIST_EVENTS });
    try {
      await viewer.until((r) => r.messages.some((m) => m.type === 'snapshot'), 10_000);
      expect(deleted).toBeDefined();
      const upstream = new Set(sim.listSessions().map((x) => x.id));
      expect(upstream.size).toBe(129);
      expect(new Set(listOf(viewer).keys())).toEqual(upstream);
      expect(viewer.messages.find((m) => m.type === 'snapshot')!.data.total).toBe(129);
    } finally {
      viewer.close();
      await b.close();
      proxy.close();
      await sim.close();
    }
  }, 30_000);
});

describe('GET /sessions/events: a list whose pages shift with its count unchanged', () => {
  it('never removes a session that exists when a session on a page already read is deleted and one created during a later read: the deleted one goes a poll later', async () => {
    const sim = await createSimulator({ api: 'real' });
    for (let i = 0; i < 130; i++) await create({ sim } as Bridge, `shifted ${i}`);
    let armed = false;
    let deleted: string | undefined;
    let created: string | undefined;
    let firstPage: string[] = [];
    const proxy = createServer(async (req, res) => {
      const page = new URL(req.url!, 'http://x').searchParams.get('page');
      if (armed && deleted === undefined && page === '2') {
        // Oldest first: the one deleted from page 1 pulls the first of page 2 onto it, the one created goes last,
        // and the count stays 130 (an audit found the pulled one removed for a poll).
        deleted = firstPage[50]!;
        sim.deleteSession(deleted);
        created = await create({ sim } as Bridge, 'shifted new');
      }
      const answer = await fetch(`${new URL(sim.url).origin}${req.url}`);
      const text = await answer.text();
      if (page === '1') firstPage = ((JSON.parse(text) as { items: Array<{ id: string }> }).items ?? []).map((x) => x.id);
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' }).end(text);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const b = await startBridge({ UPSTREAM_URL: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/api/v2`, SESSION_LIST_POLL_SECONDS: '1' }, { api: 'real' });
    const viewer = record(`${b.url}/sessions/events?sort=created_at`, { events: LIST_EVENTS });
    try {
      await viewer.until((r) => r.messages.some((m) => m.type === 'snapshot'), 10_000);
      expect(listOf(viewer).size).toBe(130);
      armed = true;
      await viewer.until((r) => r.messages.some((m) => m.type === 'remove' && m.data.id === deleted), 15_000);
      const removed = viewer.messages.filter((m) => m.type === 'remove').map((m) => m.data.id as string);
      expect(removed).toEqual([deleted]);
      expect(listOf(viewer).has(created!)).toBe(true);
      expect(new Set(listOf(viewer).keys())).toEqual(new Set(sim.listSessions().map((x) => x.id)));
    } finally {
      viewer.close();
      await b.close();
      proxy.close();
      await sim.close();
    }
  }, 40_000);
});

describe('GET /sessions/events: scope and trouble', () => {
  it('a token sees the operator\'s list limited to its sessions claim; no token and an expired token are 401', async () => {
    const b = await startBridge({ AUTH: '', AUTH_JWT_SECRET: SECRET, SESSION_LIST_POLL_SECONDS: String(POLL_SECONDS) }, { api: 'real' });
    try {
      const ids = [await create(b, 'one'), await create(b, 'two'), await create(b, 'three')];
      const key = new TextEncoder().encode(SECRET);
      const token = (sessions: string[], expSeconds: number) => new SignJWT({ sessions }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(Date.now() / 1000) + expSeconds).sign(key);
      const narrow = record(`${b.url}/sessions/events?access_token=${await token([ids[1]!], 600)}`, { events: LIST_EVENTS });
      const wide = record(`${b.url}/sessions/events?access_token=${await token(['*'], 600)}`, { events: LIST_EVENTS });
      try {
        await narrow.until((r) => r.messages.some((m) => m.type === 'snapshot'), 10_000);
        await wide.until((r) => r.messages.some((m) => m.type === 'snapshot'), 10_000);
        expect([...listOf(narrow).keys()]).toEqual([ids[1]]);
        expect(narrow.messages[0]!.data.total).toBe(1);
        for (const id of ids) expect(listOf(wide).has(id)).toBe(true);
        // Both viewers share one poll: the operator's key, one filter.
        expect(b.server.lists.size).toBe(1);
      } finally {
        narrow.close();
        wide.close();
      }
      // A page of the operator's list (three newest of eight) would hold none of the token's older sessions: the
      // token gets its own sessions, and a total that counts them.
      for (const name of ['four', 'five', 'six', 'seven', 'eight']) await create(b, name);
      const paged = record(`${b.url}/sessions/events?sort=-created_at&size=3&access_token=${await token(ids, 600)}`, { events: LIST_EVENTS });
      try {
        await paged.until((r) => r.messages.some((m) => m.type === 'snapshot'), 10_000);
        expect(new Set(listOf(paged).keys())).toEqual(new Set(ids));
        expect(paged.messages.find((m) => m.type === 'snapshot')!.data.total).toBe(3);
      } finally {
        paged.close();
      }
      expect((await fetch(`${b.url}/sessions/events`)).status).toBe(401);
      const expired = await fetch(`${b.url}/sessions/events?access_token=${await token(['*'], -60)}`);
      expect(expired.status).toBe(401);
      expect(((await expired.json()) as { error: string }).error).toMatch(/expired/);
    } finally {
      await b.close();
    }
  });

  it('AUTH=upstream: each key gets its own list, polled with that key; keys of two organisations see disjoint lists; a refused key is 401', async () => {
    const A = 'key-of-org-a';
    const B = 'key-of-org-b';
    const b = await startBridge({ AUTH: 'upstream', SESSION_LIST_POLL_SECONDS: String(POLL_SECONDS) }, { api: 'real', apiKeys: { [A]: 'org-a', [B]: 'org-b' } });
    const createAs = async (key: string) => {
      const res = await fetch(`${b.sim.url}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ agent: 'web-agent', messages: 'mine' }) });
      expect(res.status).toBe(201);
      return ((await res.json()) as { id: string }).id;
    };
    const ofA = [await createAs(A), await createAs(A)];
    const ofB = [await createAs(B)];
    const viewA = record(`${b.url}/sessions/events?access_token=${A}`, { events: LIST_EVENTS });
    const viewB = record(`${b.url}/sessions/events`, { events: LIST_EVENTS, headers: { authorization: `Bearer ${B}` } });
    try {
      await viewA.until((r) => ofA.every((id) => listOf(r).has(id)), 10_000);
      await viewB.until((r) => ofB.every((id) => listOf(r).has(id)), 10_000);
      const seenA = [...listOf(viewA).keys()];
      const seenB = [...listOf(viewB).keys()];
      expect(seenA.filter((id) => seenB.includes(id))).toEqual([]);
      expect(seenA).not.toContain(ofB[0]);
      // Polled with each caller's own key: the upstream saw both keys on its list route, never another.
      const auths = new Set(b.sim.requests().filter((r) => r.target.startsWith('/api/v2/sessions?')).map((r) => String(r.headers.authorization)));
      expect(auths).toEqual(new Set([`Bearer ${A}`, `Bearer ${B}`]));
      expect(b.server.lists.size).toBe(2);
    } finally {
      viewA.close();
      viewB.close();
    }
    // A HEAD answers what the GET would (fuzz audit, 7 Dec 2026: 200 for any key, no upstream call).
    expect((await fetch(`${b.url}/sessions/events?access_token=not-a-key`, { method: 'HEAD' })).status).toBe(401);
    expect((await fetch(`${b.url}/sessions/events?access_token=${A}`, { method: 'HEAD' })).status).toBe(200);
    const refused = await fetch(`${b.url}/sessions/events?access_token=not-a-key`);
    expect(refused.status).toBe(401);
    // The refusal is kept a while: eight more asks with that key cost the upstream no list call.
    const refusedCalls = () => b.sim.requests().filter((r) => r.target.startsWith('/api/v2/sessions') && String(r.headers.authorization) === 'Bearer not-a-key').length;
    const callsBefore = refusedCalls();
    for (let i = 0; i < 8; i++) expect((await fetch(`${b.url}/sessions/events?access_token=not-a-key`)).status).toBe(401);
    expect(refusedCalls()).toBe(callsBefore);
    // A key revoked upstream while its list is watched: the viewer is told and its stream ends.
    const watching = record(`${b.url}/sessions/events?access_token=${A}`, { events: LIST_EVENTS });
    try {
      await watching.until((r) => r.messages.some((m) => m.type === 'snapshot'), 10_000);
      b.sim.revokeKey(A);
      await watching.until((r) => r.messages.some((m) => m.type === 'error'), 10_000);
      expect(watching.messages.find((m) => m.type === 'error')!.data).toEqual({ error: 'access_revoked' });
    } finally {
      watching.close();
      await b.close();
    }
  });

  it('says when the upstream list fails, keeps the stream open, and goes on when it answers again', async () => {
    const b = await startBridge({ SESSION_LIST_POLL_SECONDS: String(POLL_SECONDS) }, { api: 'real' });
    const port = Number(new URL(b.sim.url).port);
    const id = await create(b, 'survives');
    const r = record(`${b.url}/sessions/events`, { events: LIST_EVENTS });
    let revived: Simulator | undefined;
    try {
      await r.until((x) => listOf(x).has(id), 10_000);
      await b.sim.close();
      // The upstream is gone: the viewer is told, and keeps what it had (no remove for a failed poll).
      await r.until((x) => x.statuses().some((s) => typeof s.upstream_error === 'string'), 15_000);
      expect(listOf(r).has(id)).toBe(true);
      revived = await createSimulator({ api: 'real', port });
      const back = await fetch(`${revived.url}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'web-agent', messages: 'after' }) });
      const fresh = ((await back.json()) as { id: string }).id;
      await r.until((x) => x.statuses().at(-1)?.upstream_error === null && listOf(x).has(fresh), 40_000);
      // The revived upstream does not know the old session: it is removed.
      expect(listOf(r).has(id)).toBe(false);
    } finally {
      r.close();
      await b.server.close();
      await revived?.close();
    }
  });
});

describe('GET /sessions/events: what the upstream says of the list', () => {
  it('a filter the upstream refuses (422) is a 400 naming its complaint, not a stream that retries it', async () => {
    const b = await startBridge({ SESSION_LIST_POLL_SECONDS: String(POLL_SECONDS) }, { api: 'real' });
    try {
      // As the real API (FastAPI) words it.
      const detail = [{ type: 'datetime_parsing', loc: ['query', 'created_after'], msg: 'Input should be a valid datetime', input: '2026-01-31' }];
      b.sim.faults.script([{ kind: 'http', status: 422, detail }], { endpoint: 'list' });
      const res = await fetch(`${b.url}/sessions/events?created_after=2026-01-31`);
      expect(res.headers.get('content-type')).toMatch(/json/);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'bad_request', error: "the sessions API refused the list's filters (422): created_after: Input should be a valid datetime" });
      // Answered from the refusal for a moment (no second call), then asked again.
      b.sim.clearRequests();
      const again = await fetch(`${b.url}/sessions/events?created_after=2026-01-31`);
      expect(again.status).toBe(400);
      await again.body?.cancel();
      expect(listCalls(b.sim)).toBe(0);
      // Let go on time, asked again or not.
      expect(b.server.lists.keptRefusals).toBe(1);
      await eventually(() => b.server.lists.keptRefusals === 0, LIST_REFUSAL_KEPT_MS + 3000, 'the refusal let go');
    } finally {
      await b.close();
    }
  });

  it('a 400 or 422 about anything but the viewer\'s filters (the key, pollcast\'s paging) is a failed poll shown by its status alone, its text never', async () => {
    const b = await startBridge({ SESSION_LIST_POLL_SECONDS: String(POLL_SECONDS) }, { api: 'real' });
    const r = record(`${b.url}/sessions/events?status=running`, { events: LIST_EVENTS });
    try {
      b.sim.faults.script([
        { kind: 'http', status: 400, message: 'malformed API key sk-operator-SECRET123' },
        { kind: 'http', status: 422, detail: [{ loc: ['query', 'size'], msg: 'size too big' }, { loc: ['header', 'authorization'], msg: 'key sk-operator-SECRET123 malformed' }] },
      ], { endpoint: 'list' });
      await r.until((x) => x.statuses().filter((st) => typeof st.upstream_error === 'string').length >= 1 && x.messages.some((m) => m.type === 'snapshot'), 15_000);
      const said = JSON.stringify(r.messages);
      expect(said).toMatch(/list: HTTP (400|422)/);
      expect(said).not.toMatch(/SECRET|size too big/);
    } finally {
      r.close();
      await b.close();
    }
  });

  it('after a failed poll, says it answers again before the rows that poll brought', async () => {
    const b = await startBridge({ SESSION_LIST_POLL_SECONDS: String(POLL_SECONDS) }, { api: 'real' });
    const r = record(`${b.url}/sessions/events`, { events: LIST_EVENTS });
    try {
      await r.until((x) => x.messages.some((m) => m.type === 'snapshot'), 10_000);
      b.sim.faults.script([{ kind: 'http', status: 503 }], { endpoint: 'list' });
      await r.until((x) => x.statuses().some((st) => typeof st.upstream_error === 'string'), 10_000);
      const id = await create(b, 'after the outage');
      await r.until((x) => listOf(x).has(id), 10_000);
      const kinds = r.messages.map((m) => (m.type === 'status' ? `status:${m.data.upstream_error === null ? 'ok' : 'failing'}` : m.type === 'upsert' && m.data.id === id ? 'upsert:new' : m.type));
      const failing = kinds.indexOf('status:failing');
      expect(kinds.slice(failing), kinds.join(' ')).toEqual(expect.arrayContaining(['status:ok', 'upsert:new']));
      expect(kinds.indexOf('status:ok', failing), kinds.join(' ')).toBeLessThan(kinds.indexOf('upsert:new'));
    } finally {
      r.close();
      await b.close();
    }
  });
});

describe('GET /sessions/events: the bound on distinct lists', () => {
  it('polls at most SESSION_LIST_MAX_LISTS lists at once: a viewer of one more gets 429, a viewer of a watched one does not', async () => {
    const b = await startBridge({ SESSION_LIST_POLL_SECONDS: String(POLL_SECONDS), SESSION_LIST_MAX_LISTS: '2' }, { api: 'real' });
    const viewers = [record(`${b.url}/sessions/events?search=a`, { events: LIST_EVENTS }), record(`${b.url}/sessions/events?search=b`, { events: LIST_EVENTS })];
    try {
      await Promise.all(viewers.map((r) => r.until((x) => x.messages.some((m) => m.type === 'snapshot'), 10_000)));
      b.sim.clearRequests();
      const third = await fetch(`${b.url}/sessions/events?search=c`);
      expect(third.status).toBe(429);
      expect(third.headers.get('retry-after')).toBe('10');
      expect(b.sim.requests().some((r) => r.target.includes('search=c'))).toBe(false);
      const again = record(`${b.url}/sessions/events?search=a`, { events: LIST_EVENTS });
      viewers.push(again);
      await again.until((x) => x.messages.some((m) => m.type === 'snapshot'), 10_000);
    } finally {
      for (const r of viewers) r.close();
      await b.close();
    }
  });
});

describe('GET /sessions/events: the share of one client', () => {
  it('lets one client make at most SESSION_LIST_MAX_LISTS_PER_IP lists polled; a list it started counts against another viewer once it leaves', async () => {
    const b = await startBridge({ SESSION_LIST_POLL_SECONDS: String(POLL_SECONDS), SESSION_LIST_MAX_LISTS_PER_IP: '2', SESSION_LIST_GRACE_SECONDS: '0', TRUST_PROXY: 'x-forwarded-for' }, { api: 'real' });
    const from = (ip: string) => ({ 'x-forwarded-for': ip });
    const viewers: Recorder[] = [];
    const view = (query: string, ip: string) => viewAs(b, viewers, query, ip);
    const snapshot = snapshotOf;
    try {
      const a = view('?search=a', '192.0.2.1');
      await snapshot(a);
      await snapshot(view('?search=b', '192.0.2.1'));
      b.sim.clearRequests();
      const third = await fetch(`${b.url}/sessions/events?search=c`, { headers: from('192.0.2.1') });
      expect(third.status).toBe(429);
      expect(third.headers.get('retry-after')).toBe('10');
      expect(((await third.json()) as { error: string }).error).toMatch(/distinct session lists from this client \(limit 2\)/);
      expect(b.sim.requests().some((r) => r.target.includes('search=c'))).toBe(false);
      // A list already polled costs nothing more: the same client may view it again, another client may view its lists.
      await snapshot(view('?search=a', '192.0.2.1'));
      await snapshot(view('?search=a', '192.0.2.2'));
      // Another client has its own share.
      await snapshot(view('?search=c', '192.0.2.2'));
      // The first client leaves search=a: the list, still viewed by the second, counts against the second from now on.
      a.close();
      viewers.at(-3)!.close();
      await eventually(async () => {
        const retry = await fetch(`${b.url}/sessions/events?search=d`, { headers: from('192.0.2.1') });
        await retry.body?.cancel();
        return retry.status === 200;
      }, 5_000, "the first client's share back");
      const second = await fetch(`${b.url}/sessions/events?search=e`, { headers: from('192.0.2.2') });
      expect(second.status).toBe(429);
      expect(b.server.lists.chargedTo('192.0.2.2')).toBe(2);
    } finally {
      for (const r of viewers) r.close();
      await b.close();
    }
  });
});

describe('GET /sessions/events: the share of a client that left', () => {
  it('a list kept in its grace and viewed again counts against its new viewer, not the client that left it', async () => {
    const b = await startBridge({ SESSION_LIST_POLL_SECONDS: String(POLL_SECONDS), SESSION_LIST_MAX_LISTS_PER_IP: '1', SESSION_LIST_GRACE_SECONDS: '30', TRUST_PROXY: 'x-forwarded-for' }, { api: 'real' });
    const viewers: Recorder[] = [];
    const view = (query: string, ip: string) => snapshotOf(viewAs(b, viewers, query, ip));
    try {
      await view('?search=a', '192.0.2.1');
      viewers[0]!.close();
      // Gone from the list's viewers; the list is polled on for its grace, still counted against 192.0.2.1.
      await eventually(() => b.server.lists.chargedTo('192.0.2.1') === 1 && b.server.streams.size === 0, 5000, 'the viewer to leave');
      await view('?search=a', '192.0.2.2');
      expect(b.server.lists.chargedTo('192.0.2.1')).toBe(0);
      expect(b.server.lists.chargedTo('192.0.2.2')).toBe(1);
      // Seen: the list stayed charged to the client that left, which then could start no list of its own.
      await view('?search=b', '192.0.2.1');
    } finally {
      for (const r of viewers) r.close();
      await b.close();
    }
  });
});

describe('GET /sessions/events: heartbeats and token expiry, as the other streams', () => {
  it('sends comment lines on an idle list and ends a stream whose token expires with event: error token_expired', async () => {
    const b = await startBridge({ AUTH: '', AUTH_JWT_SECRET: SECRET, HEARTBEAT_SECONDS: '0.3', SESSION_LIST_POLL_SECONDS: '30' }, { api: 'real' });
    try {
      const token = await new SignJWT({ sessions: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(Date.now() / 1000) + 3).sign(new TextEncoder().encode(SECRET));
      const res = await fetch(`${b.url}/sessions/events?access_token=${token}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      let text = '';
      const decoder = new TextDecoder();
      // Read until the server ends the stream (the token's exp), bounded.
      const reading = (async () => {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true });
      })();
      await Promise.race([reading, new Promise((_, reject) => setTimeout(() => reject(new Error(`stream not ended; got ${JSON.stringify(text.slice(-200))}`)), 10_000))]);
      expect(text).toMatch(/^retry: \d+\n\n/);
      expect(text).toContain('event: snapshot\n');
      expect(text).toContain(': keep-alive\n');
      expect(text.trimEnd().endsWith('event: error\ndata: {"error":"token_expired"}')).toBe(true);
    } finally {
      await b.close();
    }
  });
});
