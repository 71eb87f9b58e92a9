/**
 * Durable Streams catch-up answers that re-read history from the upstream
 * (older than the session's buffer): a few at once, a client that stops
 * reading one cut off after BODY_TIMEOUT_SECONDS, its place given to the next.
 * Before 6 Dec 2026 each such answer (up to 32 MiB, about a thousand upstream
 * pages of small events) ran with no limit: ten clients that never read held
 * 961 MB for as long as they stayed (helper audit).
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../helpers/harness.ts';
import { ONE_ADDRESS_ENV } from '../resilience/helpers.ts';
import { CATCH_UP_FROM_UPSTREAM_MAX } from '../../src/http/catch-up-gate.ts';
import { scrape } from '../helpers/prom-text.ts';

let bridge: Bridge | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await bridge?.close();
  bridge = undefined;
});

/** A raw catch-up request whose answer the client never reads; resolves with the socket once the answer's head came. */
function stalledRead(url: string, path: string): Promise<{ socket: Socket; head: string; closed: Promise<void> }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    sockets.push(socket);
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.once('data', (d: Buffer) => {
      // The head, then nothing more is read: the kernel's buffers fill and pollcast's writes wait.
      socket.pause();
      resolve({ socket, head: d.subarray(0, 200).toString('latin1'), closed });
    });
    socket.once('error', reject);
  });
}

async function bigFinishedSession(env: Record<string, string>): Promise<Bridge> {
  // 600 events, screenshots among them (about 7.6 MB), of which the session's buffer keeps the last 20: a read from the start
  // re-reads the rest from the upstream.
  bridge = await startBridge({ ...ONE_ADDRESS_ENV, UPSTREAM_WAIT_SECONDS: '1', SESSION_MAX_EVENTS: '20', ...env }, { api: 'real' });
  bridge.sim.createSession('big', { initialEvents: 600, imageBytes: 50_000 });
  bridge.sim.finish('big', { answer: 'done', closingEvents: true });
  const warm = await fetch(`${bridge.url}/v1/stream/sessions/big?offset=now`);
  expect(warm.status).toBe(200);
  await warm.arrayBuffer();
  return bridge;
}

describe('Durable catch-up reads of older history', () => {
  it(`run ${CATCH_UP_FROM_UPSTREAM_MAX} at once; one more waits, then gets 429 with Retry-After; a place freed serves the next`, async () => {
    const b = await bigFinishedSession({ BODY_TIMEOUT_SECONDS: '60' });
    const holders = [];
    for (let i = 0; i < CATCH_UP_FROM_UPSTREAM_MAX; i++) {
      const r = await stalledRead(b.url, `/v1/stream/sessions/big?offset=-1&reader=${i}`);
      expect(r.head).toMatch(/^HTTP\/1\.1 200/);
      holders.push(r);
    }
    // A client that gives up while it waits is not an internal error (it was logged and counted as one).
    await expect(fetch(`${b.url}/v1/stream/sessions/big?offset=-1&reader=impatient`, { signal: AbortSignal.timeout(1000) })).rejects.toThrow();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const m = await scrape(b.url);
    expect(m.value('pollcast_requests_rejected_total', { reason: 'internal' })).toBe(0);
    expect(m.value('pollcast_requests_rejected_total', { reason: 'catch_up_reads' })).toBe(1);
    const started = performance.now();
    const refused = await fetch(`${b.url}/v1/stream/sessions/big?offset=-1&reader=more`, { signal: AbortSignal.timeout(20_000) });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(((await refused.json()) as { error: string }).error).toMatch(/catch-up/);
    // It waited for a place first (CATCH_UP_QUEUE_WAIT_MS, 5 s).
    expect(performance.now() - started).toBeGreaterThan(4_000);
    // One holder leaves: the next read gets its place and the whole answer.
    holders[0]!.socket.destroy();
    const next = await fetch(`${b.url}/v1/stream/sessions/big?offset=-1&reader=next`, { signal: AbortSignal.timeout(30_000) });
    expect(next.status).toBe(200);
    const messages = (await next.json()) as unknown[];
    expect(messages.length).toBeGreaterThan(500);
  }, 90_000);

  it('cuts off a client that stops reading its answer after BODY_TIMEOUT_SECONDS, and frees its place', async () => {
    const b = await bigFinishedSession({ BODY_TIMEOUT_SECONDS: '2' });
    const stalled = [];
    for (let i = 0; i < CATCH_UP_FROM_UPSTREAM_MAX; i++) stalled.push(await stalledRead(b.url, `/v1/stream/sessions/big?offset=-1&reader=${i}`));
    // Every place is taken; each frees after 2 s without a read, well within the 5 s the next one may wait.
    const next = await fetch(`${b.url}/v1/stream/sessions/big?offset=-1&reader=after`, { signal: AbortSignal.timeout(30_000) });
    expect(next.status).toBe(200);
    const whole = Buffer.from(await next.arrayBuffer()).length;
    expect(whole).toBeGreaterThan(5_000_000);
    // (With places held for as long as their clients stay, as with BODY_TIMEOUT_SECONDS=60 above, it got 429.)
    for (const s of stalled) s.socket.resume();
    await Promise.all(stalled.map((s) => s.closed));
  }, 90_000);
});
