/**
 * The dashboard in Chromium, faults a dashboard audit found (7 Dec 2026): a finished card that gave way and is
 * opened again from the strip fills and stays; the list's trouble clears when pollcast comes back on a healthy list
 * (and while pollcast is away the page says so, not that the agent API fails); a session deleted upstream is said
 * on its card, not as trouble of the agent API.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { launchChromium } from '../helpers/browser.ts';
import { eventually, freePort } from '../helpers/harness.ts';

const WAIT_MS = 15_000;

describe('dashboard cards and banners', () => {
  let sim: Simulator | undefined;
  let server: PollcastServer | undefined;
  let browser: Browser | undefined;
  const pageErrors: string[] = [];

  const start = async (port = 0) => {
    const config = loadConfig({ PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: sim!.url, AUTH: 'none', SESSION_LIST_POLL_SECONDS: '1', UPSTREAM_WAIT_SECONDS: '1', SSE_RETRY_MS: '500' });
    server = await startPollcast(config, { log: silentLogger(), processMetrics: false });
    return server;
  };
  const open = async (url: string): Promise<Page> => {
    browser ??= await launchChromium();
    const p = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    p.on('pageerror', (err) => pageErrors.push(err.message));
    await p.goto(url, { timeout: WAIT_MS });
    return p;
  };
  const cardAttr = (p: Page, id: string, name: string) => p.locator(`.card[data-session="${id}"]`).getAttribute(name, { timeout: 1000 }).catch(() => null);
  const pill = (p: Page) => p.locator('#conn').getAttribute('data-state');
  const banner = async (p: Page) => ((await p.locator('#note').isHidden()) ? '' : ((await p.locator('#note').textContent()) ?? ''));

  afterEach(async () => {
    await browser?.close();
    await server?.close();
    await sim?.close();
    browser = server = sim = undefined;
    expect(pageErrors.splice(0)).toEqual([]);
  });

  it('a finished card that gave way, opened again from the strip, shows every event of its session and stays', async () => {
    sim = await createSimulator({ api: 'real' });
    // Nine live cards fill the page (MAX_CARDS); the first to finish gives way to a session that starts after it.
    for (let i = 1; i <= 9; i++) sim.createSession(`s-${i}`, { initialEvents: 3, imageBytes: 0, emitEveryMs: 60_000 });
    await start();
    const page = await open(`${server!.url}/`);
    await eventually(async () => (await page.locator('.card[data-stream="live"]').count()) === 9, WAIT_MS, 'nine live cards');
    sim.finish('s-1', { closingEvents: true });
    await eventually(async () => (await cardAttr(page, 's-1', 'data-stream')) === 'ended', WAIT_MS, 's-1 ended');
    sim.createSession('n-1', { initialEvents: 3, imageBytes: 0, emitEveryMs: 60_000 });
    await eventually(async () => (await cardAttr(page, 'n-1', 'data-stream')) === 'live', WAIT_MS, 'a card for n-1');
    await eventually(async () => (await page.locator('.card[data-session="s-1"]').count()) === 0, WAIT_MS, 's-1 giving way');
    // Opened again: until 7 Dec 2026 it stayed "connecting" with nothing, its stream taking it for one it had.
    await page.click('.chip[data-session="s-1"]');
    const events = sim.events('s-1').length;
    await eventually(async () => (await page.locator('.card[data-session="s-1"] .log li').count()) === events, WAIT_MS, `s-1's ${events} events`);
    await eventually(async () => (await cardAttr(page, 's-1', 'data-stream')) === 'ended', WAIT_MS, 's-1 ended again');
    // Its end does not make it give way at once (it was the oldest finished card).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await page.locator('.card[data-session="s-1"]').count()).toBe(1);
    expect(await cardAttr(page, 's-1', 'data-duplicates')).toBe('0');
  }, 60_000);

  it('the list\'s trouble clears when pollcast comes back on a healthy list; while pollcast is away the page says so', async () => {
    sim = await createSimulator({ api: 'real' });
    sim.createSession('a-1', { initialEvents: 3, imageBytes: 0, emitEveryMs: 60_000 });
    const port = await freePort();
    await start(port);
    const page = await open(`${server!.url}/`);
    await eventually(async () => (await pill(page)) === 'live', WAIT_MS, 'the pill live');
    sim.faults.random({ seed: 1, rate: 1, endpoint: 'list', kinds: [{ kind: 'http', status: 503 }] });
    await eventually(async () => /not answering/.test(await banner(page)), WAIT_MS, 'the list trouble said');
    await server!.close();
    server = undefined;
    // The list's own connection lost: pollcast is what is gone, not (known to be) the agent API.
    await eventually(async () => (await pill(page)) === 'reconnecting', WAIT_MS, 'the pill reconnecting');
    expect(await banner(page)).toMatch(/connection to pollcast was lost/);
    sim.faults.clear();
    await start(port);
    // Until 7 Dec 2026 the banner stood: only a status frame cleared it, and a healthy list sends none.
    await eventually(async () => (await pill(page)) === 'live' && (await banner(page)) === '', WAIT_MS, 'the pill live, no banner');
  }, 60_000);

  it('a list the agent API rate-limits (429) is said as a rate limit, not as an API that does not answer', async () => {
    // Dashboard audit, 7 Dec 2026: "The agent API is not answering (upstream rate limit (429))".
    sim = await createSimulator({ api: 'real' });
    sim.createSession('r-1', { initialEvents: 3, imageBytes: 0, emitEveryMs: 60_000 });
    await start();
    const page = await open(`${server!.url}/`);
    await eventually(async () => (await pill(page)) === 'live', WAIT_MS, 'the pill live');
    sim.faults.random({ seed: 1, rate: 1, endpoint: 'list', kinds: [{ kind: 'rate-limit', retryAfterSeconds: 2 }] });
    await eventually(async () => /slow down \(rate limit, 429\)/.test(await banner(page)), WAIT_MS, 'the rate limit said');
    expect(await banner(page)).not.toMatch(/not answering/);
    expect(await page.locator('#conn-text').innerText()).toBe('agent API rate limit');
    sim.faults.clear();
    await eventually(async () => (await pill(page)) === 'live' && (await banner(page)) === '', WAIT_MS, 'the pill live, no banner');
  }, 60_000);

  it('a session deleted upstream is said on its card; the pill does not claim trouble of the agent API', async () => {
    sim = await createSimulator({ api: 'real' });
    sim.createSession('del-1', { initialEvents: 3, imageBytes: 0, emitEveryMs: 500 });
    sim.createSession('keep-1', { initialEvents: 3, imageBytes: 0, emitEveryMs: 500 });
    await start();
    const page = await open(`${server!.url}/`);
    await eventually(async () => (await cardAttr(page, 'del-1', 'data-stream')) === 'live', WAIT_MS, 'del-1 live');
    sim.deleteSession('del-1');
    await eventually(async () => /no longer finds this session/.test((await page.locator('.card[data-session="del-1"] .conn').textContent()) ?? ''), WAIT_MS, 'the card saying so');
    // Checked for a while: the loop goes on asking (UPSTREAM_GIVE_UP_SECONDS), the pill stays as it was.
    for (let i = 0; i < 6; i++) {
      expect(await pill(page)).toBe('live');
      expect(await banner(page)).toBe('');
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }, 60_000);
});
