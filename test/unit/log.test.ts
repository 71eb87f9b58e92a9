/**
 * The log destination on real sockets: it goes quiet after a write error
 * (EPIPE, as when `pollcast | head` lost its reader) instead of crashing or
 * retrying, bounds what a stalled reader makes it hold, and never makes a
 * flush wait longer than asked.
 */
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createLogDestination, flushLog, LOG_MAX_PENDING_BYTES } from '../../src/log.ts';
import { eventually } from '../helpers/harness.ts';

let server: Server | undefined;
let client: Socket | undefined;
afterEach(() => {
  client?.destroy();
  server?.close();
  client = server = undefined;
});

/** A connected socket whose peer is handed to `onPeer` (to close it, or to never read from it). */
async function socketTo(onPeer: (peer: Socket) => void): Promise<Socket> {
  server = createServer(onPeer);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  // Half-open like stdout: the peer's close does not end this side, so writes really reach the kernel and fail there.
  client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(client, 'connect');
  return client;
}

describe('the log destination', () => {
  it('goes quiet for good after a write error, and a flush then returns at once', async () => {
    const out = await socketTo((peer) => peer.destroy());
    const dest = createLogDestination(out);
    const line = `${JSON.stringify({ msg: 'x'.repeat(1000) })}\n`;
    // The first writes may still be accepted by the kernel; one soon fails (EPIPE or ECONNRESET).
    await eventually(() => {
      dest.write(line);
      return dest.failed;
    }, 5000, 'a write error');
    expect(() => dest.write(line)).not.toThrow();
    const started = Date.now();
    await new Promise<void>((resolve) => dest.flush(resolve));
    expect(Date.now() - started).toBeLessThan(100);
  });

  it('drops lines past LOG_MAX_PENDING_BYTES while nobody reads, and flushLog waits no longer than asked', async () => {
    const out = await socketTo((peer) => peer.pause());
    const dest = createLogDestination(out);
    const log = pino({ base: undefined }, dest);
    const big = 'x'.repeat(64 * 1024);
    for (let i = 0; i < (2 * LOG_MAX_PENDING_BYTES) / big.length; i++) log.info(big);
    expect(dest.failed).toBe(false);
    expect(dest.droppedLines).toBeGreaterThan(0);
    expect(out.writableLength).toBeLessThanOrEqual(LOG_MAX_PENDING_BYTES + big.length + 200);
    const started = Date.now();
    await flushLog(log, 300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('flushes what a reader takes', async () => {
    let received = '';
    const out = await socketTo((peer) => peer.on('data', (d: Buffer) => (received += d.toString())));
    const log = pino({ base: undefined }, createLogDestination(out));
    log.info('first');
    log.info('last');
    await flushLog(log, 5000);
    await eventually(() => received.includes('"msg":"last"'), 5000, 'both lines received');
    expect(received.trim().split('\n').map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['first', 'last']);
  });
});
