/** What the dashboard tests share: Debian's Chromium, launched headless, and a run created on the real-API simulator. */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { expect } from 'vitest';
import type { Simulator } from '../../src/simulator/index.ts';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';

export const CHROMIUM = '/usr/bin/chromium';
export const BROWSER_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Launches Debian's Chromium headless; a missing one fails the test (it is not skipped). */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not installed at ${CHROMIUM}`);
  return chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS });
}

/** Starts a run on the real-API simulator as a client would (POST /sessions); returns its id. */
export async function createRun(sim: Simulator, message: string): Promise<string> {
  const res = await fetch(`${sim.url}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'web-agent', messages: message }) });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

/** A pollcast bridging `sim` (the dashboard's own deployment: AUTH=none, a 1 s list poll and long-poll) and a Chromium. */
export interface DashboardRig {
  server: PollcastServer;
  browser: Browser;
  /** Closes the browser, pollcast and the simulator. */
  close(): Promise<void>;
}

export async function startDashboardRig(sim: Simulator, env: Record<string, string> = {}): Promise<DashboardRig> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: sim.url, AUTH: 'none', SESSION_LIST_POLL_SECONDS: '1', UPSTREAM_WAIT_SECONDS: '1', ...env });
  const server = await startPollcast(config, { log: silentLogger(), processMetrics: false });
  const browser = await launchChromium();
  return {
    server,
    browser,
    async close() {
      await browser.close();
      await server.close();
      await sim.close();
    },
  };
}
