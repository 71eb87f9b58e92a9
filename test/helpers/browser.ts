/** What the dashboard tests share: Debian's Chromium, launched headless, and a run created on the real-API simulator. */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { expect } from 'vitest';
import type { Simulator } from '../../src/simulator/index.ts';

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
