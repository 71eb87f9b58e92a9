/**
 * The demo dashboard in a real Chromium against an in-process pollcast in demo
 * mode (the simulator speaks the real API): cards listed with a live
 * indicator, the latest thought, action and screenshot of a session, steps and
 * cost from status events, the badge following running → idle → running →
 * completed, the answer and the error from `end`, reconnects resumed without a
 * repeated line, a finished session replayed from pollcast's cache, and no more
 * streams than HTTP/1.1 can carry. Leaves a screenshot at test/artifacts/demo.png.
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
const WAIT_MS = 10_000;
/** The page's limit of streams at once over HTTP/1.1 (MAX_HTTP1_STREAMS in public/index.html). */
const HTTP1_STREAMS = 5;

type SimEvent = ReturnType<Simulator['events']>[number];
const kindOf = (e: SimEvent) => (e.data as { kind?: string }).kind;
const lastOfKind = (events: SimEvent[], kind: string) => {
  const index = events.findLastIndex((e) => e.type === 'AgentEvent' && kindOf(e) === kind);
  return { index, data: events[index]!.data as Record<string, any> };
};
/** The page's cost format. */
const money = (n: number) => `$${n.toFixed(n >= 10 ? 2 : 4)}`;

describe('demo dashboard in Chromium', () => {
  let server: PollcastServer;
  let sim: Simulator;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  const watchErrors = (p: Page) => {
    p.on('pageerror', (err) => pageErrors.push(err.message));
    p.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
  };
  const card = (id: string, p = page) => p.locator(`.card[data-session="${id}"]`);
  const text = (id: string, selector: string, p = page) => card(id, p).locator(selector).first().textContent();
  const logIndices = (id: string, p = page) => card(id, p).locator('.log li').evaluateAll((lis) => lis.map((li) => Number((li as HTMLElement).dataset.index)));
  /** Waits until `condition` (JS over `card`) holds for the card of `id`. */
  const waitForCard = (id: string, condition: string, p = page) =>
    p.waitForFunction(([sel, cond]) => {
      const c = document.querySelector(sel!) as HTMLElement | null;
      return c !== null && (new Function('card', `return ${cond}`) as (c: HTMLElement) => boolean)(c);
    }, [`.card[data-session="${id}"]`, condition] as const, { timeout: WAIT_MS });
  /** Waits until the card's screenshot is the one of event `index`, decoded. */
  const waitForShot = (id: string, index: number, p = page) =>
    waitForCard(id, `card.querySelector('.viewport').dataset.index === '${index}' && card.querySelector('.viewport img').complete && card.querySelector('.viewport img').naturalWidth > 0`, p);
  const waitForAllEvents = (id: string, p = page) => waitForCard(id, `card.querySelectorAll('.log li').length === ${sim.eventCount(id)}`, p);

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium is not installed at ${CHROMIUM}: the browser test needs it (Debian: apt-get install chromium; .ci/run installs it)`);
    }
    // A short retry: EventSource reconnects quickly when the test drops the streams. A 1 s upstream
    // wait: a status change without events (idle, paused) shows once the long-poll comes back.
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SSE_RETRY_MS: '250', UPSTREAM_WAIT_SECONDS: '1' });
    server = await startPollcast(config, { log: silentLogger(), processMetrics: false });
    sim = server.simulator!;
    // Driven by the test, so updates happen when the test says and not by the clock:
    // 8 events = the five start events and step 1 (thought, tool result, screenshot).
    sim.createSession('live-1', { initialEvents: 8, imageBytes: 30_000 });
    sim.createSession('fail-1', { initialEvents: 12 });
    sim.createSession('done-1', { initialEvents: 15 });
    sim.finish('done-1', { closingEvents: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
    watchErrors(page);
    // Every status each card shows, in order, recorded by the page's own DOM changes.
    await page.addInitScript(() => {
      const trail: Record<string, string[]> = ((window as any).statusTrail = {});
      new MutationObserver((records) => {
        for (const r of records) {
          const { session, status } = (r.target as HTMLElement).dataset;
          if (session && status && status !== r.oldValue) (trail[session] ??= []).push(status);
        }
      }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-status'], attributeOldValue: true });
    });
    await page.goto(`${server.url}/`, { timeout: WAIT_MS });
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('lists the sessions with a live indicator, and shows the latest thought, action and screenshot', async () => {
    for (const id of ['demo-1', 'demo-2', 'demo-3', 'live-1', 'fail-1', 'done-1']) await card(id).waitFor({ timeout: WAIT_MS });
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT_MS });
    await waitForAllEvents('live-1');
    expect(await logIndices('live-1')).toEqual(range(8));
    expect(await card('live-1').getAttribute('data-status')).toBe('running');
    expect(await text('live-1', '.badge')).toBe('running');

    const events = sim.events('live-1');
    const policy = lastOfKind(events, 'policy_event').data;
    expect(await text('live-1', '.thought')).toBe(policy.thought);
    expect(await text('live-1', '.action .tool')).toBe(policy.tool_calls[0].name);
    expect(await text('live-1', '.action .result')).toMatch(/^[✓✕] /);
    const shot = lastOfKind(events, 'observation_event');
    await waitForShot('live-1', shot.index);
    expect(await text('live-1', '.bar .url')).toBe(shot.data.url.replace(/^https:\/\//, ''));
    expect(await text('live-1', '.bar .title')).toBe(shot.data.title);

    // A session finished before the page opened: its history, answer and last screenshot.
    await waitForCard('done-1', "card.dataset.stream === 'ended' && card.dataset.status === 'completed'");
    await waitForAllEvents('done-1');
    expect(await text('done-1', '.outcome .answer')).toBe(lastOfKind(sim.events('done-1'), 'answer_event').data.answer);
    await waitForShot('done-1', lastOfKind(sim.events('done-1'), 'observation_event').index);
  });

  it('updates steps and cost from status events, and the thought and screenshot to the latest step', async () => {
    const before = { steps: await text('live-1', '.steps'), cost: await text('live-1', '.cost') };
    expect(before.steps).toBe('1');
    sim.appendEvents('live-1', 12); // two more steps and the start of a third
    await waitForAllEvents('live-1');
    const row = sim.listSessions().find((s) => s.id === 'live-1')!;
    expect(row.steps).toBeGreaterThanOrEqual(3);
    await waitForCard('live-1', `card.querySelector('.steps').textContent === '${row.steps}' && card.querySelector('.cost').textContent === '${money(row.total_cost)}'`);
    expect(Number((await text('live-1', '.cost'))!.slice(1))).toBeGreaterThan(Number(before.cost!.slice(1)));
    expect(await text('live-1', '.count')).toBe(String(sim.eventCount('live-1')));

    const events = sim.events('live-1');
    const policy = lastOfKind(events, 'policy_event').data;
    expect(await text('live-1', '.thought')).toBe(policy.thought);
    expect(await text('live-1', '.mind-head .step')).toBe(`step ${policy.step} · thought`);
    await waitForShot('live-1', lastOfKind(events, 'observation_event').index);
    expect(await logIndices('live-1')).toEqual(range(events.length));
  });

  it('shows a failed session with its error, and gives every status its own colour', async () => {
    sim.finish('fail-1', { error: 'browser crashed while loading the page', closingEvents: true });
    await waitForCard('fail-1', "card.dataset.stream === 'ended' && card.dataset.status === 'failed'");
    expect(await text('fail-1', '.badge')).toBe('failed');
    expect(await text('fail-1', '.outcome .error')).toBe('browser crashed while loading the page');
    expect(await card('fail-1').locator('.outcome .answer').count()).toBe(0);
    expect(await logIndices('fail-1')).toEqual(range(sim.eventCount('fail-1')));
    expect(await card('fail-1').locator('.log li').last().locator('.tag').textContent()).toBe('error');

    const colours = await page.evaluate((statuses) => statuses.map((status) => {
      const badge = Object.assign(document.createElement('span'), { className: 'badge' });
      badge.dataset.status = status;
      document.body.append(badge);
      const colour = getComputedStyle(badge).color;
      badge.remove();
      return colour;
    }), ['pending', 'running', 'idle', 'paused', 'completed', 'failed', 'timed_out', 'interrupted']);
    expect(new Set(colours).size).toBe(8);
  });

  it('shows a dropped connection as reconnecting and resumes with no gap and no repeated line', async () => {
    server.streams.closeAll('shutdown');
    await waitForCard('live-1', 'Number(card.dataset.reconnects) >= 1');
    await waitForCard('live-1', "card.dataset.stream === 'live'");
    sim.appendEvents('live-1', 5);
    await waitForAllEvents('live-1');
    expect(await logIndices('live-1')).toEqual(range(sim.eventCount('live-1')));
    for (const id of ['live-1', 'demo-1', 'demo-2', 'demo-3']) {
      const indices = await logIndices(id);
      expect(indices, id).toEqual(range(indices.length));
      expect(await card(id).getAttribute('data-duplicates'), id).toBe('0');
    }
    // Sessions that had ended before had no stream to lose.
    expect(await card('done-1').getAttribute('data-reconnects')).toBe('0');
    expect(await card('fail-1').getAttribute('data-reconnects')).toBe('0');
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT_MS });
  });

  it('moves the badge running → idle → running → completed and shows the answer on end', async () => {
    sim.setStatus('live-1', { status: 'idle' });
    await waitForCard('live-1', "card.dataset.status === 'idle'");
    expect(await text('live-1', '.badge')).toBe('idle');
    expect(await card('live-1').getAttribute('data-stream')).toBe('live');
    // The artifact: running, idle, completed and failed cards side by side.
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}demo.png`, fullPage: true });

    sim.setStatus('live-1', { status: 'running' });
    await waitForCard('live-1', "card.dataset.status === 'running'");
    sim.finish('live-1', { closingEvents: true });
    await waitForCard('live-1', "card.dataset.stream === 'ended' && card.dataset.status === 'completed'");
    expect(await text('live-1', '.outcome .answer')).toBe(lastOfKind(sim.events('live-1'), 'answer_event').data.answer);
    expect(await logIndices('live-1')).toEqual(range(sim.eventCount('live-1')));
    expect(await page.evaluate(() => (window as any).statusTrail['live-1'])).toEqual(['running', 'idle', 'running', 'completed']);
    // The page closed its EventSources on end, and none came back.
    expect(server.streams.countFor('live-1') + server.streams.countFor('fail-1') + server.streams.countFor('done-1')).toBe(0);
  });

  it('replays a finished session opened by ?session= from the cache, even once the upstream forgot it', async () => {
    const events = sim.events('done-1');
    sim.deleteSession('done-1'); // the upstream now answers 404: only pollcast's cache has it
    const single = await browser.newPage();
    watchErrors(single);
    try {
      await single.goto(`${server.url}/?session=done-1`, { timeout: WAIT_MS });
      await waitForCard('done-1', `card.dataset.stream === 'ended' && card.querySelectorAll('.log li').length === ${events.length}`, single);
      expect(await card('done-1', single).getAttribute('data-status')).toBe('completed');
      expect(await text('done-1', '.outcome .answer', single)).toBe(lastOfKind(events, 'answer_event').data.answer);
      await waitForShot('done-1', lastOfKind(events, 'observation_event').index, single);
      expect(await single.locator('.card').count()).toBe(1);
      expect(await single.locator('#note').isHidden()).toBe(true);
    } finally {
      await single.close();
    }
  });

  it('shows events of unexpected shapes without breaking (open JSON)', async () => {
    // A stream no upstream would send as is, served by interception: every oddity in one session.
    const events: unknown[] = [
      { type: 'AgentEvent', data: null, timestamp: 'not a date' },
      { type: 'AgentEvent', data: { kind: 'policy_event', thought: 42, tool_calls: 'click everything' } },
      { type: 'AgentEvent', data: { kind: 'policy_event', thought: 'An OpenAI-style call', tool_calls: [{ function: { name: 'goto', arguments: '{"url":"https://example.org/"}' } }] } },
      { type: 'AgentEvent', data: { kind: 'observation_event', image: 12345, url: ['x'], title: null } },
      { type: 'AgentEvent', data: { kind: 'observation_event', image: '%%% not base64 %%%' } },
      { type: 'AgentEvent', data: { kind: 'observation_event', image: 'aGVsbG8=', url: 'https://example.org/', title: 'Example' } }, // base64, not an image
      { type: 'SomethingNewEvent', data: { nested: { deep: [1, 2, 3] } } },
      { type: 'LiveViewUrlEvent', data: { url: 'javascript:alert(1)' } },
      { type: 'MetricsUpdateEvent', data: 'just a string' },
      { type: 'AgentEvent', data: { kind: 'tool_result', ok: 'maybe' } },
      { type: 42, data: [1, 2] },
      { type: 'AgentEvent', data: null, omitted: 'too_large' },
    ].map((e, index) => ({ index, timestamp: '2026-05-07T14:30:00Z', ...e }));
    const frame = (data: unknown, event?: string, id?: number) => `${event ? `event: ${event}\n` : ''}${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`;
    const body = [
      'retry: 60000\n\n',
      frame({ status: 'running', started_at: 'garbage', metrics: null }, 'status'),
      ...events.map((e, i) => frame(e, undefined, i)),
      frame('not an object', 'status'),
      frame({ status: 'completed', finished_at: null, error: null, answer: { flights: [{ code: 'TP 1254', price: 89 }] }, metrics: { steps: 'three' }, last_index: events.length - 1 }, 'end'),
    ].join('');
    const odd = await browser.newPage();
    watchErrors(odd);
    try {
      await odd.route('**/sessions/odd-1/events**', (route) => route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body }));
      await odd.goto(`${server.url}/?session=odd-1`, { timeout: WAIT_MS });
      await waitForCard('odd-1', `card.dataset.stream === 'ended' && card.querySelectorAll('.log li').length === ${events.length}`, odd);
      expect(await logIndices('odd-1', odd)).toEqual(range(events.length));
      expect(await card('odd-1', odd).getAttribute('data-status')).toBe('completed');
      expect(await text('odd-1', '.thought', odd)).toBe('An OpenAI-style call');
      expect(await text('odd-1', '.action .tool', odd)).toBe('goto');
      expect(await text('odd-1', '.action .args', odd)).toBe('https://example.org/');
      expect(await text('odd-1', '.bar .url', odd)).toBe('example.org/');
      expect(JSON.parse((await text('odd-1', '.outcome .answer', odd))!)).toEqual({ flights: [{ code: 'TP 1254', price: 89 }] });
      expect(await card('odd-1', odd).locator('.liveview').isHidden()).toBe(true); // never a javascript: link
      await waitForCard('odd-1', "card.querySelector('.placeholder').textContent === 'this screenshot could not be decoded'", odd);
    } finally {
      await odd.close();
    }
  });

  it(`opens at most ${HTTP1_STREAMS} streams over HTTP/1.1; the others wait for one to end`, async () => {
    const ids = range(HTTP1_STREAMS + 2).map((i) => `many-${i}`);
    for (const id of ids) sim.createSession(id, { initialEvents: 6 });
    const many = await browser.newPage();
    watchErrors(many);
    try {
      await many.goto(`${server.url}/?${ids.map((id) => `session=${id}`).join('&')}`, { timeout: WAIT_MS });
      await many.waitForFunction((n) => document.querySelectorAll('.card[data-stream="live"]').length === n, HTTP1_STREAMS, { timeout: WAIT_MS });
      expect(await many.locator('.card[data-stream="waiting"]').count()).toBe(2);
      sim.finish('many-0', { closingEvents: true });
      sim.finish('many-1', { closingEvents: true });
      for (const id of ids.slice(2)) await waitForAllEvents(id, many);
      expect(await many.locator('.card[data-stream="live"]').count()).toBe(HTTP1_STREAMS);
      expect(await many.locator('.card').count()).toBe(ids.length);
    } finally {
      await many.close();
    }
    expect(pageErrors).toEqual([]);
  });
});
