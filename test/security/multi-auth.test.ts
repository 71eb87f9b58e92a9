/**
 * Auth and limits on the multiplexed stream: the token must cover every
 * session (403 naming none of them), 401 without one, nothing upstream for a
 * refused request, the per-client stream limits, and the token's expiry
 * closing an open stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JWT_CLOCK_TOLERANCE_SECONDS } from '../../src/http/auth-token.ts';
import { eventually, startBridge, type Bridge } from '../helpers/harness.ts';
import { readAll, recordMany } from '../helpers/multi.ts';
import { JWT_SECRET, token } from './helpers.ts';

let bridge: Bridge;
const now = () => Math.floor(Date.now() / 1000);
const IDS = ['ma-1', 'ma-2', 'ma-secret'];

beforeAll(async () => {
  bridge = await startBridge({ AUTH_JWT_SECRET: JWT_SECRET, AUTH: '', MAX_STREAMS_PER_IP: '3' });
  bridge.sim.createSession('ma-1', { initialEvents: 2, finished: true });
  bridge.sim.createSession('ma-2', { initialEvents: 1, finished: true });
  bridge.sim.createSession('ma-secret', { initialEvents: 1, finished: true });
  bridge.sim.createSession('ma-live');
});
afterAll(() => bridge?.close());

const url = (ids: readonly string[], extra = '') => `${bridge.url}/events?sessions=${ids.join(',')}${extra}`;

describe('auth on GET/POST /events', () => {
  it('answers 401 without a token, and with a bad one', async () => {
    const none = await fetch(url(IDS));
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    await none.body?.cancel();
    const forged = await fetch(url(IDS, `&access_token=${await token(['*'], { secret: 'another-secret-of-enough-length-0123456789' })}`));
    expect(forged.status).toBe(401);
    await forged.body?.cancel();
  });

  it('answers 403 when the token misses any session, naming none of them', async () => {
    for (const claim of [['ma-1', 'ma-2'], ['ma-1'], ['other'], []]) {
      const res = await fetch(url(IDS), { headers: { authorization: `Bearer ${await token(claim)}` } });
      expect(res.status, JSON.stringify(claim)).toBe(403);
      const body = (await res.json()) as { error: string; code: string };
      expect(body.code).toBe('forbidden');
      for (const id of [...IDS, ...claim]) expect(body.error).not.toContain(id);
      expect(body.error).toMatch(/does not cover \d+ of the 3 sessions/);
    }
    const post = await fetch(`${bridge.url}/events`, { method: 'POST', body: JSON.stringify({ sessions: IDS }), headers: { authorization: `Bearer ${await token(['ma-1'])}` } });
    expect(post.status).toBe(403);
    expect(await post.text()).not.toContain('ma-secret');
  });

  it('streams to a token naming every session, or ["*"], by query and by header, GET and POST', async () => {
    for (const claim of [IDS, ['*']]) {
      const r = recordMany(url(IDS, `&access_token=${await token(claim)}`), IDS);
      await r.allEnded();
      expect(r.indices('ma-1')).toEqual([0, 1]);
    }
    const byHeader = recordMany(url(IDS), IDS, { headers: { authorization: `Bearer ${await token(IDS)}` } });
    await byHeader.allEnded();
    const post = await fetch(`${bridge.url}/events`, { method: 'POST', body: JSON.stringify({ sessions: IDS }), headers: { authorization: `Bearer ${await token(['*'])}` } });
    expect(post.status).toBe(200);
    expect(await readAll(post)).toContain('"session":"ma-secret"');
  });

  it('sent nothing upstream for a refused request', async () => {
    bridge.sim.resetStats();
    await (await fetch(url(['ma-1', 'ma-never']), { headers: { authorization: `Bearer ${await token(['ma-1'])}` } })).body?.cancel();
    await (await fetch(url(['ma-never']))).body?.cancel();
    const s = bridge.sim.stats('ma-never');
    expect(s.status + s.changes).toBe(0);
  });

  it('counts one stream per connection against MAX_STREAMS_PER_IP, and a slot per session', async () => {
    const t = await token(['*']);
    const open = await Promise.all([0, 1, 2].map(() => fetch(url(['ma-live', 'ma-1'], `&access_token=${t}`))));
    expect(open.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(bridge.server.streams.countFor('ma-live')).toBe(3);
    const refused = await fetch(url(['ma-live'], `&access_token=${t}`));
    expect(refused.status).toBe(429);
    await refused.body?.cancel();
    for (const r of open) await r.body?.cancel();
    await eventually(() => bridge.server.streams.countFor('ma-live') === 0, 5000, 'the streams to close');
  });

  it('closes an open stream when its token expires', async () => {
    // exp is enforced to the second: now() + 1 could leave a few ms of validity, too few for the open itself.
    const exp = now() + 2;
    const res = await fetch(url(['ma-live', 'ma-1'], `&access_token=${await token(['*'], { exp })}`));
    expect(res.status).toBe(200);
    const started = Date.now();
    const body = await readAll(res, (JWT_CLOCK_TOLERANCE_SECONDS + 5) * 1000);
    // Closed by the server, no `end` for the live session.
    expect(body).not.toContain('"session":"ma-live","status":"completed"');
    expect(Date.now() - started).toBeLessThan((JWT_CLOCK_TOLERANCE_SECONDS + 4) * 1000);
    expect(bridge.server.streams.countFor('ma-live')).toBe(0);
  }, 20_000);
});
