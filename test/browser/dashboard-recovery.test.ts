/**
 * The dashboard in Chromium when its list is replaced and when one pinned id
 * is bad: after pollcast restarts (the list stream resumes into a new
 * snapshot), a live session that appeared meanwhile gets a card, and no
 * "agent API trouble" is claimed for a card refused on the way; a page opened
 * with one bad id among valid ones follows the valid ones.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { loadConfig, type Config } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { createRun, launchChromium } from '../helpers/browser.ts';
import { eventually, freePort, record } from '../helpers/harness.ts';
import { listOf } from '../helpers/session-list.ts';

const WAIT_MS = 20_000;


describe('dashboard recovery', () => {
  let sim: Simulator;
  let config: Config;
  let server: PollcastServer | undefined;
  let browser: Browser;
  const pageErrors: string[] = [];

  const open = async (url: string): Promise<Page> => {
    const p = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    p.on('pageerror', (err) => pageErrors.push(err.message));
    await p.goto(url, { timeout: WAIT_MS });
    return p;
  };

  beforeAll(async () => {
    // Runs that stay live for the whole test.
    sim = await createSimulator({ api: 'real', run: { eventEveryMs: 500, events: 400 } });
    const port = await freePort();
    config = loadConfig({ PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: sim.url, AUTH: 'none', SESSION_LIST_POLL_SECONDS: '1', UPSTREAM_WAIT_SECONDS: '1', SSE_RETRY_MS: '500', SESSION_LIST_GRACE_SECONDS: '1' });
    server = await startPollcast(config, { log: silentLogger(), processMetrics: false });
    browser = await launchChromium();
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await sim?.close();
  });

  it('gives a card to a live session that a new snapshot brings (pollcast restarted meanwhile), and claims no API trouble', async () => {
    const before = [await createRun(sim, 'Find a hotel in Porto'), await createRun(sim, 'Compare two phone plans')];
    const page = await open(`${server!.url}/`);
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT_MS });
    for (const id of before) await page.locator(`.card[data-session="${id}"]`).waitFor({ timeout: WAIT_MS });
    // pollcast goes away; a session starts meanwhile; pollcast comes back on the same address, knowing no list.
    await server!.close();
    server = undefined;
    // Meanwhile the strip's live statuses are marked as the last known, as the cards' are.
    await page.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: WAIT_MS });
    const doubted = () => page.locator(`.chip[data-session="${before[0]}"] .badge-text`).evaluate((e) => getComputedStyle(e, '::after').content);
    await eventually(async () => (await doubted()) === '"?"', WAIT_MS, 'the strip marked as the last known');
    const during = await createRun(sim, 'Book a train to Faro');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    server = await startPollcast(config, { log: silentLogger(), processMetrics: false });
    await page.locator(`.card[data-session="${during}"]`).waitFor({ timeout: WAIT_MS });
    await eventually(async () => (await page.locator(`.card[data-session="${during}"]`).getAttribute('data-stream')) === 'live', WAIT_MS, 'the new card live');
    await eventually(async () => (await page.locator('#conn').getAttribute('data-state')) === 'live', WAIT_MS, 'the pill live again');
    expect(await doubted()).toBe('none');
    expect(await page.locator('#note').isHidden()).toBe(true);
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 60_000);

  it('follows the valid sessions of an address whose other id is bad, and says the bad one is a bad id', async () => {
    const live = await createRun(sim, 'Order groceries for Friday');
    const page = await open(`${server!.url}/?session=${live}&session=nope!`);
    await eventually(async () => (await page.locator(`.card[data-session="${live}"]`).getAttribute('data-stream')) === 'live', WAIT_MS, 'the valid card live');
    await eventually(async () => (await page.locator('.card[data-session="nope!"]').getAttribute('data-refusal')) === 'bad-id', WAIT_MS, 'the bad id said');
    expect(await page.locator(`.card[data-session="${live}"]`).getAttribute('data-refusal')).toBeNull();
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 60_000);

  it('says so when a tab\'s cards wait for a connection (HTTP/1.1: six per server, shared by the tabs), rather than "live"', async () => {
    const started: string[] = [];
    for (const m of ['Plan a weekend in Braga', 'Track a parcel', 'Renew a library card']) started.push(await createRun(sim, m));
    // The premise is two connections a tab, which holds only if each tab's first snapshot lists every live session: a
    // session that reached the shared list after a tab's snapshot (the list of the previous test, polled each second,
    // still in its grace) comes as an upsert and gets a second card stream, a third connection, and tab 3 waits for
    // its cards (CI, 7 Dec 2026). A viewer outside the browser holds the list until it lists all three.
    const lister = record(`${server!.url}/sessions/events`, { events: ['snapshot', 'upsert', 'remove', 'total', 'error'] });
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    try {
      await lister.until((r) => started.every((id) => listOf(r).has(id)), WAIT_MS);
      const tabs: Page[] = [];
      for (let i = 0; i < 3; i++) {
        const tab = await context.newPage();
        tab.on('pageerror', (err) => pageErrors.push(err.message));
        await tab.goto(`${server!.url}/`, { timeout: WAIT_MS });
        tabs.push(tab);
        await eventually(async () => (await tab.locator('.card[data-stream="live"]').count()) >= 2, WAIT_MS, `tab ${i + 1} live`);
      }
      // Two connections a tab (its list, its cards' stream): the six are taken. A session that starts now is put on
      // a new card stream in every tab, which waits for a connection.
      const late = await createRun(sim, 'Find a dentist open on Saturday');
      for (const tab of tabs) {
        await tab.locator(`.card[data-session="${late}"]`).waitFor({ timeout: WAIT_MS });
        await eventually(async () => (await tab.locator('#conn-text').textContent()) === 'waiting for a connection', WAIT_MS, 'the tab says it waits');
        expect(await tab.locator('#note').textContent()).toMatch(/six per server over HTTP\/1\.1/);
      }
    } finally {
      lister.close();
      await context.close();
    }
    expect(pageErrors).toEqual([]);
    // Three tabs and their streams one after another, each step bounded by WAIT_MS: 60 s was too little on a loaded
    // 2-core machine (a full `npm test` beside other servers).
  }, 120_000);
});
