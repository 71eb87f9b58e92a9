/**
 * A client resuming near the end of a long session costs a fixed number of
 * upstream calls, not one per page of history (issue 13): the loop starts
 * next to the requested index, and older events are fetched only when asked.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { range, record, startBridge, type Bridge } from '../helpers/harness.ts';
import { ONE_ADDRESS_ENV } from '../resilience/helpers.ts';

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

describe('resuming near the end of a 100,000-event session', () => {
  it('gets the rest and the next live event with a handful of upstream calls, whatever the history', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, UPSTREAM_WAIT_SECONDS: '20' });
    const id = 'long-100k';
    bridge.sim.createSession(id, { initialEvents: 100_000, detailBytes: 20 });
    bridge.sim.resetStats();
    const r = record(`${bridge.url}/sessions/${id}/events`, { headers: { 'Last-Event-ID': '99990' } });
    await r.until((x) => x.indices().length === 9, 10_000);
    expect(r.indices()).toEqual(range(9, 99_991));
    const [live] = bridge.sim.appendEvents(id, 1);
    await r.until((x) => x.indices().includes(live!), 10_000);
    const s = bridge.sim.stats(id);
    // First contact (status), the page from 99,990, and the long-polls that brought the live event.
    expect(s.changes + s.status).toBeLessThanOrEqual(6);
    expect(r.messages.filter((m) => m.type === 'message').every((m) => m.data.index > 99_990)).toBe(true);
    r.close();
  });

  it('a later subscriber from an earlier index reads the older events from upstream, page by page, exactly', async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV, UPSTREAM_WAIT_SECONDS: '20' });
    const id = 'long-2';
    bridge.sim.createSession(id, { initialEvents: 1000, detailBytes: 20, finished: true });
    const tail = record(`${bridge.url}/sessions/${id}/events?from_index=900`);
    const end = await tail.ended();
    expect(tail.indices()).toEqual(range(100, 900));
    expect(end.last_index).toBe(999);
    const all = record(`${bridge.url}/sessions/${id}/events`);
    await all.ended();
    expect(all.indices()).toEqual(range(1000));
    // A third reader is served from memory: the history read for the second was kept.
    bridge.sim.resetStats();
    const again = record(`${bridge.url}/sessions/${id}/events`);
    await again.ended();
    expect(again.indices()).toEqual(range(1000));
    expect(bridge.sim.stats(id).changes).toBe(0);
  });

  it("a resume index past the session's events still ends with the right last_index", async () => {
    bridge = await startBridge({ ...ONE_ADDRESS_ENV });
    const id = 'short-1';
    bridge.sim.createSession(id, { initialEvents: 5, finished: true });
    const r = record(`${bridge.url}/sessions/${id}/events`, { headers: { 'Last-Event-ID': '40' } });
    const end = await r.ended();
    expect(r.indices()).toEqual([]);
    expect(end.last_index).toBe(4);
  });
});
