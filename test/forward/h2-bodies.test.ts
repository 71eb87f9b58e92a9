/**
 * Forwarding to HTTP/2 callers at the edges of a request's life: a caller that
 * resets its stream while the upstream holds the answer, an upload without a
 * length that the caller cancels midway, and an upstream that answers before it
 * read a large upload. Each against a real node:http2 client and an upstream of
 * the test's own that records what reached it and when its request closed.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect as h2connect, constants as h2constants, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, startBridge, type Bridge } from '../helpers/harness.ts';

interface Seen {
  url: string;
  /** Body bytes read, when the upstream reads bodies. */
  bytes: number;
  /** The request's body ended (the upstream read all of it). */
  complete: boolean;
  /** The request's connection closed before the upstream answered. */
  abandoned: boolean;
}

/**
 * An upstream that holds `/hold` for 10 s, answers `/early` at once without reading the body, and reads the body
 * of anything else before answering 200.
 */
async function startUpstream(): Promise<{ url: string; seen: Seen[]; close(): void }> {
  const seen: Seen[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const record: Seen = { url: req.url ?? '', bytes: 0, complete: false, abandoned: false };
    seen.push(record);
    res.on('close', () => {
      if (!res.writableFinished) record.abandoned = true;
    });
    if (req.url?.endsWith('/hold')) {
      const timer = setTimeout(() => res.end('{"held":true}'), 10_000);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    if (req.url?.endsWith('/early')) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"detail":"refused before the body"}');
      return;
    }
    req.on('data', (d: Buffer) => (record.bytes += d.length));
    req.on('end', () => {
      record.complete = true;
      res.end(JSON.stringify({ bytes: record.bytes }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup(): Promise<{ b: Bridge; up: Awaited<ReturnType<typeof startUpstream>>; session: ClientHttp2Session }> {
  const up = await startUpstream();
  cleanups.push(() => up.close());
  const b = await startBridge({ UPSTREAM_URL: `${up.url}/api/v2` });
  cleanups.push(() => b.close());
  const session = h2connect(b.url);
  session.on('error', () => {});
  cleanups.push(() => session.close());
  return { b, up, session };
}

describe('forwarding: HTTP/2 callers at the edges', () => {
  it('a caller that resets its stream, or whose connection drops, while the upstream holds the answer lets go of the upstream request at once', async () => {
    const { b, up, session } = await setup();
    const stream = session.request({ ':path': '/api/v2/x/hold', ':method': 'GET' });
    stream.on('error', () => {});
    await eventually(() => up.seen.some((s) => s.url.endsWith('/hold')), 5000, 'the upstream request');
    stream.close(h2constants.NGHTTP2_CANCEL);
    await eventually(() => up.seen.find((s) => s.url.endsWith('/hold'))!.abandoned, 3000, 'the upstream request abandoned');
    // A caller whose connection drops with three requests waiting (its TCP connection ended under the HTTP/2
    // session, which sends no RST_STREAM or GOAWAY first): each of them lets go. Until 6 Dec 2026 the session stayed
    // up on node:http's half-open socket, and the requests ran on.
    let raw!: Socket;
    const other = h2connect(b.url, { createConnection: () => (raw = netConnect(Number(new URL(b.url).port), '127.0.0.1')) });
    other.on('error', () => {});
    for (let k = 0; k < 3; k++) other.request({ ':path': `/api/v2/x${k}/hold`, ':method': 'GET' }).on('error', () => {});
    await eventually(() => up.seen.filter((s) => /\/x\d\/hold$/.test(s.url)).length === 3, 5000, 'three upstream requests');
    raw.end();
    await eventually(() => up.seen.filter((s) => /\/x\d\/hold$/.test(s.url)).every((s) => s.abandoned), 3000, 'all three abandoned');
  });

  it('an upload without a length that the caller cancels midway never reaches the upstream as a complete request', async () => {
    const { b, up, session } = await setup();
    /** A whole upload over `on` (no content-length), resolving with its answer's status. */
    const whole = (on: ClientHttp2Session, message: string) => {
      const stream = on.request({ ':path': '/api/v2/sessions/abc/messages', ':method': 'POST', 'content-type': 'application/json' });
      stream.end(JSON.stringify({ message }));
      stream.resume();
      return new Promise<number>((resolve, reject) => stream.once('response', (h) => resolve(Number(h[':status']))).once('error', reject));
    };
    // The upstream connection is open already (the forward goes out at once): only the reset can stop it.
    expect(await whole(session, 'warm')).toBe(200);
    // node:http2's own cancel: END_STREAM, then RST_STREAM CANCEL.
    const cancelled = session.request({ ':path': '/api/v2/sessions/abc/messages', ':method': 'POST', 'content-type': 'application/json' });
    cancelled.on('error', () => {});
    cancelled.write('{"message":"hel');
    await new Promise((r) => setTimeout(r, 300));
    cancelled.close(h2constants.NGHTTP2_CANCEL);
    // A caller whose connection drops mid-upload (no END_STREAM at all).
    const other = h2connect(b.url);
    other.on('error', () => {});
    const dropped = other.request({ ':path': '/api/v2/sessions/abc/messages', ':method': 'POST', 'content-type': 'application/json' });
    dropped.on('error', () => {});
    dropped.write('{"message":"wor');
    await new Promise((r) => setTimeout(r, 300));
    other.socket.destroy();
    await new Promise((r) => setTimeout(r, 1000));
    const messages = up.seen.filter((s) => s.url.endsWith('/messages'));
    expect(messages.filter((s) => s.complete).map((s) => s.bytes)).toEqual([JSON.stringify({ message: 'warm' }).length]);
    // The bridge is well, and a whole upload still goes through.
    expect(await whole(session, 'hello')).toBe(200);
    expect((await fetch(`${b.url}/healthz`)).status).toBe(200);
  });

  it('an upstream that answers before reading a large upload: the caller gets the answer and its stream ends', async () => {
    const { b, up, session } = await setup();
    const size = 4 * 1024 * 1024;
    const stream = session.request({ ':path': '/api/v2/x/early', ':method': 'POST', 'content-length': String(size) });
    stream.on('error', () => {});
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let written = 0;
    const writeMore = () => {
      while (written < size) {
        written += chunk.length;
        if (!stream.write(chunk)) return void stream.once('drain', writeMore);
      }
      stream.end();
    };
    writeMore();
    const head = await new Promise<Record<string, unknown>>((resolve) => stream.once('response', resolve));
    expect(head[':status']).toBe(401);
    let body = '';
    stream.setEncoding('utf8').on('data', (d: string) => (body += d));
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      stream.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    expect(closed, 'the caller\'s stream closed').toBe(true);
    expect(JSON.parse(body)).toEqual({ detail: 'refused before the body' });
    expect(up.seen.filter((s) => s.url.endsWith('/early'))).toHaveLength(1);
    // Relayed whole: not counted as an answer that broke off.
    expect(await (await fetch(`${b.url}/metrics`)).text()).not.toMatch(/pollcast_forward_errors_total\{reason="body"\} [1-9]/);
  });

  it('a body that breaks its own content-length (more bytes, or fewer) never reaches the upstream, not even as an empty request', async () => {
    // Gateway audit, 7 Dec 2026: node:http2 resets such a stream (PROTOCOL_ERROR), and the upstream got the request
    // whole with an empty body, 20 runs of 20: a pause or a cancel took effect while its caller saw a failure.
    const { b, up } = await setup();
    // A session each: nghttp2 may end the whole session over a stream's protocol error.
    const send = (declared: number, body: string, tag: string) =>
      new Promise<void>((resolve) => {
        const session = h2connect(b.url);
        session.on('error', () => {});
        const stream = session.request({ ':path': `/api/v2/sessions/abc/messages?t=${tag}`, ':method': 'POST', 'content-type': 'application/json', 'content-length': String(declared) });
        stream.on('error', () => {});
        stream.on('close', () => {
          session.close();
          resolve();
        });
        stream.resume();
        stream.end(body);
      });
    for (let i = 0; i < 3; i++) {
      await send(3, '{"message":"do something"}', `over-${i}`);
      await send(100, '{"message":"x"}', `under-${i}`);
      // Declared empty, stream left open, then DATA (a second audit: forwarded at once, whole with an empty body).
      await send(0, 'hello', `over-empty-${i}`);
    }
    await new Promise((r) => setTimeout(r, 500));
    // (The upstream may see a request begin, and its body break off: never one whole.)
    expect(up.seen.filter((s) => /t=(over|under)-/.test(s.url) && s.complete).map((s) => s.url)).toEqual([]);
    // The session is well, and a body that keeps to its length still goes through, an empty one too.
    const body = JSON.stringify({ message: 'kept' });
    await send(body.length, body, 'kept');
    await eventually(() => up.seen.some((s) => s.url.endsWith('t=kept') && s.complete && s.bytes === body.length), 3000, 'the kept upload');
    await send(0, '', 'kept-empty');
    await eventually(() => up.seen.some((s) => s.url.endsWith('t=kept-empty') && s.complete && s.bytes === 0), 3000, 'the kept empty upload');
    // A raw byte past ASCII in :path (an overlong UTF-8 `.`) is refused as HTTP/1.1's parser refuses it.
    const status = await new Promise<number>((resolve) => {
      const session = h2connect(b.url);
      session.on('error', () => {});
      const stream = session.request({ ':path': '/api/v2/\xc0\xae\xc0\xae/\xc0\xae\xc0\xae/admin', ':method': 'GET' });
      stream.on('error', () => resolve(0));
      stream.on('response', (h) => resolve(Number(h[':status'])));
      stream.on('close', () => session.close());
      stream.resume();
    });
    expect(status).toBe(400);
    expect(up.seen.some((s) => s.url.includes('admin'))).toBe(false);
  });

  it('a GET that sends DATA without a length goes on with its body, as over HTTP/1.1; a GET that ends with its headers goes without one', async () => {
    // Target fuzz, 7 Dec 2026: the DATA of such a GET was dropped, and the upstream got a GET with no body.
    const { up, session } = await setup();
    const get = (tag: string, body: string | null) =>
      new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':path': `/api/v2/agents?t=${tag}`, ':method': 'GET' }, { endStream: body === null });
        stream.on('error', reject);
        stream.on('response', (h) => resolve(Number(h[':status'])));
        stream.resume();
        if (body !== null) stream.end(body);
      });
    expect(await get('with-data', '{"q":"abc"}')).toBe(200);
    expect(await get('bare', null)).toBe(200);
    expect(up.seen.find((s) => s.url.endsWith('t=with-data'))).toMatchObject({ bytes: 11, complete: true });
    expect(up.seen.find((s) => s.url.endsWith('t=bare'))).toMatchObject({ bytes: 0, complete: true });
  });
});
