/**
 * An open HTTP/1.1 stream gives node:http's request parser back (~6 KB of
 * native memory per idle stream, src/hub/parser-release.ts) and still
 * behaves as before: writes arrive, a client's FIN or reset closes it, a
 * request pipelined behind it keeps the parser, the connection closes when
 * the stream ends, and a shutdown still drops a reader that stopped reading.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PARSER_RELEASE_SUPPORTED, releasedConnections } from '../../src/hub/parser-release.ts';
import { createWriter, writeStreamHead, type ResponseWriter } from '../../src/hub/writer.ts';
import { eventually, startBridge, type Bridge } from '../helpers/harness.ts';
import { openRawStream, type RawStream } from './helpers.ts';

type ParsedSocket = Socket & { parser?: unknown };

interface Opened {
  req: IncomingMessage;
  res: ServerResponse;
  writer: ResponseWriter;
}

let server: Server | undefined;
let bridge: Bridge | undefined;
const clients: Socket[] = [];
const raws: RawStream[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const r of raws.splice(0)) r.socket.destroy();
  if (server) {
    server.closeAllConnections();
    for (const s of releasedConnections(server)) s.destroy();
    await new Promise((resolve) => server!.close(resolve));
    server = undefined;
  }
  await bridge?.close();
  bridge = undefined;
});

/** A node:http server whose first request on a connection is an open stream written through pollcast's writer. */
async function streamServer(): Promise<{ port: number; opened: Opened[]; others: () => number }> {
  const opened: Opened[] = [];
  let others = 0;
  server = createServer((req, res) => {
    if (req.url !== '/stream') {
      // node:http calls this even for a request queued behind the stream.
      others++;
      res.end('other');
      return;
    }
    writeStreamHead(res, {});
    const writer = createWriter(res);
    writer.write(Buffer.from(': open\n\n'));
    opened.push({ req, res, writer });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, opened, others: () => others };
}

function client(port: number, requests: string): { socket: Socket; text: () => string } {
  const socket = connect({ host: '127.0.0.1', port });
  clients.push(socket);
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (text += d));
  socket.on('error', () => {});
  socket.write(requests);
  return { socket, text: () => text };
}

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`;

describe('the request parser of an open HTTP/1.1 stream', () => {
  it('is supported on the Node this project runs on', () => {
    // If a Node upgrade changes the internals it relies on, idle streams cost ~6 KB more: fail loudly.
    expect(PARSER_RELEASE_SUPPORTED).toBe(true);
  });

  it('is released once the head is out; the stream goes on, stray bytes are dropped, a FIN closes it', async () => {
    const { port, opened, others } = await streamServer();
    const c = client(port, GET('/stream'));
    await eventually(() => opened.length === 1 && c.text().includes(': open'), 5000, 'the stream open');
    const { req, res, writer } = opened[0]!;
    const socket = req.socket as ParsedSocket;
    await eventually(() => socket.parser === null, 5000, 'the parser released');
    expect(releasedConnections(server!)).toEqual([socket]);
    expect(c.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(c.text().toLowerCase()).toContain('\r\nconnection: close\r\n');

    // A request sent behind the stream reaches no parser: node:http would call the handler for it.
    c.socket.write(GET('/other'));
    writer.write(Buffer.from('data: after\n\n'));
    await eventually(() => c.text().includes('data: after'), 5000, 'a write after the release');

    const closed = new Promise<void>((resolve) => res.once('close', () => resolve()));
    c.socket.end();
    await closed;
    expect(others()).toBe(0);
    await eventually(() => releasedConnections(server!).length === 0, 5000, 'the released set emptied');
  });

  it('a reset closes the response as before', async () => {
    const { port, opened } = await streamServer();
    const c = client(port, GET('/stream'));
    await eventually(() => opened.length === 1 && (opened[0]!.req.socket as ParsedSocket).parser === null, 5000, 'released');
    const closed = new Promise<void>((resolve) => opened[0]!.res.once('close', () => resolve()));
    c.socket.resetAndDestroy();
    await closed;
    expect(opened[0]!.writer.gone).toBe(true);
  });

  it('is kept when a request is pipelined behind the stream', async () => {
    const { port, opened, others } = await streamServer();
    const c = client(port, GET('/stream') + GET('/other'));
    await eventually(() => opened.length === 1 && c.text().includes(': open'), 5000, 'the stream open');
    // Several turns for a release that must not happen.
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    expect((opened[0]!.req.socket as ParsedSocket).parser).not.toBeNull();
    expect(releasedConnections(server!)).toEqual([]);
    // The control for the stray-bytes check above: a parsed request behind a stream reaches the handler.
    expect(others()).toBe(1);
  });

  it('the connection closes when the stream ends, after its last chunk', async () => {
    const { port, opened } = await streamServer();
    const c = client(port, GET('/stream'));
    await eventually(() => opened.length === 1 && (opened[0]!.req.socket as ParsedSocket).parser === null, 5000, 'released');
    const ended = new Promise<void>((resolve) => c.socket.once('close', () => resolve()));
    opened[0]!.writer.end(false);
    await ended;
    expect(c.text().endsWith('\r\n0\r\n\r\n')).toBe(true);
  });
});

describe('pollcast with released parsers', () => {
  it('a session stream ends with its last chunk and the connection closes', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('s1', { initialEvents: 2 });
    const raw = openRawStream(bridge.url, '/sessions/s1/events');
    raws.push(raw);
    await raw.until((t) => t.includes('id: 1\n'));
    expect(raw.text().toLowerCase()).toContain('\r\nconnection: close\r\n');
    bridge.sim.finish('s1');
    await raw.closed;
    expect(raw.text().endsWith('\r\n0\r\n\r\n')).toBe(true);
  });

  it('a HEAD answer on a stream route keeps its connection for the next request', async () => {
    bridge = await startBridge();
    bridge.sim.createSession('h1', { initialEvents: 1 });
    const c = client(Number(new URL(bridge.url).port), 'HEAD /sessions/h1/events HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(() => c.text().includes('\r\n\r\n'), 5000, 'the HEAD answer');
    expect(c.text()).toMatch(/^HTTP\/1\.1 200 /);
    expect(c.text().toLowerCase()).not.toContain('connection: close');
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(() => (c.text().match(/HTTP\/1\.1 200 /g) ?? []).length === 2, 5000, 'a second answer on the same connection');
  });

  it('shutdown still drops a connection whose reader stopped reading, within its budget', async () => {
    bridge = await startBridge({ SHUTDOWN_TIMEOUT_SECONDS: '2', SESSION_MAX_BYTES: String(64 << 20) });
    // ~13 MB of history, far more than the loopback buffers of a reader that reads nothing take.
    bridge.sim.createSession('big', { initialEvents: 400, finished: true, detailBytes: 32 * 1024 });
    // A first reader loads the history, so the second one's is a replay from memory, paced by 'drain'.
    const first = openRawStream(bridge.url, '/sessions/big/events');
    raws.push(first);
    await first.closed;
    const stats = bridge.server.metrics.stats;
    // The first reader may itself have been dropped as slow while the history arrived (a loaded machine's
    // test process reads 13 MB slower than pollcast writes it): only the paused reader's fate counts below.
    const droppedBefore = stats.slowDropped;
    const raw = openRawStream(bridge.url, '/sessions/big/events', { paused: true });
    raws.push(raw);
    // Stuck: the replay waits for a 'drain' that does not come, so the stream's end can never leave either.
    let last = -1;
    await eventually(async () => {
      const now = stats.framesDelivered;
      const stuck = now > 410 && now === last;
      last = now;
      if (!stuck) await new Promise((r) => setTimeout(r, 300));
      return stuck;
    }, 10_000, 'the replay stuck on a full connection');
    expect(stats.framesDelivered).toBeLessThan(800);
    expect(stats.slowDropped - droppedBefore, 'the paused reader, replayed from memory, is paced, not dropped').toBe(0);
    const started = performance.now();
    await bridge.server.close();
    // The budget is 2 s; the deadline that drops what is left comes within it.
    expect(performance.now() - started).toBeLessThan(4000);
    raw.socket.resume();
    await raw.closed;
    // Dropped, not finished: the body stops short of its last chunk.
    expect(raw.text().endsWith('\r\n0\r\n\r\n')).toBe(false);
  }, 20_000);
});
