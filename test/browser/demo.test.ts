/**
 * The demo dashboard in a real Chromium against an in-process pollcast in demo
 * mode (the simulator speaks the real API): cards listed with a live
 * indicator, the latest thought, action and screenshot of a session, steps and
 * cost from status events, the badge following running → idle → running →
 * completed, the answer and the error from `end`, reconnects resumed without a
 * repeated line, a finished session replayed from pollcast's cache, the cards
 * on one multiplexed stream and the list (strip and header) from the live
 * session list stream (GET /sessions/events), and 20 live sessions over one
 * connection. Leaves a screenshot at test/artifacts/demo.png.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page, type Request } from 'playwright-core';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import type { Simulator } from '../../src/simulator/index.ts';
import { eventually, range } from '../helpers/harness.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
/** Bound on every wait for the page (ms). */
const WAIT_MS = 10_000;
/** Sessions pinned by the one-connection test. */
const PINNED_SESSIONS = 20;
const BROWSER_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A multiplexed stream the page opened: its sessions and mode, from the EventSource request's URL. */
interface OpenedStream {
  sessions: string[];
  overview: boolean;
}
/** Records the page's EventSource requests; the session list (`/sessions/events`) and a single-session stream are recorded as such. */
function recordStreams(p: Page): Array<OpenedStream | { single: string } | { list: string }> {
  const opened: Array<OpenedStream | { single: string } | { list: string }> = [];
  p.on('request', (r: Request) => {
    if (r.resourceType() !== 'eventsource') return;
    const url = new URL(r.url());
    if (url.pathname === '/sessions/events') return void opened.push({ list: url.search });
    if (url.pathname !== '/events') return void opened.push({ single: url.pathname });
    const sessions = [...url.searchParams.getAll('session'), ...url.searchParams.getAll('sessions').flatMap((s) => s.split(','))];
    opened.push({ sessions, overview: url.searchParams.get('mode') === 'overview' });
  });
  return opened;
}

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
  let opened: ReturnType<typeof recordStreams>;
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
  /**
   * Waits until `condition(card, arg)` holds for the card of `id`. The condition runs in the page as Playwright runs
   * an evaluated function (not eval: the page's Content-Security-Policy refuses `new Function`).
   */
  const waitForCard = <A,>(id: string, condition: (card: HTMLElement, arg: A) => boolean, arg?: A, p = page) =>
    eventually(async () => (await card(id, p).count()) > 0 && (await card(id, p).first().evaluate(condition as never, arg as never)), WAIT_MS, `the card of ${id}`);
  /** Waits until the card's screenshot is the one of event `index`, decoded. */
  const waitForShot = (id: string, index: number, p = page) =>
    waitForCard(id, (c, i) => {
      const img = c.querySelector('.viewport img') as HTMLImageElement;
      return (c.querySelector('.viewport') as HTMLElement).dataset.index === String(i) && img.complete && img.naturalWidth > 0;
    }, index, p);
  const logLines = (c: HTMLElement, n: number) => c.querySelectorAll('.log li').length === n;
  const waitForAllEvents = (id: string, p = page) => waitForCard(id, logLines, sim.eventCount(id), p);

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
    browser = await chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS });
    page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
    watchErrors(page);
    opened = recordStreams(page);
    // Every status each card shows, in order, recorded by the page's own DOM changes (cards only, not the strip).
    await page.addInitScript(() => {
      const trail: Record<string, string[]> = ((window as any).statusTrail = {});
      new MutationObserver((records) => {
        for (const r of records) {
          if (!(r.target as HTMLElement).classList.contains('card')) continue;
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
    // Started without UPSTREAM_URL: the page says its sessions are simulated.
    expect(await page.locator('#demo').isVisible()).toBe(true);
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
    await waitForCard('done-1', (c) => c.dataset.stream === 'ended' && c.dataset.status === 'completed');
    await waitForAllEvents('done-1');
    expect(await text('done-1', '.outcome .answer')).toBe(lastOfKind(sim.events('done-1'), 'answer_event').data.answer);
    await waitForShot('done-1', lastOfKind(sim.events('done-1'), 'observation_event').index);

    // The six cards came on ONE multiplexed stream, the list on ONE list stream; no per-session stream, no overview stream.
    const cards = ['demo-1', 'demo-2', 'demo-3', 'live-1', 'fail-1', 'done-1'];
    expect(opened.filter((o) => 'single' in o)).toEqual([]);
    expect(opened.filter((o) => 'sessions' in o && !o.overview).map((o) => (o as OpenedStream).sessions.sort())).toEqual([cards.sort()]);
    expect(opened.filter((o) => 'sessions' in o && o.overview)).toEqual([]);
    expect(opened.filter((o) => 'list' in o)).toEqual([{ list: '' }]);
    expect(await page.locator('#conn').getAttribute('data-streams')).toBe('2');
    // The cards in the strip's order; a live view link only to a host that exists (the simulator's do not).
    const cardOrder = await page.locator('.card').evaluateAll((cs) => cs.map((c) => (c as HTMLElement).dataset.session));
    const chipOrder = await page.locator('.chip').evaluateAll((cs) => cs.map((c) => (c as HTMLElement).dataset.session));
    expect(cardOrder).toEqual(chipOrder.filter((id) => cardOrder.includes(id)));
    expect(await page.locator('.card .liveview:visible').count()).toBe(0);
    // No implementation words in the page a person reads.
    const words = await page.locator('body').innerText();
    for (const jargon of [/overview stream/i, /card stream/i, /long-poll/i, /\/events\?sessions/]) expect(words).not.toMatch(jargon);
  });

  it('lists every session in the strip and counts them in the header, live from the list stream alone', async () => {
    sim.createSession('ov-1', { initialEvents: 8, imageBytes: 2_000 });
    // More finished sessions than cards: the oldest of them are only in the strip.
    for (const i of range(4)) sim.createSession(`old-${i}`, { initialEvents: 6, finished: true });
    const ov = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
    const ovOpened = recordStreams(ov);
    const chip = (id: string) => ov.locator(`.chip[data-session="${id}"]`);
    const row = (id: string) => sim.listSessions().find((s) => s.id === id)!;
    try {
      // The cards' stream gets an empty answer and waits ten minutes to retry: all the strip and the header
      // show here comes from the list stream (the simulator's GET /sessions, polled by pollcast).
      await ov.route((url) => url.pathname === '/events', (route) =>
        route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: 'retry: 600000\n\n' }));
      await ov.goto(`${server.url}/`, { timeout: WAIT_MS });
      await eventually(async () => (await chip('ov-1').getAttribute('data-status')) === row('ov-1').status, WAIT_MS, "ov-1's chip");
      expect(await card('ov-1', ov).locator('.log li').count()).toBe(0);
      // Every session the upstream lists has its chip (not only the cards on screen), with its status.
      await eventually(async () => {
        const rows = sim.listSessions();
        if ((await ov.locator('.chip').count()) !== rows.length) return false;
        for (const r of rows) if ((await chip(r.id).getAttribute('data-status')) !== r.status) return false;
        return true;
      }, WAIT_MS, 'a chip per listed session');
      // At most MAX_CARDS (9) cards; the sessions without one are in the strip only. (Which ones have cards depends
      // on what the shared list poll had seen when the page opened: sessions created since come as upserts.)
      const cardCount = await ov.locator('.card').count();
      expect(cardCount).toBeLessThanOrEqual(9);
      expect(await ov.locator('.chip:not(.on-screen)').count()).toBe(sim.listSessions().length - cardCount);

      sim.setStatus('ov-1', { status: 'idle' });
      await eventually(async () => (await chip('ov-1').getAttribute('data-status')) === 'idle', WAIT_MS, 'ov-1 idle');
      sim.finish('ov-1', { error: 'stopped by the test' });
      await eventually(async () => (await chip('ov-1').getAttribute('data-status')) === 'failed', WAIT_MS, 'ov-1 failed');

      // The header counts every chip: sessions and each status.
      await eventually(async () => {
        const chips = await ov.locator('.chip').evaluateAll((cs) => cs.map((c) => (c as HTMLElement).dataset.status!));
        const header = await ov.locator('#summary').evaluate((s) => [...s.children].map((c) => c.textContent!.trim()));
        const byStatus = new Map<string, number>();
        for (const c of chips) byStatus.set(c, (byStatus.get(c) ?? 0) + 1);
        return header[0] === `${chips.length} sessions` && [...byStatus].every(([st, n]) => header.includes(`${n} ${st.replaceAll('_', ' ')}`));
      }, WAIT_MS, 'the header to count the chips');
      // A chip opens its session on a card.
      await chip('old-0').click();
      await card('old-0', ov).waitFor({ timeout: WAIT_MS });
      // The status filter maps to the list stream's query, and the strip follows it.
      await ov.locator('#filter-status').selectOption('failed');
      await eventually(async () => {
        const statuses = await ov.locator('.chip').evaluateAll((cs) => cs.map((c) => (c as HTMLElement).dataset.status));
        return statuses.length > 0 && statuses.every((st) => st === 'failed');
      }, WAIT_MS, 'the strip to show failed sessions only');
      expect(ovOpened.filter((o) => 'list' in o).map((o) => (o as { list: string }).list)).toEqual(['', '?status=failed']);
      expect(new URL(ov.url()).searchParams.getAll('status')).toEqual(['failed']);
    } finally {
      await ov.close();
    }
  });

  it('updates steps and cost from status events, and the thought and screenshot to the latest step', async () => {
    const before = { steps: await text('live-1', '.steps'), cost: await text('live-1', '.cost') };
    expect(before.steps).toBe('1');
    sim.appendEvents('live-1', 12); // two more steps and the start of a third
    await waitForAllEvents('live-1');
    const row = sim.listSessions().find((s) => s.id === 'live-1')!;
    expect(row.steps).toBeGreaterThanOrEqual(3);
    await waitForCard('live-1', (c, [steps, cost]) => c.querySelector('.steps')!.textContent === steps && c.querySelector('.cost')!.textContent === cost, [String(row.steps), money(row.total_cost)]);
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
    await waitForCard('fail-1', (c) => c.dataset.stream === 'ended' && c.dataset.status === 'failed');
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
    await waitForCard('live-1', (c) => Number(c.dataset.reconnects) >= 1);
    await waitForCard('live-1', (c) => c.dataset.stream === 'live');
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
    await waitForCard('live-1', (c) => c.dataset.status === 'idle');
    expect(await text('live-1', '.badge')).toBe('idle');
    expect(await card('live-1').getAttribute('data-stream')).toBe('live');
    // The artifact: running, idle, completed and failed cards side by side.
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}demo.png`, fullPage: true });

    sim.setStatus('live-1', { status: 'running' });
    await waitForCard('live-1', (c) => c.dataset.status === 'running');
    sim.finish('live-1', { closingEvents: true });
    await waitForCard('live-1', (c) => c.dataset.stream === 'ended' && c.dataset.status === 'completed');
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
      await waitForCard('done-1', (c, n) => c.dataset.stream === 'ended' && c.querySelectorAll('.log li').length === n, events.length, single);
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
    // As the multiplexed stream frames them: `session` in every JSON, a cursor (any text here) as the id.
    const frame = (data: unknown, event?: string, id?: number) => `${event ? `event: ${event}\n` : ''}${id === undefined ? '' : `id: cursor-${id}\n`}data: ${JSON.stringify(data)}\n\n`;
    const session = 'odd-1';
    const body = [
      'retry: 60000\n\n',
      frame({ session, status: 'running', started_at: 'garbage', metrics: null }, 'status'),
      ...events.map((e, i) => frame({ session, ...(e as object) }, undefined, i)),
      frame('not an object', 'status'),
      frame(null),
      frame({ session: 'someone-else', index: 99, type: 'AgentEvent' }),
      frame({ session, status: 'completed', finished_at: null, error: null, answer: { flights: [{ code: 'TP 1254', price: 89 }] }, metrics: { steps: 'three' }, last_index: events.length - 1 }, 'end'),
    ].join('');
    const odd = await browser.newPage();
    watchErrors(odd);
    try {
      await odd.route((url) => url.pathname === '/events' && url.searchParams.get('sessions') === 'odd-1', (route) => route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body }));
      await odd.goto(`${server.url}/?session=odd-1`, { timeout: WAIT_MS });
      await waitForCard('odd-1', (c, n) => c.dataset.stream === 'ended' && c.querySelectorAll('.log li').length === n, events.length, odd);
      expect(await logIndices('odd-1', odd)).toEqual(range(events.length));
      expect(await card('odd-1', odd).getAttribute('data-status')).toBe('completed');
      expect(await text('odd-1', '.thought', odd)).toBe('An OpenAI-style call');
      expect(await text('odd-1', '.action .tool', odd)).toBe('goto');
      expect(await text('odd-1', '.action .args', odd)).toBe('https://example.org/');
      expect(await text('odd-1', '.bar .url', odd)).toBe('example.org/');
      expect(JSON.parse((await text('odd-1', '.outcome .answer', odd))!)).toEqual({ flights: [{ code: 'TP 1254', price: 89 }] });
      expect(await card('odd-1', odd).locator('.liveview').isHidden()).toBe(true); // never a javascript: link
      await waitForCard('odd-1', (c) => c.querySelector('.placeholder')!.textContent === 'this screenshot could not be decoded', undefined, odd);
    } finally {
      await odd.close();
    }
  });

  it('opens one more stream for sessions that start later, and past two card streams joins a batch to the one that replays least', async () => {
    const own = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SSE_RETRY_MS: '250', UPSTREAM_WAIT_SECONDS: '1' }), { log: silentLogger(), processMetrics: false });
    const osim = own.simulator!;
    const p = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
    watchErrors(p);
    const pOpened = recordStreams(p);
    try {
      await p.goto(`${own.url}/`, { timeout: WAIT_MS });
      /** The header's stream count (the page draws it on the next animation frame). */
      const shownStreams = async () => (await p.evaluate(() => new Promise((r) => requestAnimationFrame(r))), Number(await p.locator('#conn').getAttribute('data-streams')));
      const cardHas = (id: string, n: number) => async () => (await p.locator(`.card[data-session="${id}"][data-stream="live"]`).count()) === 1 && (await logIndices(id, p)).length === n;
      // A session created upstream reaches the page with the next list poll (an upsert), which gives it a card.
      const refreshWith = async (id: string, n: number) => {
        osim.createSession(id, { initialEvents: n, imageBytes: 1_000 });
        await eventually(cardHas(id, n), WAIT_MS, `${id}'s card`);
      };
      await eventually(async () => (await shownStreams()) === 2 && (await p.locator('.card[data-stream="live"]').count()) === 3, WAIT_MS, 'the demo cards and the list');
      // The demo sessions' stream is made the costlier to send again (the demo adds events on its own clock too).
      osim.appendEvents('demo-1', 30);
      await eventually(async () => (await logIndices('demo-1', p)).length >= 30, WAIT_MS, "demo-1's events");

      // A session that starts later: one more stream, nothing sent twice.
      await refreshWith('b-1', 6);
      expect(await shownStreams()).toBe(3);
      // Two card streams are open (MAX_HTTP1_CARD_STREAMS): the next batch joins the one with the least history, b-1's.
      await refreshWith('b-2', 3);
      expect(await shownStreams()).toBe(3);
      const cardStreams = () => pOpened.filter((o) => 'sessions' in o && !o.overview).map((o) => (o as OpenedStream).sessions);
      expect(cardStreams().slice(1)).toEqual([['b-1'], ['b-1', 'b-2']]);
      // The replaced stream is gone: b-1 is read by the new card stream, nothing else (the list stream reads no session).
      await eventually(() => own.streams.size === 3 && own.streams.countFor('b-1') === 1 && own.streams.countFor('b-2') === 1, WAIT_MS, 'the replaced stream to close');
      await refreshWith('b-3', 2);
      expect(cardStreams().slice(1)).toEqual([['b-1'], ['b-1', 'b-2'], ['b-1', 'b-2', 'b-3']]);
      expect(await shownStreams()).toBe(3);

      // b-1's history came again twice and was skipped: each card shows each index once, also what comes next.
      osim.appendEvents('b-1', 2);
      osim.appendEvents('b-3', 2);
      await eventually(async () => (await cardHas('b-1', 8)()) && (await cardHas('b-3', 4)()), WAIT_MS, 'the new events');
      expect(await logIndices('b-1', p)).toEqual(range(8));
      expect(await logIndices('b-2', p)).toEqual(range(3));
      expect(await logIndices('b-3', p)).toEqual(range(4));
      for (const id of ['b-1', 'b-2', 'b-3']) expect(await card(id, p).getAttribute('data-duplicates'), id).toBe('0');
      // A stream ends by itself once its sessions have.
      for (const id of ['b-1', 'b-2', 'b-3']) osim.finish(id);
      await eventually(async () => (await shownStreams()) === 2, WAIT_MS, 'the batch stream to end');
      // One list stream all along: new sessions came as its upserts, not as new list requests.
      expect(pOpened.filter((o) => 'list' in o)).toHaveLength(1);
    } finally {
      await p.close();
      await own.close();
    }
  });

  it(`shows ${PINNED_SESSIONS} live sessions over one connection`, async () => {
    // A pollcast of its own, so that every TCP connection it counts is this page's; the page's own files are
    // served by interception, so the only requests that reach it are the page's streams.
    const own = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SSE_RETRY_MS: '250', UPSTREAM_WAIT_SECONDS: '1' }), { log: silentLogger(), processMetrics: false });
    const ids = range(PINNED_SESSIONS).map((i) => `pin-${i}`);
    for (const id of ids) own.simulator!.createSession(id, { initialEvents: 8, imageBytes: 2_000 });
    const files: Record<string, [string, string]> = { '/': ['index.html', 'text/html'], '/dashboard.js': ['dashboard.js', 'text/javascript'], '/pollcast-client.js': ['pollcast-client.js', 'text/javascript'] };
    const many = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
    watchErrors(many);
    const manyOpened = recordStreams(many);
    // What Chromium itself says of the page's traffic: each request's connection, and the frames each EventSource got.
    const cdp = await many.context().newCDPSession(many);
    const connectionOf = new Map<string, number>(); // requestId → connectionId
    const frames: Array<{ requestId: string; eventName: string; data: string }> = [];
    // Answers from pollcast that came over a connection (the intercepted files and data: images have connectionId 0).
    cdp.on('Network.responseReceived', (e) => {
      if (e.response.url.startsWith(own.url) && e.response.connectionId !== 0) connectionOf.set(e.requestId, e.response.connectionId);
    });
    cdp.on('Network.eventSourceMessageReceived', (e) => void frames.push(e));
    await cdp.send('Network.enable');
    try {
      await many.route((url) => url.origin === own.url && url.pathname in files, (route) => {
        const [file, type] = files[new URL(route.request().url()).pathname]!;
        return route.fulfill({ status: 200, contentType: type, body: readFileSync(new URL(`../../public/${file}`, import.meta.url)) });
      });
      await many.goto(`${own.url}/?${ids.map((id) => `session=${id}`).join('&')}`, { timeout: WAIT_MS });
      const allCards = (n: number) => many.waitForFunction(([count, each]) => {
        const cards = [...document.querySelectorAll('.card')];
        return cards.length === count && cards.every((c) => (c as HTMLElement).dataset.stream === 'live' && c.querySelectorAll('.log li').length === each);
      }, [ids.length, n] as const, { timeout: WAIT_MS });
      await allCards(8);
      for (const id of ids) own.simulator!.appendEvents(id, 4);
      await allCards(12);

      // One stream in the page, for all twenty sessions, in events mode; no per-session stream, no list (the address chose).
      expect(manyOpened).toEqual([{ sessions: ids, overview: false }]);
      expect(await many.locator('#conn').getAttribute('data-streams')).toBe('1');
      // Chromium: every frame of the twenty sessions came on one EventSource request, and it is the only
      // answer from pollcast that used a connection.
      const requests = [...new Set(frames.map((f) => f.requestId))];
      expect(requests).toHaveLength(1);
      expect([...connectionOf.keys()]).toEqual(requests);
      const indices = new Map<string, number[]>();
      for (const f of frames.filter((f) => f.eventName === 'message')) {
        const e = JSON.parse(f.data) as { session: string; index: number };
        indices.set(e.session, [...(indices.get(e.session) ?? []), e.index]);
      }
      for (const id of ids) expect(indices.get(id), id).toEqual(range(12));
      // pollcast: one TCP connection from the page, one stream, which reads each of the twenty sessions.
      expect(await own.connections()).toBe(1);
      expect(own.streams.size).toBe(1);
      for (const id of ids) expect(own.streams.countFor(id), id).toBe(1);
      // Every card got its own events, once each, and its figures.
      for (const id of ids) {
        expect(await logIndices(id, many), id).toEqual(range(12));
        expect(await card(id, many).getAttribute('data-duplicates'), id).toBe('0');
        expect(await text(id, '.count', many), id).toBe('12');
      }
      expect(await many.locator('.chip').count()).toBe(ids.length);

      // The stream ends by itself once every session has.
      for (const id of ids) own.simulator!.finish(id);
      await many.waitForFunction((n) => document.querySelectorAll('.card[data-stream="ended"]').length === n, ids.length, { timeout: WAIT_MS });
      await eventually(() => own.streams.size === 0, WAIT_MS, 'the stream to end');
      expect(await many.locator('#conn').getAttribute('data-streams')).toBe('0');
    } finally {
      await many.close();
      await own.close();
    }
    expect(pageErrors).toEqual([]);
  });
});
