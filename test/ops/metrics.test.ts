/**
 * /metrics moves with the traffic: one loop's upstream requests (checked
 * against the simulator's own request counts) against many subscribers'
 * frames, replays from the buffer, slow subscribers, refusals.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { connect, type Socket } from 'node:net';
import { startBridge, record, eventually, range, type Bridge, type Recorder } from '../helpers/harness.ts';
import { scrape } from '../helpers/prom-text.ts';

/** Subscribers of the fan-out session. */
const SUBSCRIBERS = 5;

describe('metrics', () => {
  let bridge: Bridge;
  beforeAll(async () => {
    bridge = await startBridge({ IDLE_GRACE_SECONDS: '0.2' });
  });
  afterAll(async () => {
    await bridge?.close();
  });

  it('counts one loop for many subscribers: frames = events × subscribers, requests as the upstream saw them', async () => {
    const { sim, url } = bridge;
    sim.createSession('fan-1');
    const recorders: Recorder[] = range(SUBSCRIBERS).map(() => record(`${url}/sessions/fan-1/events`));
    try {
      await Promise.all(recorders.map((r) => r.until((x) => x.statuses().length > 0)));
      const open = await scrape(url);
      expect(open.value('pollcast_open_streams')).toBe(SUBSCRIBERS);
      expect(open.value('pollcast_streams_opened_total')).toBe(SUBSCRIBERS);
      expect(open.value('pollcast_sessions', { state: 'live' })).toBe(1);
      expect(open.value('pollcast_loops', { state: 'polling' })).toBe(1);
      expect(open.value('pollcast_frames_delivered_total')).toBe(0);

      for (const batch of [4, 10, 6]) {
        const target = sim.eventCount('fan-1') + batch;
        sim.appendEvents('fan-1', batch);
        await Promise.all(recorders.map((r) => r.until((x) => x.indices().length === target)));
      }
      sim.finish('fan-1');
      await Promise.all(recorders.map((r) => r.ended()));
      const events = sim.eventCount('fan-1');
      for (const r of recorders) expect(r.indices()).toEqual(range(events));

      // The loop stops on its own after the end; only then are all its requests answered and counted.
      await eventually(async () => (await scrape(url)).value('pollcast_loops') === 0, 5000, 'the loop to stop');
      const m = await scrape(url);
      const upstream = sim.stats('fan-1');
      expect(m.value('pollcast_events_received_total')).toBe(events);
      expect(m.value('pollcast_frames_delivered_total')).toBe(events * SUBSCRIBERS);
      expect(m.value('pollcast_upstream_requests_total', { endpoint: 'changes' })).toBe(upstream.changes);
      expect(m.value('pollcast_upstream_requests_total', { endpoint: 'status' })).toBe(upstream.status);
      const requests = m.value('pollcast_upstream_requests_total');
      expect(m.value('pollcast_upstream_request_duration_seconds_count')).toBe(requests);
      expect(m.value('pollcast_upstream_request_duration_seconds_sum')).toBeGreaterThan(0);
      expect(m.value('pollcast_frames_per_upstream_request')).toBeCloseTo((events * SUBSCRIBERS) / requests, 6);
      expect(m.value('pollcast_frames_per_upstream_request')).toBeGreaterThan(1);
      expect(m.value('pollcast_streams_closed_total', { reason: 'end' })).toBe(SUBSCRIBERS);
      expect(m.value('pollcast_open_streams')).toBe(0);
      expect(m.value('pollcast_sessions', { state: 'finished' })).toBe(1);
      expect(m.value('pollcast_replays_total', { source: 'buffer' })).toBe(0);

      // A late subscriber is served from the cached history: a buffer replay, no upstream request.
      const late = record(`${url}/sessions/fan-1/events`);
      await late.ended();
      expect(late.indices()).toEqual(range(events));
      const after = await scrape(url);
      expect(after.value('pollcast_replays_total', { source: 'buffer' })).toBe(1);
      expect(after.value('pollcast_replays_total', { source: 'upstream' })).toBe(0);
      expect(after.value('pollcast_frames_delivered_total')).toBe(events * (SUBSCRIBERS + 1));
      expect(after.value('pollcast_upstream_requests_total')).toBe(requests);
      expect(sim.stats('fan-1').changes).toBe(upstream.changes);
    } finally {
      for (const r of recorders) r.close();
    }
  });

  it('counts a subscriber that stops reading as dropped for being slow', async () => {
    // Its own bridge: a small bound (64 KiB) that one append batch (20 × ~2 KB) stays under.
    const slow = await startBridge({ SUBSCRIBER_MAX_QUEUE_BYTES: String(64 * 1024) });
    const { sim, url, server } = slow;
    sim.createSession('slow-1', { detailBytes: 2000 });
    const before = await scrape(url);
    // A raw socket that sends the request and never reads: the kernel buffers fill, then pollcast's bound.
    const socket: Socket = connect(server.port, '127.0.0.1');
    try {
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      socket.write('GET /sessions/slow-1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
      socket.pause();
      await eventually(() => server.streams.countFor('slow-1') === 1, 5000, 'the stream to open');
      // Keep appending until the socket backs up past SUBSCRIBER_MAX_QUEUE_BYTES (a few MB at most).
      await eventually(
        async () => {
          if (server.streams.countFor('slow-1') === 0) return true;
          sim.appendEvents('slow-1', 20);
          return false;
        },
        15_000,
        'the slow subscriber to be dropped',
      );
      const m = await scrape(url);
      expect(m.value('pollcast_slow_subscribers_dropped_total') - before.value('pollcast_slow_subscribers_dropped_total')).toBe(1);
      expect(m.value('pollcast_streams_closed_total', { reason: 'slow' })).toBe(1);
    } finally {
      socket.destroy();
      await slow.close();
    }
  });

  it('counts refused requests by reason', async () => {
    const { sim, url } = bridge;
    const before = await scrape(url);
    expect((await fetch(`${url}/sessions/-bad/events`)).status).toBe(400);
    expect((await fetch(`${url}/sessions/fan-1/events?from_index=x`)).status).toBe(400);
    expect((await fetch(`${url}/sessions/no-such-session/events`)).status).toBe(404);
    expect(sim.stats('-bad').changes + sim.stats('-bad').status).toBe(0);
    const m = await scrape(url);
    const delta = (reason: string) => m.value('pollcast_requests_rejected_total', { reason }) - before.value('pollcast_requests_rejected_total', { reason });
    expect(delta('bad_request')).toBe(2);
    expect(delta('session_not_found')).toBe(1);
  });

  it('counts the refusals made before any route too: headers too large (431), no Host (400); not a method refused (405), as on every route', async () => {
    const { url } = bridge;
    const before = await scrape(url);
    const { port } = new URL(url);
    // Raw requests: a client library would not send these.
    const raw = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => socket.end(request));
        let answer = '';
        socket.on('data', (d: Buffer) => (answer += d.toString()));
        socket.on('close', () => resolve(answer));
        socket.on('error', reject);
      });
    expect(await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431/);
    expect(await raw('GET /healthz HTTP/1.1\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);
    expect(await raw('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')).toMatch(/^HTTP\/1\.1 405/);
    const m = await scrape(url);
    const delta = (reason: string) => m.value('pollcast_requests_rejected_total', { reason }) - before.value('pollcast_requests_rejected_total', { reason });
    expect(delta('headers_too_large')).toBe(1);
    expect(delta('bad_request')).toBe(1);
    expect(delta('method_not_allowed')).toBe(0);
  });
});
