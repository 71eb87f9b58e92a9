/**
 * A stream open still waiting for its first upstream answer when shutdown
 * begins is dropped (the connection on HTTP/1.1, the stream on h2c), never
 * answered 503: EventSource gives up for good on a non-200, and retries
 * (elsewhere) after a dropped connection.
 */
import { connect } from 'node:http2';
import { afterEach, expect, it } from 'vitest';
import { eventually, startBridge, type Bridge } from '../helpers/harness.ts';
import { KEY_A, startGateway } from '../forward/helpers.ts';
import { metric } from '../security/helpers.ts';

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

it('a forwarded call under way at shutdown is let finish within the budget: its caller gets the upstream\'s answer, the write is made', async () => {
  const b = await startGateway({ SHUTDOWN_TIMEOUT_SECONDS: '8' });
  bridge = b;
  b.sim.createSession('sd-fwd', { organisation: 'org-a', initialEvents: 1, imageBytes: 0 });
  // A 30-byte message sent over about 3 s, with a length (as the SDK sends it): the call outlasts the 1.5 s cut.
  const text = JSON.stringify({ message: 'x'.repeat(15) });
  const bytes = new TextEncoder().encode(text);
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent > 0) await new Promise((r) => setTimeout(r, 300));
      if (sent >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(sent, sent + 3));
      sent += 3;
    },
  });
  const answer = fetch(`${b.url}/api/v2/sessions/sd-fwd/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json', 'content-length': String(bytes.length) },
    body,
    duplex: 'half',
  } as RequestInit).then(async (r) => ({ status: r.status, body: await r.text() }), (err: Error) => ({ status: 0, body: err.message }));
  await new Promise((r) => setTimeout(r, 500));
  const started = performance.now();
  const closing = b.server.close();
  expect((await answer).status).toBe(202);
  expect(b.sim.received('sd-fwd')).toHaveLength(1);
  await closing;
  expect(performance.now() - started, 'within SHUTDOWN_TIMEOUT_SECONDS').toBeLessThan(8000);
}, 30_000);

it('a Durable long-poll waiting at shutdown is answered 204 (up to date) at once, and Durable SSE streams count as open streams', async () => {
  const b = await startBridge({ SHUTDOWN_TIMEOUT_SECONDS: '5' });
  bridge = b;
  b.sim.createSession('sd-ds', { initialEvents: 2 });
  const sse = await fetch(`${b.url}/v1/stream/sessions/sd-ds?offset=-1&live=sse`);
  expect(sse.status).toBe(200);
  const health = (await (await fetch(`${b.url}/healthz`)).json()) as { streams: number };
  expect(health.streams).toBe(1);
  expect(await metric(b, 'pollcast_open_streams')).toBe(1);
  // At the tail: the first read of a live=long-poll from offset -1 returns the events, the next one waits.
  const first = await fetch(`${b.url}/v1/stream/sessions/sd-ds?offset=-1`);
  const tail = first.headers.get('stream-next-offset')!;
  await first.arrayBuffer();
  const poll = fetch(`${b.url}/v1/stream/sessions/sd-ds?offset=${encodeURIComponent(tail)}&live=long-poll`).then((r) => ({ status: r.status, upToDate: r.headers.get('stream-up-to-date') }), () => ({ status: 0, upToDate: null }));
  await new Promise((r) => setTimeout(r, 500));
  const started = performance.now();
  const closing = b.server.close();
  expect(await poll).toEqual({ status: 204, upToDate: 'true' });
  expect(performance.now() - started, 'answered at once, not cut with the connection later').toBeLessThan(1000);
  await sse.body?.cancel().catch(() => undefined);
  await closing;
}, 30_000);
