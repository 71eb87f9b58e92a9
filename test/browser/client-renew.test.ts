/**
 * Token renewal in public/pollcast-client.js against a real bridge, in Node
 * with the `eventsource` package's EventSource standing in for the browser's
 * (tokens-browser.test.ts drives the same module in Chromium): a token
 * function asked again on `token_expired` and on a 401 at open, resuming with
 * no gap and no repeat; a string token that expires ends with
 * `reason: 'expired'`; a function that keeps handing out refused tokens stops
 * after one retry.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { EventSource } from 'eventsource';
import { SignJWT } from 'jose';
import { connect, connectMany, watchSessions, type PollcastEvent, type SessionEvent } from '../../public/pollcast-client.js';
import { startBridge, eventually, range, type Bridge } from '../helpers/harness.ts';

const SECRET = 'client-renew-secret-that-is-long-enough-hs256';
const mint = (sessions: string[], seconds: number) =>
  new SignJWT({ sessions }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(Date.now() / 1000) + seconds).sign(new TextEncoder().encode(SECRET));

describe('pollcast-client.js token renewal', () => {
  let bridge: Bridge;
  const hadEventSource = 'EventSource' in globalThis;
  beforeAll(async () => {
    (globalThis as { EventSource?: unknown }).EventSource = EventSource;
    bridge = await startBridge({ AUTH: '', AUTH_JWT_SECRET: SECRET, SSE_RETRY_MS: '100' });
  });
  afterAll(async () => {
    if (!hadEventSource) delete (globalThis as { EventSource?: unknown }).EventSource;
    await bridge?.close();
  });

  it('connect: a token refused at open (401) is asked again, and an expiring one renewed, with no gap and no repeat', async () => {
    const { sim, url } = bridge;
    sim.createSession('cr-1', { initialEvents: 2 });
    let asked = 0;
    // The first token is already expired (401 at open); the next ones live 2 s.
    const accessToken = () => mint(['cr-1'], asked++ === 0 ? -10 : 2);
    const events: PollcastEvent[] = [];
    const errors: unknown[] = [];
    let ended = false;
    const stream = connect(url, 'cr-1', { accessToken, onEvent: (e) => void events.push(e), onStatus: () => {}, onEnd: () => void (ended = true), onError: (e) => void errors.push(e) });
    try {
      await eventually(() => events.length === 2, 10_000, 'the history after the 401');
      // Live events across at least one expiry (a token lives 2 s).
      for (let i = 0; i < 4; i++) {
        sim.appendEvents('cr-1', 1);
        await new Promise((r) => setTimeout(r, 1000));
      }
      sim.finish('cr-1');
      await eventually(() => ended || errors.length > 0, 15_000, 'the end');
      expect(errors).toEqual([]);
      expect(events.map((e) => e.index)).toEqual(range(6));
      expect(asked).toBeGreaterThanOrEqual(3);
    } finally {
      stream.close();
    }
  }, 30_000);

  it('connectMany: renewed from its cursor on token_expired, every session with no gap and no repeat', async () => {
    const { sim, url } = bridge;
    sim.createSession('cr-2', { initialEvents: 1 });
    sim.createSession('cr-3', { initialEvents: 2 });
    let asked = 0;
    const events: SessionEvent[] = [];
    const errors: unknown[] = [];
    let done = false;
    const stream = connectMany(url, ['cr-2', 'cr-3'], {
      accessToken: async () => (asked++, mint(['cr-2', 'cr-3'], 2)),
      onEvent: (e) => void events.push(e),
      onDone: () => void (done = true),
      onError: (e) => void errors.push(e),
    });
    try {
      for (let i = 0; i < 4; i++) {
        sim.appendEvents('cr-2', 1);
        sim.appendEvents('cr-3', 1);
        await new Promise((r) => setTimeout(r, 1000));
      }
      sim.finish('cr-2');
      sim.finish('cr-3');
      await eventually(() => done || errors.length > 0, 15_000, 'every end');
      expect(errors).toEqual([]);
      expect(events.filter((e) => e.session === 'cr-2').map((e) => e.index)).toEqual(range(5));
      expect(events.filter((e) => e.session === 'cr-3').map((e) => e.index)).toEqual(range(6));
      expect(asked).toBeGreaterThanOrEqual(2);
    } finally {
      stream.close();
    }
  }, 30_000);

  it('a string token that expires ends the stream with reason "expired" (nothing to renew it with)', async () => {
    bridge.sim.createSession('cr-4', { initialEvents: 1 });
    const errors: unknown[] = [];
    const stream = connect(bridge.url, 'cr-4', { accessToken: await mint(['cr-4'], 2), onEvent: () => {}, onStatus: () => {}, onEnd: () => {}, onError: (e) => void errors.push(e) });
    await eventually(() => errors.length > 0, 10_000, 'onError');
    expect(errors).toEqual([{ reason: 'expired', lastIndex: 0, error: 'token_expired' }]);
    expect(stream.closed).toBe(true);
  });

  it('a token function whose tokens are refused is asked once more, then the refusal is reported', async () => {
    bridge.sim.createSession('cr-5', { initialEvents: 1 });
    let asked = 0;
    const errors: unknown[] = [];
    // A token for another session: 403, not 401, so no fresh token would help.
    connect(bridge.url, 'cr-5', { accessToken: () => (asked++, mint(['other'], 60)), onEvent: () => {}, onStatus: () => {}, onEnd: () => {}, onError: (e) => void errors.push(e) });
    await eventually(() => errors.length > 0, 10_000, 'onError');
    expect(errors).toEqual([{ reason: 'refused', lastIndex: -1, status: 403, error: 'forbidden', message: 'access token does not cover session "cr-5"' }]);
    expect(asked).toBe(1);
    // Always expired: one retry after the 401, then the refusal.
    let askedExpired = 0;
    const errors401: unknown[] = [];
    connect(bridge.url, 'cr-5', { accessToken: () => (askedExpired++, mint(['cr-5'], -10)), onEvent: () => {}, onStatus: () => {}, onEnd: () => {}, onError: (e) => void errors401.push(e) });
    await eventually(() => errors401.length > 0, 10_000, 'onError after the retry');
    expect(errors401).toEqual([{ reason: 'refused', lastIndex: -1, status: 401, error: 'unauthorized', message: expect.stringMatching(/expired/) }]);
    expect(askedExpired).toBe(2);
  });
});

describe('pollcast-client.js watchSessions: token functions', () => {
  let bridge: Bridge;
  const hadEventSource = 'EventSource' in globalThis;
  beforeAll(async () => {
    (globalThis as { EventSource?: unknown }).EventSource = EventSource;
    bridge = await startBridge({ AUTH: '', AUTH_JWT_SECRET: SECRET, SSE_RETRY_MS: '100', SESSION_LIST_POLL_SECONDS: '0.5' }, { api: 'real' });
  });
  afterAll(async () => {
    if (!hadEventSource) delete (globalThis as { EventSource?: unknown }).EventSource;
    await bridge?.close();
  });
  const create = async () => {
    const res = await fetch(`${bridge.sim.url}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'web-agent', messages: 'listed' }) });
    return ((await res.json()) as { id: string }).id;
  };

  it('a token function is asked again at a 401 and at each expiry, and the list goes on with no change lost', async () => {
    let asked = 0;
    // The first token is already expired (401 at open); the next ones live 2 s.
    const accessToken = () => mint(['*'], asked++ === 0 ? -10 : 2);
    const rows = new Map<string, unknown>();
    const errors: unknown[] = [];
    const watch = watchSessions(bridge.url, {
      accessToken,
      onSnapshot: ({ items }) => {
        rows.clear();
        for (const s of items) rows.set(s.id, s);
      },
      onUpsert: (s) => void rows.set(s.id, s),
      onRemove: ({ id }) => void rows.delete(id),
      onError: (e) => void errors.push(e),
    });
    try {
      const ids: string[] = [];
      // Sessions created across two expiries.
      for (let i = 0; i < 5; i++) {
        ids.push(await create());
        await new Promise((r) => setTimeout(r, 1000));
      }
      await eventually(() => ids.every((id) => rows.has(id)), 10_000, 'every session on the list');
      expect(errors).toEqual([]);
      expect(asked).toBeGreaterThanOrEqual(3);
      expect(watch.closed).toBe(false);
    } finally {
      watch.close();
    }
  }, 30_000);

  it('a string token that expires ends the watch with reason token_expired', async () => {
    const errors: Array<{ reason: string }> = [];
    const watch = watchSessions(bridge.url, { accessToken: await mint(['*'], 2), onError: (e) => void errors.push(e) });
    try {
      await eventually(() => errors.length > 0, 10_000, 'the expiry');
      expect(errors).toEqual([{ reason: 'token_expired' }]);
      expect(watch.closed).toBe(true);
    } finally {
      watch.close();
    }
  }, 20_000);
});
