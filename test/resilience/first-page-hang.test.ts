/**
 * A first changes call that hangs: the stream opens on the `/status` snapshot
 * after FIRST_ANSWER_GRACE_MS, not when the call is abandoned (wait + margin,
 * 10 s here), and every event still arrives once, in order, after the retry.
 * A first `/status` call that hangs: the stream opens after the grace too,
 * with an `upstream_error` (CONTRACT.md section 3: an upstream timing out
 * before the stream starts is a 200 stream all the same), single and multi.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FIRST_ANSWER_GRACE_MS } from '../../src/upstream/poller.ts';
import { range, record, startBridge, type Bridge } from '../helpers/harness.ts';

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

describe('a hanging first page', () => {
  it('opens the stream after the grace, then delivers every event once after the call is abandoned', async () => {
    bridge = await startBridge({ UPSTREAM_WAIT_SECONDS: '2' });
    bridge.sim.createSession('hang-1', { initialEvents: 3, finished: true });
    bridge.sim.faults.script([{ kind: 'hang' }], { session: 'hang-1', endpoint: 'changes' });
    const started = Date.now();
    const res = await fetch(`${bridge.url}/sessions/hang-1/events`, { signal: AbortSignal.timeout(30_000) });
    const headersAfter = Date.now() - started;
    expect(res.status).toBe(200);
    // The hanging call is abandoned after its wait (0 for a first page) plus the 10 s margin; the headers come long before.
    expect(headersAfter).toBeGreaterThanOrEqual(FIRST_ANSWER_GRACE_MS - 100);
    expect(headersAfter).toBeLessThan(8000);
    await res.body?.cancel();

    // A recorder opened meanwhile gets the whole session once the retry answers.
    const r = record(`${bridge.url}/sessions/hang-1/events`);
    try {
      const end = await r.ended(30_000);
      expect(r.indices()).toEqual(range(3));
      expect(end.last_index).toBe(2);
      expect(r.statuses()[0].status).toBeTypeOf('string');
    } finally {
      r.es.close();
    }
  }, 40_000);
});

describe('a hanging first status call', () => {
  it('opens the stream after the grace with an upstream_error, then delivers every event once', async () => {
    bridge = await startBridge({ UPSTREAM_WAIT_SECONDS: '2' });
    bridge.sim.createSession('hang-s', { initialEvents: 3, finished: true });
    bridge.sim.createSession('done-s', { initialEvents: 2, finished: true });
    bridge.sim.faults.script([{ kind: 'hang' }], { session: 'hang-s', endpoint: 'status' });
    const started = Date.now();
    const r = record(`${bridge.url}/sessions/hang-s/events`);
    const multi = await fetch(`${bridge.url}/events?session=hang-s&session=done-s`, { signal: AbortSignal.timeout(30_000) });
    try {
      await r.until((x) => x.statuses().length >= 1, 8000);
      const openedAfter = Date.now() - started;
      expect(openedAfter).toBeGreaterThanOrEqual(FIRST_ANSWER_GRACE_MS - 100);
      // The hanging call is abandoned only after its 10 s margin: the stream opened long before.
      expect(openedAfter).toBeLessThan(8000);
      expect(r.statuses()[0].upstream_error).toMatch(/status/);
      expect(multi.status).toBe(200);
      expect(Date.now() - started).toBeLessThan(8000);
      const end = await r.ended(30_000);
      expect(r.indices()).toEqual(range(3));
      expect(end.last_index).toBe(2);
    } finally {
      r.es.close();
      await multi.body?.cancel();
    }
  }, 40_000);
});
