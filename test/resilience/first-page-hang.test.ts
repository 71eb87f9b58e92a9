/**
 * A first changes call that hangs: the stream opens on the `/status` snapshot
 * after FIRST_ANSWER_GRACE_MS, not when the call is abandoned (wait + margin,
 * 10 s here), and every event still arrives once, in order, after the retry.
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
