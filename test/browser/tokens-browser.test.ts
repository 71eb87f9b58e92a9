/**
 * Tokens in a real Chromium: a page on another origin of the same site (the
 * page at http://localhost:P1, pollcast at http://localhost:P2; ports do not
 * make another site) streams with the token in a cookie and `withCredentials`;
 * a page whose tokens live 5 s streams for 20 s through renewals (accessToken
 * as an async function fetching tokens from the page's server) with no gap
 * and no duplicate, with `connect` and `connectMany`.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { SignJWT } from 'jose';
import { range, startBridge, type Bridge } from '../helpers/harness.ts';

const CHROMIUM = '/usr/bin/chromium';
const BROWSER_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SECRET = 'browser-token-secret-long-enough-for-hs256';
const CLIENT = readFileSync(new URL('../../public/pollcast-client.js', import.meta.url), 'utf8');
/** Lifetime of the tokens the page's server hands out for the renewal test (s). */
const TOKEN_SECONDS = 5;
/** How long the renewal test's sessions emit (ms): 20 s, several token lifetimes. */
const EMIT_MS = 20_000;
const EMIT_EVERY_MS = 250;

/** An HS256 token for `sessions`, living `seconds`. */
function mint(sessions: string[], seconds: number): Promise<string> {
  return new SignJWT({ sessions }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(Date.now() / 1000) + seconds).sign(new TextEncoder().encode(SECRET));
}

/** The page's own server: the page, the client module, a token endpoint and a login that sets the token cookie. */
interface PageServer {
  url: string;
  /** Tokens handed out, per `who` query value. */
  minted: Map<string, number>;
  close(): Promise<void>;
}

async function startPageServer(): Promise<PageServer> {
  const minted = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const sessions = (url.searchParams.get('sessions') ?? '').split(',').filter(Boolean);
    if (url.pathname === '/') return void res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>tokens</title><p>page</p>');
    if (url.pathname === '/pollcast-client.js') return void res.writeHead(200, { 'content-type': 'text/javascript' }).end(CLIENT);
    if (url.pathname === '/token') {
      const who = url.searchParams.get('who') ?? '';
      minted.set(who, (minted.get(who) ?? 0) + 1);
      void mint(sessions, Number(url.searchParams.get('ttl') ?? TOKEN_SECONDS)).then((t) => res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(t));
      return;
    }
    if (url.pathname === '/login') {
      // Host-only cookie for localhost: sent to every port of it, which is how a same-site pollcast receives it.
      void mint(sessions, 600).then((t) => res.writeHead(204, { 'set-cookie': `pollcast_token=${t}; Path=/; HttpOnly; SameSite=Lax` }).end());
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://localhost:${port}`,
    minted,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** What a page-side stream reported. */
interface PageLog {
  events: Array<{ session?: string; index: number }>;
  ends: string[];
  errors: unknown[];
  opens: number;
  reconnects: number;
}

describe('tokens in Chromium', () => {
  let pages: PageServer;
  let bridge: Bridge;
  let browser: Browser;
  let page: Page;
  let pollcast: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    pages = await startPageServer();
    bridge = await startBridge({ AUTH: '', AUTH_JWT_SECRET: SECRET, CORS_ORIGINS: pages.url, SSE_RETRY_MS: '200' });
    pollcast = bridge.url.replace('127.0.0.1', 'localhost');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS });
    page = await browser.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${pages.url}/`, { timeout: 10_000 });
  }, 30_000);
  afterAll(async () => {
    await browser?.close();
    await bridge?.close();
    await pages?.close();
  });

  /** Starts a stream in the page under `name` (window.logs[name]); `how` is the body of an async function given (client, base, log). */
  async function startInPage(name: string, how: string): Promise<void> {
    await page.evaluate(
      async ([n, body, base]) => {
        const w = window as unknown as { logs: Record<string, PageLog> };
        w.logs ??= {};
        const log: PageLog = { events: [], ends: [], errors: [], opens: 0, reconnects: 0 };
        w.logs[n!] = log;
        // Imported by the page from its own server (a string the test's bundler does not resolve).
        const client = await (new Function('return import("/pollcast-client.js")') as () => Promise<unknown>)();
        const callbacks = {
          onEvent: (e: { session?: string; index: number }) => void log.events.push({ session: e.session, index: e.index }),
          onStatus: () => {},
          onEnd: (e: { session?: string }) => void log.ends.push(e.session ?? ''),
          onOpen: () => void log.opens++,
          onReconnecting: () => void log.reconnects++,
          onError: (e: unknown) => void log.errors.push(e),
        };
        await (new Function('client', 'base', 'callbacks', `return (async () => { ${body} })()`) as (...a: unknown[]) => Promise<void>)(client, base, callbacks);
      },
      [name, how, pollcast] as const,
    );
  }
  const logOf = (name: string) => page.evaluate((n) => (window as unknown as { logs: Record<string, PageLog> }).logs[n]!, name);
  const waitFor = (condition: string, timeoutMs: number) => page.waitForFunction(condition, undefined, { timeout: timeoutMs, polling: 100 });

  it('streams from pollcast on another origin of the same site with the token in a cookie and withCredentials', async () => {
    bridge.sim.createSession('tb-c1', { initialEvents: 4, finished: true });
    const urls: string[] = [];
    page.on('request', (r) => {
      if (r.resourceType() === 'eventsource') urls.push(r.url());
    });
    await page.evaluate(async () => void (await fetch('/login?sessions=tb-c1', { credentials: 'same-origin' })));
    await startInPage('cookie', `client.connect(base, 'tb-c1', { withCredentials: true, ...callbacks });`);
    await waitFor(`window.logs.cookie.ends.length === 1 || window.logs.cookie.errors.length > 0`, 15_000);
    const log = await logOf('cookie');
    expect(log.errors).toEqual([]);
    expect(log.events.map((e) => e.index)).toEqual(range(4));
    // The cookie carried it: no token in the URL.
    expect(urls.filter((u) => u.includes('tb-c1')).every((u) => !u.includes('access_token'))).toBe(true);
    // Without withCredentials the cookie stays home, and pollcast refuses.
    await startInPage('nocookie', `client.connect(base, 'tb-c1', callbacks);`);
    await waitFor(`window.logs.nocookie.errors.length > 0 || window.logs.nocookie.ends.length > 0`, 15_000);
    const refused = await logOf('nocookie');
    expect(refused.ends).toEqual([]);
    expect(refused.errors).toEqual([{ reason: 'refused', lastIndex: -1, status: 401, error: 'unauthorized', message: expect.stringMatching(/access token is required/) }]);
    expect(pageErrors).toEqual([]);
  }, 40_000);

  it('streams 20 s on 5 s tokens through renewals with no gap and no duplicate, with connect and connectMany', async () => {
    const count = Math.round(EMIT_MS / EMIT_EVERY_MS);
    for (const id of ['tb-r1', 'tb-m1', 'tb-m2']) bridge.sim.createSession(id, { initialEvents: 1, emitEveryMs: EMIT_EVERY_MS, emitCount: count });
    const token = (who: string, sessions: string) => `async () => (await fetch('/token?who=${who}&sessions=${sessions}')).text()`;
    await startInPage('single', `client.connect(base, 'tb-r1', { accessToken: ${token('single', 'tb-r1')}, ...callbacks });`);
    await startInPage('many', `client.connectMany(base, ['tb-m1', 'tb-m2'], { accessToken: ${token('many', 'tb-m1,tb-m2')}, ...callbacks });`);
    const deadline = EMIT_MS + 25_000;
    await waitFor(`(window.logs.single.ends.length === 1 || window.logs.single.errors.length > 0) && (window.logs.many.ends.length === 2 || window.logs.many.errors.length > 0)`, deadline);
    const single = await logOf('single');
    const many = await logOf('many');
    expect(single.errors).toEqual([]);
    expect(many.errors).toEqual([]);
    expect(single.events.map((e) => e.index)).toEqual(range(bridge.sim.eventCount('tb-r1')));
    for (const id of ['tb-m1', 'tb-m2']) expect(many.events.filter((e) => e.session === id).map((e) => e.index), id).toEqual(range(bridge.sim.eventCount(id)));
    expect(bridge.sim.eventCount('tb-r1')).toBe(count + 1);
    // At least two renewals each: the first token, then one per expiry (a 20 s stream outlives several 5 s tokens).
    expect(pages.minted.get('single')).toBeGreaterThanOrEqual(3);
    expect(pages.minted.get('many')).toBeGreaterThanOrEqual(3);
    // Every token was used for a connection that opened.
    expect(single.opens).toBeGreaterThanOrEqual(pages.minted.get('single')!);
    expect(many.opens).toBeGreaterThanOrEqual(pages.minted.get('many')!);
    expect(bridge.server.metrics.stats.streamsClosed.expired).toBeGreaterThanOrEqual(4);
    expect(pageErrors).toEqual([]);
  }, 90_000);
});
