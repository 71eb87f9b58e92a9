/**
 * Idle HTTP/2 connections (memory audit, 7 Dec 2026): Node's own session timeout (`server.setTimeout`) kept every
 * connection, ended or not, in its timer list for the whole timeout (about 2.2 KB each for 120 s; a client opening
 * and dropping 1,700 connections a second held 0.5 GB). Idle connections are now found by one sweep: an ended one
 * leaves nothing behind, and an idle one still gets GOAWAY.
 */
import { createServer, type Server } from 'node:http';
import { connect, type ClientHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { serveH2c, type H2c } from '../../src/http/h2c.ts';
import { silentLogger } from '../../src/log.ts';
import { eventually } from '../helpers/harness.ts';

let server: Server | undefined;
const held: Array<() => void> = [];
/** The server's side of each connection that made a request, watched without being held. */
let sessionsSeen: Array<WeakRef<object>> = [];
let h2c: H2c | undefined;
afterEach(async () => {
  for (const release of held.splice(0)) release();
  h2c?.destroyAll();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
  h2c = undefined;
});

async function start(idleTimeoutMs: number): Promise<string> {
  server = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  // `/hold` is answered only when the test lets it go (a stream kept open).
  const listener = (req: { url: string; stream?: { session?: object } }, res: { end(body: string): void; write(body: string): void }) => {
    if (req.stream?.session) sessionsSeen.push(new WeakRef(req.stream.session));
    if (req.url !== '/hold') return res.end('ok');
    res.write('held');
    held.push(() => res.end('ok'));
  };
  h2c = serveH2c(server, { listener: listener as never, maxHeaderBytes: 32_768, maxQueueBytes: 1 << 20, firstBytesTimeoutMs: 5000, log: silentLogger(), idleTimeoutMs });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** One request on a new connection, then the connection dropped. */
async function oneAndDrop(url: string): Promise<void> {
  const session = connect(url);
  session.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    const req = session.request({ ':path': '/' });
    req.on('error', reject);
    req.on('data', () => {});
    req.on('end', () => resolve());
  });
  session.destroy();
}

/** A full garbage collection, as `--expose-gc` gives it (flags set at run time, then read from a fresh context). */
function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('idle HTTP/2 connections', () => {
  it('a dropped connection is let go at once (Node\'s session timeout held each for its whole time)', async () => {
    const url = await start(120_000);
    sessionsSeen = [];
    for (let i = 0; i < 200; i++) await oneAndDrop(url);
    await eventually(() => h2c!.sessions === 0, 5000, 'every connection to go');
    expect(h2c!.sessionsTotal).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
    gc();
    await new Promise((r) => setImmediate(r));
    gc();
    expect(sessionsSeen).toHaveLength(200);
    const alive = sessionsSeen.filter((w) => w.deref() !== undefined).length;
    // Before: all 200 held (by the timeout's timer, until it ran out 120 s later).
    expect(alive).toBeLessThan(10);
  });

  it('a connection with no stream open for the idle time gets GOAWAY; one with a stream open does not', async () => {
    const url = await start(400);
    const idle: ClientHttp2Session = connect(url);
    idle.on('error', () => {});
    const goaway = new Promise<number>((resolve) => idle.once('goaway', (code: number) => resolve(code)));
    await new Promise<void>((resolve) => {
      const req = idle.request({ ':path': '/' });
      req.on('data', () => {});
      req.on('end', () => resolve());
    });
    const started = performance.now();
    const busy: ClientHttp2Session = connect(url);
    busy.on('error', () => {});
    let busyGoaway = false;
    busy.once('goaway', () => (busyGoaway = true));
    const holding = busy.request({ ':path': '/hold' });
    await new Promise<void>((resolve) => holding.once('data', () => resolve()));
    expect(await goaway).toBe(0);
    expect(performance.now() - started).toBeGreaterThanOrEqual(350);
    // Twice the idle time with its stream open: still no GOAWAY.
    await new Promise((r) => setTimeout(r, 800));
    expect(busyGoaway).toBe(false);
    idle.destroy();
    busy.destroy();
  });
});
