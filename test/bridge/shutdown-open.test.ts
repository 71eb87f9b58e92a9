/**
 * A stream open still waiting for its first upstream answer when shutdown
 * begins is dropped (the connection on HTTP/1.1, the stream on h2c), never
 * answered 503: EventSource gives up for good on a non-200, and retries
 * (elsewhere) after a dropped connection.
 */
import { connect } from 'node:http2';
import { afterEach, expect, it } from 'vitest';
import { eventually, startBridge, type Bridge } from '../helpers/harness.ts';

let bridge: Bridge | undefined;

afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

it('opens waiting for their first upstream answer at shutdown are dropped, not answered 503 (HTTP/1.1 single and multi, h2c)', async () => {
  bridge = await startBridge({ SHUTDOWN_TIMEOUT_SECONDS: '2' });
  const b = bridge;
  b.sim.createSession('slow', { initialEvents: 3 });
  // The first contact hangs: the opens wait on it.
  b.sim.faults.script([{ kind: 'hang' }, { kind: 'hang' }, { kind: 'hang' }], { session: 'slow', endpoint: 'any' });
  const outcome = (p: Promise<Response>) => p.then((r) => `status ${r.status}`, () => 'dropped');
  const single = outcome(fetch(`${b.url}/sessions/slow/events`));
  const multi = outcome(fetch(`${b.url}/events?session=slow`));
  const session = connect(b.url);
  session.on('error', () => {});
  const h2 = new Promise<string>((resolve) => {
    const stream = session.request({ ':path': '/sessions/slow/events' });
    stream.on('error', () => {});
    stream.once('response', (h) => resolve(`status ${h[':status']}`));
    stream.once('close', () => resolve('dropped'));
  });
  await eventually(() => b.sim.stats('slow').status + b.sim.stats('slow').changes >= 1, 5000, 'the first contact under way');
  await new Promise((r) => setTimeout(r, 200));
  const closing = b.server.close();
  expect(await single).toBe('dropped');
  expect(await multi).toBe('dropped');
  expect(await h2).toBe('dropped');
  session.destroy();
  await closing;
}, 30_000);

it('drop-in long-polls waiting at shutdown are answered 503 with Retry-After at once (HTTP/1.1 and h2c), the HTTP/1.1 connection not kept', async () => {
  bridge = await startBridge({ SHUTDOWN_TIMEOUT_SECONDS: '5' });
  const b = bridge;
  b.sim.createSession('quiet', { initialEvents: 2 });
  const h1 = fetch(`${b.url}/sessions/quiet/changes?from_index=2&wait_for_seconds=20`).then(async (r) => ({ status: r.status, retryAfter: r.headers.get('retry-after'), connection: r.headers.get('connection'), body: (await r.json()) as { code: string } }));
  const session = connect(b.url);
  session.on('error', () => {});
  const h2 = new Promise<{ status: number | undefined; retryAfter: unknown }>((resolve, reject) => {
    const stream = session.request({ ':path': '/sessions/quiet/changes?from_index=2&wait_for_seconds=20' });
    stream.on('error', reject);
    stream.once('response', (h) => resolve({ status: h[':status'], retryAfter: h['retry-after'] }));
    stream.resume();
  });
  // Both are held by the loop (one loop for the session), waiting for an event that does not come.
  await eventually(() => b.sim.stats('quiet').changes >= 1, 5000, 'the loop under way');
  await new Promise((r) => setTimeout(r, 300));
  const started = performance.now();
  const closing = b.server.close();
  expect(await h1).toEqual({ status: 503, retryAfter: '1', connection: 'close', body: expect.objectContaining({ code: 'shutting_down' }) });
  expect(await h2).toEqual({ status: 503, retryAfter: '1' });
  expect(performance.now() - started, 'answered at once, not cut with the connection later').toBeLessThan(1000);
  session.destroy();
  await closing;
}, 30_000);
