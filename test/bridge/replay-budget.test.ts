/**
 * Issue 21: a session's replay buffer keeps the newest frames within a byte
 * budget (SESSION_MAX_BYTES); older
 * history is fetched again from the upstream by the readers that need it.
 * With ~100 KB events (screenshots) the buffer holds only the last few.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { range, record, startBridge, type Bridge } from '../helpers/harness.ts';
import { ONE_ADDRESS_ENV } from '../resilience/helpers.ts';

/** The budget under test (the default, SESSION_REPLAY_BUDGET_BYTES, is larger: a whole typical run). */
const BUDGET_BYTES = 1024 * 1024;
/** Events of the session and the size of each one's details: together several times the budget. */
const EVENTS = 40;
const DETAIL_BYTES = 100_000;

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

describe('replay within a byte budget per session', () => {
  it('keeps the newest ~100 KB events in memory and fetches older history again from the upstream', async () => {
    expect(EVENTS * DETAIL_BYTES).toBeGreaterThan(3 * BUDGET_BYTES);
    const b = (bridge = await startBridge({ ...ONE_ADDRESS_ENV, SESSION_MAX_BYTES: String(BUDGET_BYTES) }));
    b.sim.createSession('shots', { initialEvents: EVENTS, finished: true, detailBytes: DETAIL_BYTES });
    const first = record(`${b.url}/sessions/shots/events`);
    const end = await first.ended(20_000);
    first.close();
    expect(first.indices()).toEqual(range(EVENTS));
    expect(end.last_index).toBe(EVENTS - 1);

    // A resume just before the end is served from the buffer: no upstream call.
    b.sim.resetStats();
    const near = record(`${b.url}/sessions/shots/events?last_event_id=${EVENTS - 3}`);
    await near.ended(20_000);
    near.close();
    expect(near.indices()).toEqual([EVENTS - 2, EVENTS - 1]);
    expect(b.sim.stats('shots').changes).toBe(0);

    // A late reader from the start gets every event exactly once; what the budget dropped came from the upstream.
    const late = record(`${b.url}/sessions/shots/events`);
    await late.ended(20_000);
    late.close();
    expect(late.indices()).toEqual(range(EVENTS));
    expect(b.sim.stats('shots').changes).toBeGreaterThan(0);
  });
});
