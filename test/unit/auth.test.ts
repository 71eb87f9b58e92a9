/**
 * The authorizer on its own, mounted on a real socket with the app's error
 * mapping: a token must carry `exp` (a token without it would be valid
 * forever), an expired one is refused from its exp on (the clock tolerance
 * applies to nbf only, so a stream closed at exp cannot reconnect), and what
 * it returns is the token's expiry, which lets a caller end a stream on time.
 */
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { SignJWT } from 'jose';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allowAll, credentialsOf, type Authorizer } from '../../src/http/auth.ts';
import { createJwtAuthorizer, JWT_CLOCK_TOLERANCE_SECONDS } from '../../src/http/auth-token.ts';
import { errorResponse } from '../../src/http/errors.ts';
import { silentLogger } from '../../src/log.ts';
import { JWT_SECRET } from '../security/helpers.ts';

const now = () => Math.floor(Date.now() / 1000);
let server: ServerType;
let baseUrl: string;

/** `/jwt/:id` and `/open/:id` answer what the authorizer returned, or the app's error answer. */
function appFor(authorizers: Record<string, Authorizer>): Hono {
  const app = new Hono();
  app.get('/:kind/:id', async (c) => {
    const { expiresAtMs } = await authorizers[c.req.param('kind')]!(credentialsOf(c), [c.req.param('id')]);
    return c.json({ expiresAtMs: expiresAtMs ?? null });
  });
  app.onError((err, c) => errorResponse(c, err, silentLogger()));
  return app;
}

beforeAll(async () => {
  const app = appFor({ jwt: createJwtAuthorizer(JWT_SECRET), open: allowAll });
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
  });
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** An HS256 token with exactly `claims` (no exp unless given). */
function sign(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().sign(new TextEncoder().encode(JWT_SECRET));
}

async function ask(path: string, token?: string): Promise<{ status: number; body: { expiresAtMs?: number | null; error?: string; code?: string } }> {
  const res = await fetch(`${baseUrl}${path}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as { expiresAtMs?: number | null; error?: string } };
}

describe('the JWT authorizer', () => {
  it('refuses a token without exp with 401, even one for the session, before looking at its sessions', async () => {
    for (const claims of [{ sessions: ['s-1'] }, { sessions: ['*'] }, {}]) {
      const { status, body } = await ask('/jwt/s-1', await sign(claims));
      expect(status, JSON.stringify(claims)).toBe(401);
      expect(body).toEqual({ error: 'access token has no exp claim', code: 'unauthorized' });
    }
  });

  it('refuses a token past its exp with 401, within the clock tolerance too', async () => {
    for (const exp of [now() - JWT_CLOCK_TOLERANCE_SECONDS - 5, now() - 1]) {
      const { status, body } = await ask('/jwt/s-1', await sign({ sessions: ['s-1'], exp }));
      expect(status, `exp ${exp}`).toBe(401);
      expect(body).toEqual({ error: 'access token expired', code: 'unauthorized' });
    }
  });

  it('returns the expiry as exp × 1000 ms', async () => {
    const exp = now() + 3600;
    const { status, body } = await ask('/jwt/s-1', await sign({ sessions: ['s-1'], exp }));
    expect(status).toBe(200);
    expect(body.expiresAtMs).toBe(exp * 1000);
  });

  it('still answers 403 for a token with exp that does not cover the session', async () => {
    const { status, body } = await ask('/jwt/s-1', await sign({ sessions: ['s-2'], exp: now() + 60 }));
    expect(status).toBe(403);
    expect(body.code).toBe('forbidden');
  });
});

describe('without auth', () => {
  it('allowAll lets the request through with no expiry', async () => {
    const { status, body } = await ask('/open/s-1');
    expect(status).toBe(200);
    expect(body).toEqual({ expiresAtMs: null });
  });
});
