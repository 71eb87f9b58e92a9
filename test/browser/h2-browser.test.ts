/**
 * Real Chromium, the browser client module, and the connection limit: a page
 * behind a TLS-terminating HTTP/2 proxy (self-signed certificate made by the
 * openssl CLI; the proxy speaks h2c to pollcast) opens ten single-session
 * streams and one connectMany() stream of ten sessions. Over HTTP/2 all
 * eleven are open at once on one connection and every event arrives; with
 * HTTP/2 disabled in the browser the same page gets no more than six at a
 * time (the HTTP/1.1 per-origin limit the issue is about).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { eventually, range, startBridge, type Bridge } from '../helpers/harness.ts';
import { selfSignedCert, startTlsProxy, type TlsProxy } from '../helpers/tls-proxy.ts';

const CHROMIUM = '/usr/bin/chromium';
/** Bound on every wait for the page (ms). */
const WAIT_MS = 15_000;
const IDS = range(10).map((i) => `br-${i}`);

/** The test page: ten connect() streams and one connectMany() stream, results on window.results. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>h2</title><script type="module">
import { connect, connectMany } from '/pollcast-client.js';
const ids = ${JSON.stringify(IDS)};
const results = (window.results = { singles: {}, many: {}, ends: 0, done: 0, errors: 0 });
for (const id of ids) {
  results.singles[id] = [];
  connect('', id, { onEvent: (e) => results.singles[id].push(e.index), onStatus() {}, onEnd: () => results.ends++, onError: () => results.errors++ });
}
connectMany('', ids, { onEvent: (e) => (results.many[e.session] ??= []).push(e.index), onDone: () => results.done++, onError: () => results.errors++ });
</script>`;

describe.skipIf(!existsSync(CHROMIUM) || selfSignedCert() === null)('Chromium over HTTP/2 through a TLS proxy', () => {
  let bridge: Bridge;
  let proxy: TlsProxy;
  beforeAll(async () => {
    bridge = await startBridge({ H2C: 'true', MAX_STREAMS_PER_IP: '0' });
    proxy = await startTlsProxy(bridge.url, { backend: 'h2c', pages: { '/__test/h2.html': { type: 'text/html; charset=utf-8', body: PAGE } } });
  }, 30_000);
  afterAll(async () => {
    await proxy?.close();
    await bridge?.close();
  });

  async function openPage(http2: boolean): Promise<{ browser: Browser; peak: () => number; stop: () => void; evaluate: <T>(fn: () => T) => Promise<T> }> {
    const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--ignore-certificate-errors'];
    if (!http2) args.push('--disable-http2');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args });
    const page = await browser.newPage();
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, bridge.server.streams.size)), 5);
    await page.goto(`${proxy.url}/__test/h2.html`, { timeout: WAIT_MS });
    return { browser, peak: () => peak, stop: () => clearInterval(sampler), evaluate: (fn) => page.evaluate(fn) };
  }

  it('over HTTP/1.1 the page is held to six streams at once', async () => {
    for (const id of IDS) bridge.sim.createSession(id, { initialEvents: 2 });
    const b = await openPage(false);
    try {
      await eventually(() => b.peak() >= 6, WAIT_MS, 'six streams');
      // Give the other five every chance to open: they cannot, the six connections are taken.
      await new Promise((r) => setTimeout(r, 1500));
      expect(b.peak()).toBe(6);
      expect(proxy.requests.some((r) => r.httpVersion === '1.1')).toBe(true);
    } finally {
      b.stop();
      await b.browser.close();
    }
    await eventually(() => bridge.server.streams.size === 0, WAIT_MS, 'the streams to close with the browser');
  });

  it('over HTTP/2 all eleven streams are open at once, on one connection, and every event arrives', async () => {
    proxy.requests.length = 0;
    const b = await openPage(true);
    try {
      await eventually(() => b.peak() === 11, WAIT_MS, 'eleven streams at once');
      expect(proxy.requests.every((r) => r.httpVersion === '2.0')).toBe(true);
      expect(proxy.clientConnections()).toBeGreaterThanOrEqual(1);
      // The proxy carries them all to pollcast on one h2c connection.
      expect(bridge.server.h2c!.sessions).toBe(1);
      expect(await bridge.server.connections()).toBe(1);
      for (const id of IDS) bridge.sim.appendEvents(id, 3);
      for (const id of IDS) bridge.sim.finish(id);
      await eventually(async () => (await b.evaluate(() => (window as unknown as { results: { ends: number; done: number } }).results)).done === 1, WAIT_MS, 'the page to see every end');
      const results = await b.evaluate(() => (window as unknown as { results: { singles: Record<string, number[]>; many: Record<string, number[]>; ends: number; errors: number } }).results);
      expect(results.errors).toBe(0);
      expect(results.ends).toBe(10);
      for (const id of IDS) {
        expect(results.singles[id]).toEqual(range(5));
        expect(results.many[id]).toEqual(range(5));
      }
    } finally {
      b.stop();
      await b.browser.close();
    }
  });
});
