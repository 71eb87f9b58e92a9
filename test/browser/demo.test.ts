/**
 * The demo dashboard in a real Chromium against an in-process pollcast in
 * demo mode: sessions listed, events logged, steps and cost updating live,
 * `end` closing a stream, reconnects shown and resumed without repeats.
 * Leaves a screenshot at test/artifacts/demo.png.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import type { Simulator } from '../../src/simulator/index.ts';
import { range } from '../helpers/harness.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
/** Bound on every wait for the page (ms). */
const WAIT_MS = 15_000;

describe('demo dashboard in Chromium', () => {
  let server: PollcastServer;
  let sim: Simulator;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  const card = (id: string) => page.locator(`.card[data-session="${id}"]`);
  const figure = (id: string, name: string) => card(id).locator(`.figures .${name}`).textContent();
  const logIndices = (id: string) => card(id).locator('.log li').evaluateAll((lis) => lis.map((li) => Number((li as HTMLElement).dataset.index)));
  const waitForCard = (id: string, condition: string) =>
    page.waitForFunction(([sel, cond]) => {
      const c = document.querySelector(sel!) as HTMLElement | null;
      return c !== null && (new Function('card', `return ${cond}`) as (c: HTMLElement) => boolean)(c);
    }, [`.card[data-session="${id}"]`, condition] as const, { timeout: WAIT_MS });

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium is not installed at ${CHROMIUM}: the browser test needs it (Debian: apt-get install chromium; .ci/run installs it)`);
    }
    // A short retry: EventSource reconnects quickly when the test drops the streams.
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SSE_RETRY_MS: '250' });
    server = await startPollcast(config, { log: silentLogger(), processMetrics: false });
    sim = server.simulator!;
    // Driven by the test, so updates happen when the test says and not by the clock.
    sim.createSession('live-1', { initialEvents: 3 });
    sim.createSession('quick-1', { emitEveryMs: 50, emitCount: 10 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
    await page.goto(`${server.url}/`, { timeout: WAIT_MS });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('lists the demo sessions and logs their events, with a live indicator', async () => {
    for (const id of ['demo-1', 'demo-2', 'demo-3', 'live-1', 'quick-1']) await card(id).waitFor({ timeout: WAIT_MS });
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT_MS });
    await waitForCard('demo-1', "card.querySelectorAll('.log li').length >= 2");
    const indices = await logIndices('demo-1');
    expect(indices).toEqual(range(indices.length));
    expect(await card('demo-1').getAttribute('data-stream')).toBe('live');
  });

  it('updates the step and cost figures as status events arrive', async () => {
    await waitForCard('live-1', "card.querySelectorAll('.log li').length === 3 && card.dataset.status === 'running'");
    const steps = await figure('live-1', 'steps');
    const cost = await figure('live-1', 'cost');
    expect(steps).toBe('1');
    sim.appendEvents('live-1', 7); // completes step 1 and starts step 2, with two more model calls
    await waitForCard('live-1', "card.querySelectorAll('.log li').length === 10");
    await waitForCard('live-1', "card.querySelector('.steps').textContent === '2'");
    expect(await figure('live-1', 'cost')).not.toBe(cost);
    expect(Number((await figure('live-1', 'cost'))!.slice(1))).toBeGreaterThan(Number(cost!.slice(1)));
    expect(await figure('live-1', 'count')).toBe('10');
    expect(await logIndices('live-1')).toEqual(range(10));
    expect(await card('live-1').locator('.log li .type').allTextContents()).toEqual(sim.events('live-1').map((e) => e.type));
  });

  it('marks a finished session and shows that end closed its stream', async () => {
    await waitForCard('quick-1', "card.dataset.stream === 'ended'");
    expect(await card('quick-1').getAttribute('data-status')).toBe('completed');
    expect(await card('quick-1').locator('.conn').textContent()).toContain('stream closed by end');
    expect(await logIndices('quick-1')).toEqual(range(sim.eventCount('quick-1')));
    expect(await card('quick-1').locator('.outcome').textContent()).toMatch(/^answer: /);

    sim.finish('live-1', { error: 'tool run_python timed out after 120 s' });
    await waitForCard('live-1', "card.dataset.stream === 'ended' && card.dataset.status === 'failed'");
    expect(await card('live-1').locator('.outcome').textContent()).toBe('error: tool run_python timed out after 120 s');
    // The page closed its EventSource on end: the server holds no stream for these sessions, and none came back.
    expect(server.streams.countFor('quick-1') + server.streams.countFor('live-1')).toBe(0);
    expect(await card('quick-1').getAttribute('data-reconnects')).toBe('0');
  });

  it('shows a dropped connection as reconnecting and resumes with no gap or repeat', async () => {
    const before = (await logIndices('demo-1')).length;
    server.streams.closeAll('shutdown');
    await waitForCard('demo-1', "Number(card.dataset.reconnects) >= 1");
    await waitForCard('demo-1', "card.dataset.stream === 'live'");
    // The demo session keeps emitting (one event every 0.3-1.5 s): the log must go on from where it stopped.
    await waitForCard('demo-1', `card.querySelectorAll('.log li').length >= ${before + 2}`);
    const indices = await logIndices('demo-1');
    expect(indices).toEqual(range(indices.length));
    expect(await card('quick-1').getAttribute('data-reconnects')).toBe('0');
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT_MS });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}demo.png`, fullPage: true });
  });

  it('shows only the sessions named in ?session=', async () => {
    const single = await browser.newPage();
    try {
      await single.goto(`${server.url}/?session=quick-1`, { timeout: WAIT_MS });
      await single.locator('.card[data-session="quick-1"][data-stream="ended"]').waitFor({ timeout: WAIT_MS });
      expect(await single.locator('.card').count()).toBe(1);
    } finally {
      await single.close();
    }
    expect(pageErrors).toEqual([]);
  });
});
