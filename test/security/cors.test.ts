/**
 * CORS on a real bridge: preflights, allowed and refused origins, `*`, the
 * headers on a hand-written stream head and on error answers, and no CORS
 * headers at all when CORS_ORIGINS is unset.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../helpers/harness.ts';
import { hold } from './helpers.ts';

const APP = 'https://app.example.com';
const OTHER = 'http://localhost:5173';
const EVIL = 'https://evil.example.net';

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

function preflight(url: string, origin: string): Promise<Response> {
  return fetch(url, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization,last-event-id' } });
}

const list = (v: string | null) => (v ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);

function corsHeaders(res: Response): string[] {
  return [...res.headers.keys()].filter((k) => k.startsWith('access-control-'));
}

describe('CORS with a list of origins', () => {
  it('answers a preflight from an allowed origin with 204 and the allow headers', async () => {
    bridge = await startBridge({ CORS_ORIGINS: `${APP}, ${OTHER}` });
    for (const origin of [APP, OTHER]) {
      for (const path of ['/sessions/c-1/events', '/sessions/c-1/changes']) {
        const res = await preflight(`${bridge.url}${path}`, origin);
        expect(res.status).toBe(204);
        expect(res.headers.get('access-control-allow-origin')).toBe(origin);
        expect(list(res.headers.get('access-control-allow-headers'))).toEqual(expect.arrayContaining(['authorization', 'last-event-id']));
        expect(list(res.headers.get('access-control-allow-methods'))).toContain('get');
        expect(list(res.headers.get('vary'))).toContain('origin');
      }
    }
  });

  it('allows, beside its own, the headers a preflight asks for (the official SDK\'s X-HCompany-*), never a malformed name', async () => {
    bridge = await startBridge({ CORS_ORIGINS: APP });
    const asked = 'authorization, x-hcompany-client-name, X-HCompany-Client-Version, x-hcompany-language, bad header, x\u00e9';
    const res = await fetch(`${bridge.url}/sessions/c-1/changes`, { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': asked } });
    expect(res.status).toBe(204);
    const allowed = list(res.headers.get('access-control-allow-headers'));
    expect(allowed).toEqual(expect.arrayContaining(['authorization', 'last-event-id', 'x-hcompany-client-name', 'x-hcompany-client-version', 'x-hcompany-language']));
    expect(allowed.filter((h) => h === 'authorization')).toHaveLength(1);
    expect(allowed.some((h) => h.includes(' ') || h.includes('\u00e9'))).toBe(false);
    expect(list(res.headers.get('vary'))).toEqual(expect.arrayContaining(['origin', 'access-control-request-headers']));
    // A refused origin is not told the names it asked for.
    const refused = await fetch(`${bridge.url}/sessions/c-1/changes`, { method: 'OPTIONS', headers: { origin: EVIL, 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-hcompany-client-name' } });
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    expect(list(refused.headers.get('access-control-allow-headers'))).not.toContain('x-hcompany-client-name');
  });

  it('gives a refused origin no Access-Control-Allow-Origin, on preflight and on GET', async () => {
    bridge = await startBridge({ CORS_ORIGINS: APP });
    bridge.sim.createSession('c-2', { initialEvents: 1 });
    const pre = await preflight(`${bridge.url}/sessions/c-2/events`, EVIL);
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    const get = await fetch(`${bridge.url}/sessions/c-2/changes`, { headers: { origin: EVIL } });
    expect(get.status).toBe(200);
    expect(get.headers.get('access-control-allow-origin')).toBeNull();
    await get.body?.cancel();
    const stream = await hold(`${bridge.url}/sessions/c-2/events`, { origin: EVIL });
    expect(stream.status).toBe(200);
    expect(stream.res.headers.get('access-control-allow-origin')).toBeNull();
    stream.close();
  });

  it('puts the allow-origin header on the stream head itself, and on /changes', async () => {
    bridge = await startBridge({ CORS_ORIGINS: APP });
    bridge.sim.createSession('c-3', { initialEvents: 2 });
    const stream = await hold(`${bridge.url}/sessions/c-3/events`, { origin: APP });
    expect(stream.status).toBe(200);
    expect(stream.res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(stream.res.headers.get('access-control-allow-origin')).toBe(APP);
    expect(list(stream.res.headers.get('vary'))).toContain('origin');
    // It really is the stream carrying the header: its frames follow.
    const text = await stream.readUntil((t) => t.includes('id: 1'));
    expect(text).toMatch(/^retry: \d+/);
    stream.close();
    const changes = await fetch(`${bridge.url}/sessions/c-3/changes`, { headers: { origin: APP } });
    expect(changes.status).toBe(200);
    expect(changes.headers.get('access-control-allow-origin')).toBe(APP);
    expect(list(changes.headers.get('access-control-expose-headers'))).toContain('retry-after');
    await changes.body?.cancel();
  });

  it('lets a browser read error answers: 400, 401 and 429 carry the allow-origin header', async () => {
    bridge = await startBridge({ CORS_ORIGINS: APP, AUTH_JWT_SECRET: 'x'.repeat(32), AUTH: '', RATE_LIMIT_PER_IP: '0.01', RATE_LIMIT_BURST: '3' });
    const bad = await fetch(`${bridge.url}/sessions/-bad/changes`, { headers: { origin: APP } });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('access-control-allow-origin')).toBe(APP);
    const unauth = await fetch(`${bridge.url}/sessions/c-4/events`, { headers: { origin: APP } });
    expect(unauth.status).toBe(401);
    expect(unauth.headers.get('access-control-allow-origin')).toBe(APP);
    await fetch(`${bridge.url}/sessions/c-4/changes`, { headers: { origin: APP } }).then((r) => r.body?.cancel());
    const limited = await fetch(`${bridge.url}/sessions/c-4/changes`, { headers: { origin: APP } });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('access-control-allow-origin')).toBe(APP);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});

describe('CORS with *', () => {
  it('allows any origin on preflight, stream and /changes', async () => {
    bridge = await startBridge({ CORS_ORIGINS: '*' });
    bridge.sim.createSession('c-5', { initialEvents: 1 });
    const pre = await preflight(`${bridge.url}/sessions/c-5/events`, EVIL);
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    expect(list(pre.headers.get('access-control-allow-headers'))).toEqual(expect.arrayContaining(['authorization', 'last-event-id']));
    const stream = await hold(`${bridge.url}/sessions/c-5/events`, { origin: EVIL });
    expect(stream.res.headers.get('access-control-allow-origin')).toBe('*');
    await stream.readUntil((t) => t.includes('id: 0'));
    stream.close();
    const changes = await fetch(`${bridge.url}/sessions/c-5/changes`, { headers: { origin: OTHER } });
    expect(changes.headers.get('access-control-allow-origin')).toBe('*');
    await changes.body?.cancel();
  });
});

describe('CORS unset', () => {
  it('sends no CORS header anywhere', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('c-6', { initialEvents: 1 });
    const pre = await preflight(`${bridge.url}/sessions/c-6/events`, APP);
    expect(corsHeaders(pre)).toEqual([]);
    await pre.body?.cancel();
    const stream = await hold(`${bridge.url}/sessions/c-6/events`, { origin: APP });
    expect(stream.status).toBe(200);
    expect(corsHeaders(stream.res)).toEqual([]);
    await stream.readUntil((t) => t.includes('id: 0'));
    stream.close();
    const changes = await fetch(`${bridge.url}/sessions/c-6/changes`, { headers: { origin: APP } });
    expect(corsHeaders(changes)).toEqual([]);
    await changes.body?.cancel();
  });
});
