/**
 * public/pollcast-client.js against a real bridge, in Node with the spec
 * EventSource of the `eventsource` package standing in for the browser's
 * (the Chromium test drives the same module through the demo page).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { EventSource } from 'eventsource';
import { SignJWT } from 'jose';
import { connect, streamUrl, type PollcastEnd, type PollcastEvent, type PollcastStatus } from '../../public/pollcast-client.js';
import { startBridge, eventually, range, type Bridge } from '../helpers/harness.ts';

const SECRET = 'client-test-secret-that-is-long-enough-for-hs256';

/** What one `connect` reported, in order. */
function recorder() {
  const log: string[] = [];
  const events: PollcastEvent[] = [];
  const statuses: PollcastStatus[] = [];
  const ends: PollcastEnd[] = [];
  const errors: unknown[] = [];
  return {
    log,
    events,
    statuses,
    ends,
    errors,
    options: {
      onEvent: (e: PollcastEvent) => void (events.push(e), log.push(`event ${e.index}`)),
      onStatus: (s: PollcastStatus) => void (statuses.push(s), log.push(`status ${s.status}`)),
      onEnd: (e: PollcastEnd) => void (ends.push(e), log.push('end')),
      onOpen: () => void log.push('open'),
      onReconnecting: () => void log.push('reconnecting'),
      onError: (e: unknown) => void (errors.push(e), log.push('error')),
    },
  };
}

describe('pollcast-client.js', () => {
  let bridge: Bridge;
  let token: string;
  const hadEventSource = 'EventSource' in globalThis;
  beforeAll(async () => {
    (globalThis as { EventSource?: unknown }).EventSource = EventSource;
    bridge = await startBridge({ AUTH: '', AUTH_JWT_SECRET: SECRET, SSE_RETRY_MS: '100' });
    token = await new SignJWT({ sessions: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));
  });
  afterAll(async () => {
    if (!hadEventSource) delete (globalThis as { EventSource?: unknown }).EventSource;
    await bridge?.close();
  });

  it('builds the stream URL with its query parameters and a path prefix', () => {
    expect(streamUrl('http://h:1/live', 'a b', { fromIndex: 3, includeDetails: false, accessToken: 't.k' })).toBe('http://h:1/live/sessions/a%20b/events?from_index=3&include_details=false&access_token=t.k');
    expect(streamUrl('http://h:1/', 'demo-1')).toBe('http://h:1/sessions/demo-1/events');
  });

  it('passes access_token, delivers status and events in order, and closes itself on end', async () => {
    const { sim, server, url } = bridge;
    sim.createSession('c-1', { initialEvents: 3 });
    const r = recorder();
    const stream = connect(url, 'c-1', { accessToken: token, ...r.options });
    await eventually(() => r.events.length === 3, 5000, 'the history');
    sim.appendEvents('c-1', 2);
    sim.finish('c-1');
    await eventually(() => r.ends.length === 1, 5000, 'end');
    expect(r.events.map((e) => e.index)).toEqual(range(5));
    expect(r.log[0]).toBe('open');
    expect(r.log[1]).toMatch(/^status /);
    expect(r.log.at(-1)).toBe('end');
    expect(r.ends[0]!.last_index).toBe(4);
    expect(stream.closed).toBe(true);
    expect(stream.lastIndex).toBe(4);
    await eventually(() => server.streams.countFor('c-1') === 0, 2000, 'the server side to close');
    expect(r.log).not.toContain('reconnecting');
  });

  it('reports a dropped connection as reconnecting and resumes with no gap and no repeat', async () => {
    const { sim, server, url } = bridge;
    sim.createSession('c-2', { initialEvents: 4 });
    const r = recorder();
    const stream = connect(url, 'c-2', { accessToken: token, fromIndex: 1, ...r.options });
    try {
      await eventually(() => r.events.length === 3, 5000, 'the history from index 1');
      server.streams.closeAll('shutdown');
      await eventually(() => r.log.includes('reconnecting'), 5000, 'onReconnecting');
      await eventually(() => r.log.filter((l) => l === 'open').length === 2, 5000, 'the second open');
      sim.appendEvents('c-2', 3);
      await eventually(() => r.events.length === 6, 5000, 'the live events');
      expect(r.events.map((e) => e.index)).toEqual(range(6, 1));
      expect(stream.closed).toBe(false);
    } finally {
      stream.close();
    }
    expect(stream.closed).toBe(true);
  });

  it('reports a refusal (no token: 401) through onError, once, without reconnecting', async () => {
    bridge.sim.createSession('c-3');
    const r = recorder();
    const stream = connect(bridge.url, 'c-3', r.options);
    await eventually(() => r.errors.length === 1, 5000, 'onError');
    expect(r.errors[0]).toEqual({ reason: 'refused', lastIndex: -1, status: 401, error: 'unauthorized', message: expect.stringMatching(/access token is required/) });
    expect(r.log).toEqual(['error']);
    expect(stream.closed).toBe(true);
  });
});
