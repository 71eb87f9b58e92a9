/**
 * What the dashboard costs the browser under load: nine cards of sessions that emit an event (with a 20 KB screenshot)
 * every 40 ms, in headless Chromium (/usr/bin/chromium), for 15 s after a 5 s warm-up. Prints Chromium's own counters
 * for the window (layouts, and seconds of layout, style, script and all tasks) and the log lines shown.
 *
 *   node scripts/dashboard-layout.ts
 */
import { chromium } from 'playwright-core';
import { loadConfig } from '../src/config.ts';
import { silentLogger } from '../src/log.ts';
import { startPollcast } from '../src/server.ts';
import { createSimulator } from '../src/simulator/index.ts';

const sim = await createSimulator({ api: 'real' });
for (let i = 0; i < 9; i++) sim.createSession(`fast-${i}`, { initialEvents: 5, imageBytes: 20_000, emitEveryMs: 40, emitCount: 100_000 });
const server = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: sim.url, AUTH: 'none', SESSION_LIST_POLL_SECONDS: '1' }), { log: silentLogger(), processMetrics: false });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium' });
const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
await page.goto(`${server.url}/`);
await page.locator('#conn[data-state="live"]').waitFor({ timeout: 15_000 });
await new Promise((r) => setTimeout(r, 5000));
const cdp = await page.context().newCDPSession(page);
await cdp.send('Performance.enable');
const read = async () => Object.fromEntries(((await cdp.send('Performance.getMetrics')) as { metrics: { name: string; value: number }[] }).metrics.map((m) => [m.name, m.value]));
const a = await read();
await new Promise((r) => setTimeout(r, 15_000));
const b = await read();
const d = (k: string) => b[k]! - a[k]!;
console.log(JSON.stringify({ layouts: d('LayoutCount'), layoutS: +d('LayoutDuration').toFixed(3), styleS: +d('RecalcStyleDuration').toFixed(3), scriptS: +d('ScriptDuration').toFixed(3), taskS: +d('TaskDuration').toFixed(3), events: (await page.locator('.card .log li').count()) }));
await browser.close();
await server.close();
await sim.close();
