/**
 * A subscriber past its bound while its feed's loop has not yet read the history up to date is caught up again
 * instead of dropped (StreamSubscriber.onChunk, StreamConnection.behindOnHistory). Two faults a review found in its
 * first form (7 Dec 2026), each with a real HTTP server and a client socket that stops reading: a subscriber closed
 * by the status write of that catch-up was put back among the feed's listeners (a dead stream called on every
 * chunk), and one resumed ahead of the feed was added back to the set the fan-out was iterating, which spun forever.
 */
import { afterEach, expect, it } from 'vitest';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import pino from 'pino';
import { Streams } from '../../src/hub/streams.ts';
import { createFeed, type Feed } from '../../src/hub/feed.ts';
import type { FeedEntry, Hub } from '../../src/hub/hub.ts';
import type { StreamSubscriber } from '../../src/hub/subscriber.ts';
import { Stats } from '../../src/metrics.ts';
import { UNKNOWN_SNAPSHOT } from '../../src/upstream/snapshot.ts';

const BOUND = 1024;
let server: Server | undefined;
let socket: Socket | undefined;
let streams: Streams | undefined;
afterEach(async () => {
  socket?.destroy();
  await streams?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = socket = streams = undefined;
});

/** A subscriber of a fresh feed starting at `startIndex`, on a real connection whose client never reads. */
async function stalledSubscriber(startIndex: number): Promise<{ feed: Feed; sub: StreamSubscriber; stats: Stats; released: () => number }> {
  const stats = new Stats();
  let released = 0;
  const hub = { release: () => void released++, fetchHistory: async () => [] } as unknown as Hub;
  streams = new Streams({ hub, log: pino({ level: 'silent' }), stats, retryMs: 1000, heartbeatMs: 15_000, maxQueueBytes: BOUND });
  const feed = createFeed('s', true, 0, { maxEvents: 100_000, maxBytes: 1 << 30 });
  const entry = { feed, users: 1 } as unknown as FeedEntry;
  let sub: StreamSubscriber | undefined;
  server = createServer((_req, res: ServerResponse) => void (sub = streams!.start(entry, res, startIndex)));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  socket.pause();
  while (sub === undefined) await new Promise((r) => setTimeout(r, 5));
  return { feed, sub, stats, released: () => released };
}

/** Status frames (no event) until the connection holds more than its bound unsent. */
async function backlog(feed: Feed, sub: StreamSubscriber, synced: boolean): Promise<void> {
  for (let k = 0; (sub as unknown as { out: { unsentBytes: number } }).out.unsentBytes <= BOUND && !sub.closed; k++) {
    feed.publish({ fromIndex: feed.nextIndex, events: [], snapshot: UNKNOWN_SNAPSHOT, synced, upstreamError: `trouble ${k} ${'e'.repeat(200_000)}` });
    await new Promise((r) => setTimeout(r, 2));
  }
}

it('a subscriber the catch-up\'s status write closes as slow is not registered again', async () => {
  const { feed, sub, stats, released } = await stalledSubscriber(0);
  await backlog(feed, sub, false);
  expect(sub.closed).toBe(false);
  // Nothing to replay: the catch-up only writes the new status, past the bound.
  feed.publish({ fromIndex: 0, events: [], snapshot: UNKNOWN_SNAPSHOT, synced: false, upstreamError: 'another' });
  await new Promise((r) => setTimeout(r, 50));
  expect(sub.closed).toBe(true);
  expect(stats.slowDropped).toBe(1);
  expect(released()).toBe(1);
  expect(feed.listeners.has(sub)).toBe(false);
});

it('a subscriber resumed ahead of the feed, past its bound, costs the fan-out one call, not an endless loop', async () => {
  const { feed, sub } = await stalledSubscriber(1000);
  await backlog(feed, sub, true);
  let calls = 0;
  const onChunk = sub.onChunk.bind(sub);
  sub.onChunk = (chunk) => {
    if (++calls > 100) throw new Error('the fan-out keeps calling the same subscriber');
    onChunk(chunk);
  };
  // As a feed whose loop reads the history (the backlog's statuses above said synced, to stay registered).
  feed.caughtUpOnce = false;
  feed.publish({ fromIndex: 0, events: [{ type: 'x', data: {}, timestamp: '2026-12-07T00:00:00Z' }], snapshot: UNKNOWN_SNAPSHOT, synced: false, upstreamError: null });
  expect(calls).toBe(1);
  await new Promise((r) => setTimeout(r, 50));
  expect(calls).toBeLessThanOrEqual(1);
});
