import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import type { Simulator } from '../../src/simulator/index.ts';
import { control, get, within } from './helpers.ts';

let sim: Simulator;
const A = 'key-org-a';
const A2 = 'key-org-a-second';
const B = 'key-org-b';

beforeEach(async () => {
  sim = await createSimulator({ api: 'real', apiKeys: { [A]: 'org-a', [A2]: 'org-a', [B]: 'org-b' }, run: { eventEveryMs: 20, events: 10 } });
});

afterEach(async () => {
  await sim.close();
});

function call(key: string | undefined, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return get(`${sim.url}${path}`, {
    method,
    redirect: 'manual',
    headers: {
      ...(key !== undefined ? { authorization: `Bearer ${key}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
}

async function json(res: Response): Promise<any> {
  return res.json();
}

async function create(key: string, body: unknown = { agent: 'web-agent', messages: 'Find a flight' }, headers: Record<string, string> = {}): Promise<any> {
  const res = await call(key, 'POST', '/sessions', body, headers);
  expect(res.status).toBe(201);
  return json(res);
}

async function waitFor<T>(probe: () => Promise<T | undefined>, label: string, ms = 5_000): Promise<T> {
  return within(
    (async () => {
      for (;;) {
        const value = await probe();
        if (value !== undefined) return value;
        await new Promise((r) => setTimeout(r, 20));
      }
    })(),
    ms,
    label,
  );
}

describe('real dialect REST API: keys and visibility', () => {
  it('a key sees its organisation only: another organisation answers 404 on every route, an unknown key 401', async () => {
    const session = await create(A);
    expect(sim.organisationOf(session.id)).toBe('org-a');
    for (const path of ['', '/status', '/changes', '/events', '/resources/shots/1.png']) {
      expect((await call(A2, 'GET', `/sessions/${session.id}${path}`)).status, `A2 ${path}`).not.toBe(404);
      expect((await call(B, 'GET', `/sessions/${session.id}${path}`)).status, `B ${path}`).toBe(404);
    }
    for (const action of ['pause', 'resume', 'force_answer']) expect((await call(B, 'POST', `/sessions/${session.id}/${action}`)).status).toBe(404);
    expect((await call(B, 'DELETE', `/sessions/${session.id}`)).status).toBe(404);
    expect((await json(await call(B, 'GET', '/sessions'))).total).toBe(0);
    expect((await json(await call(A2, 'GET', '/sessions'))).items.map((s: { id: string }) => s.id)).toEqual([session.id]);
    expect((await call(undefined, 'GET', '/sessions')).status).toBe(401);
    expect((await call('nope', 'GET', `/sessions/${session.id}/status`)).status).toBe(401);
  });

  it('sessions created without an organisation are seen by every key; a revoked key is 401 from then on', async () => {
    sim.createSession('shared-1', { initialEvents: 2, imageBytes: 0 });
    sim.createSession('owned-b', { initialEvents: 1, imageBytes: 0, organisation: 'org-b' });
    expect((await call(A, 'GET', '/sessions/shared-1/status')).status).toBe(200);
    expect((await call(A, 'GET', '/sessions/owned-b/status')).status).toBe(404);
    expect((await call(B, 'GET', '/sessions/owned-b/status')).status).toBe(200);
    expect((await control(sim, 'POST', 'keys/revoke', { key: B })).status).toBe(200);
    expect((await call(B, 'GET', '/sessions/owned-b/status')).status).toBe(401);
    sim.addKey('key-new', 'org-b');
    expect((await call('key-new', 'GET', '/sessions/owned-b/status')).status).toBe(200);
  });
});

describe('real dialect REST API: sessions', () => {
  it('POST /sessions answers 201 with a Session that runs and completes; the same Idempotency-Key gives the same session', async () => {
    const first = await create(A, { agent: 'web-agent', messages: 'Find a flight' }, { 'idempotency-key': 'abc' });
    expect(first).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      request: { agent: 'web-agent', messages: 'Find a flight' },
      status: 'pending',
      agent_view_url: expect.any(String),
      latest_answer: null,
      created_at: expect.any(String),
      started_at: null,
      finished_at: null,
    });
    const again = await create(A, { agent: 'web-agent', messages: 'Find a flight' }, { 'idempotency-key': 'abc' });
    expect(again.id).toBe(first.id);
    expect((await create(A, { agent: 'web-agent' }, { 'idempotency-key': 'other' })).id).not.toBe(first.id);
    // Another organisation's identical key is its own.
    expect((await create(B, { agent: 'web-agent' }, { 'idempotency-key': 'abc' })).id).not.toBe(first.id);

    const done = await waitFor(async () => {
      const s = await json(await call(A, 'GET', `/sessions/${first.id}`));
      return s.finished_at !== null ? s : undefined;
    }, 'run completes');
    expect(done.status).toBe('completed');
    expect(done.latest_answer).toEqual(expect.any(String));
    const types = sim.events(first.id).map((e) => e.type);
    expect(types.at(-1)).toBe('AgentCompletionEvent');
    expect((await call(A, 'GET', `/sessions/${first.id}/changes?from_index=${types.length}`)).status).toBe(204);
  });

  it('bad bodies answer 422 with FastAPI detail rows, and nothing is created', async () => {
    for (const body of ['{nope', '[]', { messages: 'no agent' }, { agent: 5 }]) {
      const res = await call(A, 'POST', '/sessions', body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect((await json(res)).detail).toEqual([expect.objectContaining({ loc: expect.any(Array), msg: expect.any(String), type: expect.any(String) })]);
    }
    expect((await call(A, 'POST', '/sessions', { agent: 'x' }, { 'idempotency-key': 'k'.repeat(256) })).status).toBe(422);
    expect(sim.listSessions()).toEqual([]);
  });

  it('pause makes /status say paused and stops the run until resume', async () => {
    const { id } = await create(A);
    await waitFor(async () => (sim.eventCount(id) >= 2 ? true : undefined), 'run started');
    expect((await call(A, 'POST', `/sessions/${id}/pause`)).status).toBe(202);
    expect((await json(await call(A, 'GET', `/sessions/${id}/status`))).status).toBe('paused');
    const held = sim.eventCount(id);
    await new Promise((r) => setTimeout(r, 150));
    expect(sim.eventCount(id)).toBe(held);
    expect((await json(await call(A, 'GET', `/sessions/${id}/status`))).status).toBe('paused');
    expect((await call(A, 'POST', `/sessions/${id}/resume`)).status).toBe(202);
    expect((await json(await call(A, 'GET', `/sessions/${id}/status`))).status).toBe('running');
    await waitFor(async () => (sim.eventCount(id) > held ? true : undefined), 'run goes on');
  });

  it('messages take a 1.3 MB body and keep its byte count and sha256; bad message bodies are 422', async () => {
    const { id } = await create(A);
    const body = JSON.stringify({ type: 'user_message', message: randomBytes(975_000).toString('base64') });
    expect(Buffer.byteLength(body)).toBeGreaterThan(1_300_000);
    expect((await call(A, 'POST', `/sessions/${id}/messages`, body)).status).toBe(202);
    expect(sim.received(id)).toEqual([
      { route: 'messages', bytes: Buffer.byteLength(body), sha256: createHash('sha256').update(body).digest('hex'), at: expect.any(String) },
    ]);
    expect((await control(sim, 'GET', `sessions/${id}/received`)).body.received).toHaveLength(1);
    const last = sim.events(id).find((e) => e.data.kind === 'message_event' && e.data.role === 'user');
    expect(last?.data.body_bytes).toBe(Buffer.byteLength(body));
    for (const bad of [{}, { type: 'batch', messages: [] }, { type: 'other', message: 'x' }, 'nope']) {
      expect((await call(A, 'POST', `/sessions/${id}/messages`, bad)).status, JSON.stringify(bad)).toBe(422);
    }
    expect((await call(A, 'POST', `/sessions/${id}/tool_results`, { tool_req: { tool_name: 't' }, result: 1 })).status).toBe(202);
    expect((await call(A, 'POST', `/sessions/${id}/tool_results`, { type: 'batch', results: [] })).status).toBe(422);
  });

  it('force_answer completes at the next step; DELETE cancels (interrupted) and answers 204 again once over; actions on an ended session are 409', async () => {
    const one = await create(A);
    expect((await call(A, 'POST', `/sessions/${one.id}/force_answer`)).status).toBe(202);
    await waitFor(async () => ((await json(await call(A, 'GET', `/sessions/${one.id}/status`))).status === 'completed' ? true : undefined), 'forced answer');
    expect((await call(A, 'POST', `/sessions/${one.id}/pause`)).status).toBe(409);

    const two = await create(A);
    expect((await call(A, 'DELETE', `/sessions/${two.id}`)).status).toBe(204);
    const after = await json(await call(A, 'GET', `/sessions/${two.id}`));
    expect(after.status).toBe('interrupted');
    expect(after.finished_at).toEqual(expect.any(String));
    expect((await call(A, 'DELETE', `/sessions/${two.id}`)).status).toBe(204);
  });
});

describe('real dialect REST API: lists, history, share, resources', () => {
  it('GET /sessions pages summaries and filters by repeated status, agent, search, created_after; size over 100 is 422', async () => {
    sim.createSession('s-run', { initialEvents: 1, imageBytes: 0, organisation: 'org-a', request: { agent: 'alpha', messages: 'Book a TABLE' } });
    sim.createSession('s-done', { initialEvents: 1, imageBytes: 0, finished: true, organisation: 'org-a', request: { agent: 'beta' } });
    sim.createSession('s-new', { organisation: 'org-a', request: { agent: 'alpha' } });
    const page = await json(await call(A, 'GET', '/sessions?size=2'));
    expect(page).toMatchObject({ total: 3, page: 1, size: 2, pages: 2 });
    expect(page.items.map((s: { id: string }) => s.id)).toEqual(['s-new', 's-done']);
    expect(Object.keys(page.items[0]).sort()).toEqual(
      ['agent', 'agent_view_url', 'anonymized_at', 'created_at', 'finished_at', 'first_message', 'id', 'last_activity_at', 'started_at', 'status'].sort(),
    );
    const ids = async (query: string) => (await json(await call(A, 'GET', `/sessions?${query}`))).items.map((s: { id: string }) => s.id).sort();
    expect(await ids('status=running&status=completed')).toEqual(['s-done', 's-run']);
    expect(await ids('status=pending')).toEqual(['s-new']);
    expect(await ids('agent=alpha')).toEqual(['s-new', 's-run']);
    expect(await ids('search=table')).toEqual(['s-run']);
    expect(await ids('created_after=2000-01-01T00:00:00Z')).toHaveLength(3);
    expect(await ids('created_after=2999-01-01T00:00:00Z')).toEqual([]);
    for (const bad of ['size=101', 'size=0', 'page=0', 'status=nope', 'created_after=yesterday', 'owner=everyone', 'size=x']) {
      expect((await call(A, 'GET', `/sessions?${bad}`)).status, bad).toBe(422);
    }
  });

  it('GET /sessions/{id}/events pages the history; share answers 200 then 204; resources answer 302 with a Location', async () => {
    sim.createSession('h', { initialEvents: 7, imageBytes: 0 });
    const page = await json(await call(A, 'GET', '/sessions/h/events?size=3&page=3'));
    expect(page).toMatchObject({ total: 7, page: 3, size: 3, pages: 3 });
    expect(page.items).toEqual([sim.events('h')[6]]);
    expect((await call(A, 'GET', '/sessions/h/events?size=201')).status).toBe(422);

    const shared = await call(A, 'POST', '/sessions/h/share');
    expect(shared.status).toBe(200);
    expect(await json(shared)).toEqual({ share_url: expect.stringMatching(/^\/.*h$/) });
    expect((await call(A, 'DELETE', '/sessions/h/share')).status).toBe(204);

    const redirect = await call(A, 'GET', '/sessions/h/resources/screenshots/step%201/a.png');
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toMatch(/^https:\/\/resources\.example\.invalid\/screenshots\/step%201\/a\.png\?X-Amz-Expires=300&X-Amz-Signature=[0-9a-f]{64}$/);
  });

  it('logs every API request target and headers byte for byte (control excluded)', async () => {
    sim.clearRequests();
    await call(A, 'GET', '/sessions?status=running&agent=x&status=idle&search=a%20b+c');
    await control(sim, 'GET', 'stats');
    const [logged, ...rest] = sim.requests();
    expect(rest).toEqual([]);
    expect(logged).toMatchObject({ method: 'GET', target: '/api/v2/sessions?status=running&agent=x&status=idle&search=a%20b+c' });
    expect(logged?.headers.authorization).toEqual([`Bearer ${A}`]);
    expect((await control(sim, 'GET', 'requests')).body.requests).toHaveLength(1);
  });

  it('the simple dialect is unchanged: no REST routes, GET /sessions stays {sessions}', async () => {
    const simple = await createSimulator();
    try {
      simple.createSession('s', { initialEvents: 1 });
      expect((await get(`${simple.url}/sessions/s`)).status).toBe(404);
      expect((await get(`${simple.url}/sessions`, { method: 'POST', body: '{}' })).status).toBe(405);
      expect(await (await get(`${simple.url}/sessions`)).json()).toEqual({ sessions: [expect.objectContaining({ id: 's' })] });
    } finally {
      await simple.close();
    }
  });
});
