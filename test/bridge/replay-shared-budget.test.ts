/**
 * Issue 21: the running sessions' replay buffers share one byte budget
 * (REPLAY_MAX_BYTES): each keeps at most its equal share, so a hundred
 * sessions of ~100 KB screenshots no longer hold SESSION_MAX_BYTES each.
 * Older history is fetched again from the upstream by the readers that need it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { range, record, startBridge, type Bridge, type Recorder } from '../helpers/harness.ts';
import { scrape } from '../helpers/prom-text.ts';
import { ONE_ADDRESS_ENV } from '../resilience/helpers.ts';

/** The budget under test, for all sessions together (the default is 64 MiB). */
const SHARED_BYTES = 1_000_000;
const SESSIONS = 4;
/** Events of each session before the last append, and the size of each one's details. */
const EVENTS = 12;
const DETAIL_BYTES = 100_000;

let bridge: Bridge | undefined;
const recorders: Recorder[] = [];
afterEach(async () => {
  for (const r of recorders.splice(0)) r.close();
  await bridge?.close();
  bridge = undefined;
});

describe('replay within one byte budget for all running sessions', () => {
  it('keeps each running session within its share, and a reader from the start still gets every event once, older ones from the upstream', async () => {
    // Each session alone fits its own bound (SESSION_MAX_BYTES, 8 MiB); together they are several times the shared budget.
    expect(SESSIONS * (EVENTS + 1) * DETAIL_BYTES).toBeGreaterThan(4 * SHARED_BYTES);
    const b = (bridge = await startBridge({ ...ONE_ADDRESS_ENV, REPLAY_MAX_BYTES: String(SHARED_BYTES) }));
    const ids = range(SESSIONS).map((i) => `shots-${i}`);
    for (const id of ids) b.sim.createSession(id, { initialEvents: EVENTS, detailBytes: DETAIL_BYTES });
    const subs = ids.map((id) => record(`${b.url}/sessions/${id}/events`));
    recorders.push(...subs);
    await Promise.all(subs.map((s) => s.until((x) => x.indices().length === EVENTS, 20_000)));
    // One more event each, now that all four run: each feed trims to its quarter on this append.
    for (const id of ids) b.sim.appendEvents(id, 1);
    await Promise.all(subs.map((s) => s.until((x) => x.indices().length === EVENTS + 1, 20_000)));
    for (const s of subs) expect(s.indices()).toEqual(range(EVENTS + 1));

    const held = (await scrape(b.url)).value('pollcast_replay_buffer_bytes');
    expect(held, 'frames kept for replay by the four running sessions').toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(SHARED_BYTES);

    // A late reader of one running session from the start: every event once, in order; what the budget dropped came from the upstream.
    const fromUpstream = (await scrape(b.url)).value('pollcast_replays_total', { source: 'upstream' });
    const late = record(`${b.url}/sessions/${ids[0]}/events`);
    recorders.push(late);
    await late.until((x) => x.indices().length === EVENTS + 1, 20_000);
    expect(late.indices()).toEqual(range(EVENTS + 1));
    expect((await scrape(b.url)).value('pollcast_replays_total', { source: 'upstream' }), 'older history fetched again').toBe(fromUpstream + 1);
    expect((await scrape(b.url)).value('pollcast_replay_buffer_bytes'), 'history read again is kept only within the share').toBeLessThanOrEqual(SHARED_BYTES);
  });
});
