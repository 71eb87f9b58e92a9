/**
 * Request bodies that stop arriving (BODY_TIMEOUT_SECONDS): a forwarded call
 * with or without a declared length, and `POST /events`, are refused with 408
 * JSON and their connection closed, instead of holding it (and the bytes read
 * so far) for good; an upstream slow to read a body is not the client's pause;
 * a client that leaves mid-body is not an internal error.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../helpers/harness.ts';
import { metric } from '../security/helpers.ts';
import { KEY_A, startGateway } from './helpers.ts';

const bridges: Bridge[] = [];
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(bridges.splice(0).map((b) => b.close()));
  for (const s of servers.splice(0)) s.close();
});

interface Stalled {
  /** Everything the server sent before it closed the connection. */
  text: string;
  /** Milliseconds from the last byte sent to the connection's close. */
  closedAfterMs: number;
}

/** Sends `head` and `bodyStart`, then nothing more, and waits (bounded) for the server to answer and close. */
function stall(url: string, head: string, bodyStart: string, boundMs = 10_000): Promise<Stalled> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let text = '';
    let sentAt = 0;
    const bound = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connection still open ${boundMs} ms after the body stalled; got: ${text.slice(0, 200)}`));
    }, boundMs);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(bound);
      resolve({ text, closedAfterMs: performance.now() - sentAt });
    });
    socket.write(head + bodyStart, () => (sentAt = performance.now()));
  });
}

function answerOf(s: Stalled): { status: number; body: { code?: string; error?: string } } {
  const [head = '', body = ''] = s.text.split('\r\n\r\n');
  return { status: Number(head.split(' ')[1]), body: JSON.parse(body) as { code?: string; error?: string } };
}

describe('a request body that stops arriving', () => {
  it('forwarded without a declared length: 408 JSON after BODY_TIMEOUT_SECONDS, connection closed, nothing forwarded', async () => {
    const b = await startGateway({ BODY_TIMEOUT_SECONDS: '1' });
    bridges.push(b);
    b.sim.createSession('stall-1', { organisation: 'org-a', initialEvents: 1, imageBytes: 0 });
    b.sim.clearRequests();
    const head = `POST /api/v2/sessions/stall-1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const s = await stall(b.url, head, '5\r\n{"mes\r\n');
    const answer = answerOf(s);
    expect(answer.status).toBe(408);
    expect(answer.body).toMatchObject({ code: 'request_timeout', error: expect.stringMatching(/stopped arriving/) });
    expect(s.closedAfterMs).toBeGreaterThanOrEqual(900);
    expect(b.sim.received('stall-1')).toEqual([]);
    expect(await metric(b, 'pollcast_forward_errors_total{reason="body_timeout"}')).toBe(1);
  });

  it('forwarded with a declared length: 408 JSON, connection closed, the upstream call let go', async () => {
    const b = await startGateway({ BODY_TIMEOUT_SECONDS: '1' });
    bridges.push(b);
    b.sim.createSession('stall-2', { organisation: 'org-a', initialEvents: 1, imageBytes: 0 });
    const head = `POST /api/v2/sessions/stall-2/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n`;
    const answer = answerOf(await stall(b.url, head, '{"message":'));
    expect(answer.status).toBe(408);
    expect(answer.body.code).toBe('request_timeout');
    // The half-sent message never became one.
    expect(b.sim.received('stall-2')).toEqual([]);
  });

  it('POST /events: 408 JSON, connection closed', async () => {
    const b = await startBridge({ BODY_TIMEOUT_SECONDS: '1' });
    bridges.push(b);
    const answer = answerOf(await stall(b.url, 'POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n', '{'));
    expect(answer.status).toBe(408);
    expect(answer.body.code).toBe('request_timeout');
  });

  it('POST /events left mid-body by its client is no internal error', async () => {
    const b = await startBridge();
    bridges.push(b);
    const { port } = new URL(b.url);
    const socket = connect(Number(port), '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write('POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"sess');
    await new Promise((resolve) => setTimeout(resolve, 200));
    socket.destroy();
    // Counted as a refused request (the body broke off), never as pollcast's own failure.
    await expect.poll(() => metric(b, 'pollcast_requests_rejected_total{reason="bad_request"}'), { timeout: 5000 }).toBe(1);
    expect(await metric(b, 'pollcast_requests_rejected_total{reason="internal"}')).toBe(0);
  });

  it('an upstream slow to read a body is not a pause of the client: the call goes through', async () => {
    // An upstream that takes 2.5 s (past BODY_TIMEOUT_SECONDS) before it reads a 9 MB body: more than the socket and
    // undici buffers hold, so the request stream is held back meanwhile.
    let received = 0;
    const upstream = createServer((req, res) => {
      req.pause();
      setTimeout(() => {
        req.on('data', (d: Buffer) => (received += d.length));
        req.on('end', () => res.writeHead(202, { 'content-type': 'application/json' }).end('{"ok":true}'));
        req.resume();
      }, 2500);
    });
    servers.push(upstream);
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const b = await startBridge({ UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/api/v2`, BODY_TIMEOUT_SECONDS: '1' });
    bridges.push(b);
    const body = Buffer.alloc(9 * 1024 * 1024, 'x');
    const res = await fetch(`${b.url}/api/v2/sessions/slow-reader/messages`, { method: 'POST', headers: { authorization: `Bearer ${KEY_A}` }, body, signal: AbortSignal.timeout(15_000) });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ ok: true });
    expect(received).toBe(body.length);
  });
});
