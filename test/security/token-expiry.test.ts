/**
 * A token that expires on an open stream (CONTRACT.md section 4): the last
 * frame is `event: error` with `{"error": "token_expired"}`, then the
 * response ends; a fresh token resumes by `last_event_id` with no gap and no
 * repeat. Single and multi-session streams, raw fetch and a real EventSource.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventSource } from 'eventsource';
import { range, startBridge, waitUntil, type Bridge } from '../helpers/harness.ts';
import { parseSse, readAll } from '../helpers/multi.ts';
import { JWT_SECRET, token } from './helpers.ts';

let bridge: Bridge;
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  bridge = await startBridge({ AUTH: '', AUTH_JWT_SECRET: JWT_SECRET });
});
afterAll(() => bridge?.close());

/** The frames of a stream read to its end. */
async function framesOf(url: string): Promise<ReturnType<typeof parseSse>> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return parseSse(await readAll(res, 15_000)).filter((f) => !f.comment && f.retry === undefined);
}

describe('a token expiring on an open stream', () => {
  it('ends a single stream with event: error token_expired, and a fresh token resumes by last_event_id', async () => {
    bridge.sim.createSession('te-1', { initialEvents: 3 });
    const frames = await framesOf(`${bridge.url}/sessions/te-1/events?access_token=${await token(['te-1'], { exp: now() + 2 })}`);
    expect(frames.at(-1)).toMatchObject({ event: 'error', data: '{"error":"token_expired"}' });
    const had = frames.filter((f) => f.event === undefined).map((f) => JSON.parse(f.data!).index as number);
    expect(had).toEqual([0, 1, 2]);
    bridge.sim.appendEvents('te-1', 2);
    bridge.sim.finish('te-1');
    const rest = await framesOf(`${bridge.url}/sessions/te-1/events?last_event_id=${had.at(-1)}&access_token=${await token(['te-1'])}`);
    const more = rest.filter((f) => f.event === undefined).map((f) => JSON.parse(f.data!).index as number);
    expect([...had, ...more]).toEqual(range(5));
    expect(rest.at(-1)?.event).toBe('end');
  });

  it('ends the stream at the token\'s exp: no event the upstream emitted after it is sent', async () => {
    // An event every 50 ms for 10 s: a stream that outlived its token would carry some emitted after exp.
    bridge.sim.createSession('te-at', { initialEvents: 1, emitEveryMs: 50, batchSize: 1, emitCount: 200 });
    const exp = now() + 2;
    const frames = await framesOf(`${bridge.url}/sessions/te-at/events?access_token=${await token(['te-at'], { exp })}`);
    expect(frames.at(-1)).toMatchObject({ event: 'error', data: '{"error":"token_expired"}' });
    const emitted = frames.filter((f) => f.event === undefined).map((f) => Date.parse(JSON.parse(f.data!).timestamp as string));
    expect(emitted.length).toBeGreaterThan(10);
    // (100 ms for a busy machine's timer and the upstream hop; a check once a second let through up to a second's.)
    expect(emitted.filter((t) => t >= exp * 1000 + 100), 'events emitted after exp').toEqual([]);
  });

  it('ends a multi-session stream the same way, and its cursor resumes every session', async () => {
    bridge.sim.createSession('te-2', { initialEvents: 2 });
    bridge.sim.createSession('te-3', { initialEvents: 1 });
    const url = (t: string, extra = '') => `${bridge.url}/events?sessions=te-2,te-3&access_token=${t}${extra}`;
    const frames = await framesOf(url(await token(['te-2', 'te-3'], { exp: now() + 2 })));
    expect(frames.at(-1)).toMatchObject({ event: 'error', data: '{"error":"token_expired"}' });
    const events = frames.filter((f) => f.event === undefined);
    expect(events.length).toBe(3);
    bridge.sim.appendEvents('te-2', 1);
    bridge.sim.finish('te-2');
    bridge.sim.finish('te-3');
    const rest = await framesOf(url(await token(['te-2', 'te-3']), `&last_event_id=${encodeURIComponent(events.at(-1)!.id!)}`));
    const all = [...events, ...rest.filter((f) => f.event === undefined)].map((f) => JSON.parse(f.data!) as { session: string; index: number });
    expect(all.filter((e) => e.session === 'te-2').map((e) => e.index)).toEqual(range(3));
    expect(all.filter((e) => e.session === 'te-3').map((e) => e.index)).toEqual(range(1));
    expect(rest.filter((f) => f.event === 'end').length).toBe(2);
  });

  it('reaches a real EventSource as an `error` message carrying the code', async () => {
    bridge.sim.createSession('te-4', { initialEvents: 1 });
    const es = new EventSource(`${bridge.url}/sessions/te-4/events?access_token=${await token(['te-4'], { exp: now() + 2 })}`);
    const codes: string[] = [];
    const waiters = new Set<() => void>();
    es.addEventListener('error', (e) => {
      const data = (e as unknown as MessageEvent).data as string | undefined;
      if (typeof data === 'string') codes.push((JSON.parse(data) as { error: string }).error);
      for (const w of [...waiters]) w();
    });
    try {
      await waitUntil(waiters, () => codes.length > 0, 10_000, () => `codes ${JSON.stringify(codes)}`);
      expect(codes).toEqual(['token_expired']);
    } finally {
      es.close();
    }
  });
});
