/**
 * The dashboard in Chromium against pollcast bridging the simulator in
 * real-API mode (UPSTREAM_URL set, not demo mode), at 1440 px and 390 px:
 * the list, strip and counters from the live list stream; then the upstream
 * stopped (the trouble in the pill and a banner, statuses marked as the last
 * known, clocks and pulses stopped); a missing and an expired token said in
 * words; a bad id and an unknown id worded apart with the header's count
 * right. Leaves screenshots in test/artifacts/ (upstream-*.png, token-*.png,
 * ids-*.png).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import type { Browser, Page } from 'playwright-core';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { createRun, startDashboardRig, type DashboardRig } from '../helpers/browser.ts';
import { eventually } from '../helpers/harness.ts';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const WAIT_MS = 15_000;
const SECRET = 'a-dashboard-test-secret-of-at-least-32-bytes';
const WIDE = { width: 1440, height: 900 };
const PHONE = { width: 390, height: 844 };


describe('dashboard against a real-API upstream', () => {
  let sim: Simulator;
  let server: PollcastServer;
  let browser: Browser;
  let rig: DashboardRig | undefined;
  const pageErrors: string[] = [];
  const pages: Page[] = [];

  const open = async (url: string, viewport: { width: number; height: number }) => {
    const p = await browser.newPage({ viewport });
    p.on('pageerror', (err) => pageErrors.push(err.message));
    pages.push(p);
    await p.goto(url, { timeout: WAIT_MS });
    return p;
  };
  const shot = (p: Page, name: string) => p.screenshot({ path: `${ARTIFACTS}${name}.png` });

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    // Runs slow enough to be live while the page is looked at; screenshots of a visible size.
    sim = await createSimulator({ api: 'real', run: { eventEveryMs: 400, events: 400 } });
    for (const m of ['Book a table for two in Lisbon', 'Compare three laptop prices', 'Find the cheapest flight to Porto']) await createRun(sim, m);
    sim.createSession('failed-report', { initialEvents: 14, imageBytes: 20_000 });
    sim.finish('failed-report', { error: 'the report page returned 500 three times', closingEvents: true });
    sim.createSession('done-invoice', { initialEvents: 16, imageBytes: 20_000 });
    sim.finish('done-invoice', { closingEvents: true });
    rig = await startDashboardRig(sim, { SSE_RETRY_MS: '500' });
    ({ server, browser } = rig);
  }, 30_000);

  afterAll(() => rig?.close());

  it('shows the upstream\'s list, live, at 1440 px and 390 px; then the upstream stopped, where the eye is', async () => {
    const wide = await open(`${server.url}/`, WIDE);
    const phone = await open(`${server.url}/`, PHONE);
    const listed = sim.listSessions().length;
    for (const p of [wide, phone]) {
      await p.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT_MS });
      await eventually(async () => (await p.locator('.chip').count()) === listed, WAIT_MS, 'a chip per listed session');
      await eventually(async () => (await p.locator('.card .viewport img[src]').count()) >= 3, WAIT_MS, 'screenshots on the cards');
      expect(await p.locator('#summary').innerText()).toMatch(new RegExp(`^${listed} sessions`));
      expect(await p.locator('#note').isHidden()).toBe(true);
      // A real upstream: no word of a simulator.
      expect(await p.locator('#demo').isHidden()).toBe(true);
    }
    // The phone's header scrolls away with the page and is far from a fifth of the screen.
    const top = await phone.locator('.top').boundingBox();
    expect(top!.height).toBeLessThan(PHONE.height / 5);
    expect(await phone.locator('.top').evaluate((e) => getComputedStyle(e).position)).toBe('static');
    // The failed session's error is said once in its log.
    const failedLines = await wide.locator('.card[data-session="failed-report"] .log li .text').allInnerTexts();
    expect(failedLines.filter((t) => t.includes('the report page returned 500 three times'))).toHaveLength(1);
    await shot(wide, 'upstream-1440');
    await wide.screenshot({ path: `${ARTIFACTS}upstream-1440-full.png`, fullPage: true });
    await shot(phone, 'upstream-390');

    // The upstream goes away: the pill, a banner, and every status shown as the last known.
    await sim.close();
    for (const p of [wide, phone]) {
      await p.locator('#conn[data-state="trouble"]').waitFor({ timeout: WAIT_MS });
      await p.locator('#note:visible').waitFor({ timeout: WAIT_MS });
      expect(await p.locator('#note').innerText()).toMatch(/not answering/);
      await p.waitForFunction(() => document.querySelectorAll('.card[data-status="running"]:not([data-stale])').length === 0, undefined, { timeout: WAIT_MS });
      // No pulsing "running" badge while its status is not known to be live.
      const pulsing = await p.locator('.card[data-status="running"] .icon, .chip[data-status="running"] .icon').evaluateAll((icons) => icons.filter((i) => getComputedStyle(i).animationName !== 'none').length);
      expect(pulsing).toBe(0);
    }
    // A stale card's clock stands still.
    const clocks = () => wide.locator('.card[data-status="running"] .time').allInnerTexts();
    const before = await clocks();
    await new Promise((r) => setTimeout(r, 2200));
    expect(await clocks()).toEqual(before);
    await shot(wide, 'upstream-down-1440');
    await shot(phone, 'upstream-down-390');
    expect(pageErrors).toEqual([]);
  });

  it('says a token is needed, or expired, in words (AUTH_JWT_SECRET)', async () => {
    const up = await createSimulator({ api: 'real' });
    await createRun(up, 'Renew the parking permit');
    const guarded = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: up.url, AUTH_JWT_SECRET: SECRET }), { log: silentLogger(), processMetrics: false });
    try {
      const expired = await new SignJWT({ sessions: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(Date.now() / 1000) - 120).sign(new TextEncoder().encode(SECRET));
      for (const [name, viewport] of [['1440', WIDE], ['390', PHONE]] as const) {
        const none = await open(`${guarded.url}/`, viewport);
        await none.locator('#conn[data-state="trouble"]').waitFor({ timeout: WAIT_MS });
        expect(await none.locator('#note').innerText()).toMatch(/needs an access token/);
        expect(await none.locator('#conn-text').innerText()).toBe('token needed');
        await shot(none, `token-missing-${name}`);
        // In the fragment (what the page asks for), or in the query (moved to the fragment by the page).
        const old = await open(name === '1440' ? `${guarded.url}/?token=${expired}` : `${guarded.url}/#token=${expired}`, viewport);
        await old.locator('#conn[data-state="trouble"]').waitFor({ timeout: WAIT_MS });
        expect(await old.locator('#note').innerText()).toMatch(/access token expired/);
        expect(await old.locator('#conn-text').innerText()).toBe('token expired');
        await shot(old, `token-expired-${name}`);
      }
      // A new token pasted into the address's fragment (no reload by itself) is taken up.
      const fresh = await new SignJWT({ sessions: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
      const renewed = await open(`${guarded.url}/`, WIDE);
      await renewed.locator('#conn[data-state="trouble"]').waitFor({ timeout: WAIT_MS });
      await renewed.evaluate((t) => (location.hash = `token=${t}`), fresh);
      await renewed.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT_MS });
    } finally {
      await guarded.close();
      await up.close();
    }
  });

  it('says a key the agent API stops accepting (AUTH=upstream, the list stream ended with access_revoked) in words', async () => {
    // Dashboard audit, 7 Dec 2026: the banner said "The session list refused (undefined)".
    const KEY = 'sk-dashboard-revoked-Lm4Qa';
    const up = await createSimulator({ api: 'real', apiKeys: { [KEY]: 'org-a' } });
    up.createSession('paper', { organisation: 'org-a', initialEvents: 3, imageBytes: 0 });
    const guarded = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: up.url, AUTH: 'upstream', AUTH_UPSTREAM_CACHE_SECONDS: '1' }), { log: silentLogger(), processMetrics: false });
    try {
      const page = await open(`${guarded.url}/#token=${KEY}`, WIDE);
      await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT_MS });
      up.revokeKey(KEY);
      await page.locator('#conn[data-state="trouble"]').waitFor({ timeout: WAIT_MS });
      await eventually(async () => (await page.locator('#conn-text').innerText()) === 'key revoked', WAIT_MS, 'the pill to say the key is revoked');
      expect(await page.locator('#note').innerText()).toMatch(/no longer accepts your key \(access revoked\)/);
      expect(await page.locator('#note').innerText()).not.toMatch(/undefined/);
    } finally {
      await guarded.close();
      await up.close();
    }
  });

  it('gives sessions that start while the page is open a card only up to nine live cards (the rest wait in the strip); a refused filter keeps its form and names the filter; the page sends no Referer', async () => {
    const up = await createSimulator({ api: 'real' });
    const bridge = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: up.url, AUTH: 'none', SESSION_LIST_POLL_SECONDS: '1' }), { log: silentLogger(), processMetrics: false });
    try {
      expect((await fetch(`${bridge.url}/`)).headers.get('referrer-policy')).toBe('no-referrer');
      const p = await browser.newPage({ viewport: WIDE });
      p.on('pageerror', (err) => pageErrors.push(err.message));
      pages.push(p);
      const referers: string[] = [];
      // (An empty Referer, which Chromium shows now and then for an EventSource's request, names nothing.)
      // (A request still in flight when the page closes has its headers refused: nothing to count.)
      p.on('request', (r) => void r.allHeaders().then((h) => h.referer !== undefined && h.referer !== '' && referers.push(`${r.url()} ← ${h.referer}`), () => undefined));
      // The address may carry a token (here a stand-in): no request the page makes names it.
      await p.goto(`${bridge.url}/?token=stand-in-for-a-token`, { timeout: WAIT_MS });
      await p.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT_MS });
      for (let i = 0; i < 20; i++) up.createSession(`started-${String(i).padStart(2, '0')}`, { initialEvents: 1, emitEveryMs: 1000, emitCount: 60, imageBytes: 0 });
      await eventually(async () => (await p.locator('.chip').count()) === 20, WAIT_MS, 'a chip for each of the 20 sessions');
      // The token left the query for the fragment (never sent by the browser), and links carry it there.
      const address = new URL(p.url());
      expect(address.searchParams.has('token')).toBe(false);
      expect(new URLSearchParams(address.hash.slice(1)).get('token')).toBe('stand-in-for-a-token');
      const href = new URL((await p.locator('.chip').first().getAttribute('href'))!, address);
      expect(href.searchParams.has('token')).toBe(false);
      expect(new URLSearchParams(href.hash.slice(1)).get('token')).toBe('stand-in-for-a-token');
      // The list's later rows arrive one by one: each gets a card only while fewer than nine live ones show.
      await new Promise((r) => setTimeout(r, 1500));
      expect(await p.locator('.card').count()).toBe(9);
      expect(referers).toEqual([]);
      // A live card's session ends: a session waiting in the strip takes its place (a dashboard audit, 7 Dec 2026:
      // after a pollcast restart the ended cards stayed, and sessions started meanwhile never got one).
      const cardIds = () => p.locator('.card').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.session!));
      const before = await cardIds();
      up.finish(before[0]!, { closingEvents: true });
      await eventually(async () => {
        const ids = await cardIds();
        return ids.length === 9 && !ids.includes(before[0]!);
      }, WAIT_MS, 'a session waiting in the strip to take the ended card\'s place');
      expect((await cardIds()).filter((id) => !before.includes(id))).toHaveLength(1);

      // A search the server refuses (a tab in it): the banner names the filter, and the form stays to fix it.
      await p.locator('#filter-search').fill('flights\tparis');
      await p.locator('#filters button[type="submit"]').click();
      await p.locator('#note:visible').waitFor({ timeout: WAIT_MS });
      expect(await p.locator('#note').innerText()).toMatch(/filter was refused: search/i);
      expect(await p.locator('#note').innerText()).not.toMatch(/session id/);
      expect(await p.locator('#filters').isVisible()).toBe(true);
      await p.locator('#filter-search').fill('');
      await p.locator('#filters button[type="submit"]').click();
      await eventually(async () => (await p.locator('.chip').count()) === 20 && (await p.locator('#note').isHidden()), WAIT_MS, 'the list back once the filter is fixed');
      // A filter written to the address keeps the fragment's token (a reload still has it).
      expect(new URLSearchParams(new URL(p.url()).hash.slice(1)).get('token')).toBe('stand-in-for-a-token');
    } finally {
      await bridge.close();
      await up.close();
    }
  });

  it('with more sessions than the list reads (SESSION_LIST_MAX_SESSIONS), the header says its counts by status are of those read; a status the page does not know leaves the address', async () => {
    // Dashboard audit, 7 Dec 2026: "220 sessions · 2 running · 34 completed" counted 50 of them by status.
    const up = await createSimulator({ api: 'real' });
    for (let i = 0; i < 8; i++) up.createSession(`capped-${i}`, { initialEvents: 1, imageBytes: 0, finished: true });
    const capped = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: up.url, AUTH: 'none', SESSION_LIST_MAX_SESSIONS: '5' }), { log: silentLogger(), processMetrics: false });
    try {
      const page = await open(`${capped.url}/`, WIDE);
      await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT_MS });
      await eventually(async () => /^8 sessions/.test(await page.locator('#summary').innerText()), WAIT_MS, 'the header to count 8 sessions');
      expect(await page.locator('#summary').innerText()).toMatch(/^8 sessions\s*of the 5 latest:\s*5 completed/);
      expect(await page.locator('#overview-count').textContent()).toBe('5 of 8');
      // A status the page does not know leaves the address, which names only the filters shown.
      const filtered = await open(`${capped.url}/?status=bogus&status=completed`, WIDE);
      await filtered.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT_MS });
      expect(new URL(filtered.url()).searchParams.getAll('status')).toEqual(['completed']);
      expect(await filtered.locator('#filter-status').inputValue()).toBe('completed');
    } finally {
      await capped.close();
      await up.close();
    }
  });

  it('words an agent API whose address does not resolve as such on a card, not as a session it no longer finds', async () => {
    // Review, 7 Dec 2026: "host not found (ENOTFOUND)" matched the page's pattern for a deleted session.
    const bridge = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: 'http://pollcast-test.invalid:9/api/v2', AUTH: 'none' }), { log: silentLogger(), processMetrics: false });
    try {
      const p = await open(`${bridge.url}/?session=s-1`, WIDE);
      const conn = p.locator('.card[data-session="s-1"] .conn');
      await eventually(async () => /address does not resolve/.test(await conn.innerText()), WAIT_MS, 'the card to say the address does not resolve');
      expect(await conn.innerText()).not.toMatch(/no longer finds/);
    } finally {
      await bridge.close();
    }
  });

  it('words a bad id and an unknown id apart, and counts neither as a session', async () => {
    const up = await createSimulator({ api: 'real' });
    const bridge = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: up.url, AUTH: 'none' }), { log: silentLogger(), processMetrics: false });
    try {
      const p = await open(`${bridge.url}/?session=${encodeURIComponent('bad id!')}&session=no-such-session`, WIDE);
      const conn = (id: string) => p.locator(`.card[data-session="${id}"] .conn`);
      await p.locator('.card[data-session="bad id!"][data-stream="refused"]').waitFor({ timeout: WAIT_MS });
      await p.locator('.card[data-session="no-such-session"][data-stream="refused"]').waitFor({ timeout: WAIT_MS });
      expect(await conn('bad id!').innerText()).toMatch(/not a valid session id/);
      expect(await conn('no-such-session').innerText()).toMatch(/no such session/);
      await eventually(async () => /^0 sessions/.test(await p.locator('#summary').innerText()), WAIT_MS, 'the header to count no session');
      expect(await p.locator('#summary').innerText()).not.toMatch(/connecting/);
      await shot(p, 'ids-1440');
    } finally {
      await bridge.close();
      await up.close();
    }
  });
});
