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
  it('trims quiet sessions as others join, serves a reader from the start exactly once, and keeps a finished session\'s history again within its own bound', async () => {
    // Each session alone fits its own bound (SESSION_MAX_BYTES, 8 MiB); together they are several times the shared budget.
    const b = (bridge = await startBridge({ ...ONE_ADDRESS_ENV, REPLAY_MAX_BYTES: String(SHARED_BYTES) }));
    const ids = range(SESSIONS).map((i) => `shots-${i}`);
    // One after another: each session reads its history alone, under a larger share than it has once all run.
    for (const id of ids) {
      b.sim.createSession(id, { initialEvents: EVENTS, detailBytes: DETAIL_BYTES });
      const sub = record(`${b.url}/sessions/${id}/events`);
      recorders.push(sub);
      await sub.until((x) => x.indices().length === EVENTS, 20_000);
      expect(sub.indices()).toEqual(range(EVENTS));
    }
    // The first three are quiet since: they were trimmed when the others joined, not at an append.
    const held = (await scrape(b.url)).value('pollcast_replay_buffer_bytes');
    expect(held, 'frames kept for replay by the four running sessions').toBeGreaterThan(0);
    expect(held, `the four sessions' ${(SESSIONS * EVENTS * DETAIL_BYTES / 1e6).toFixed(1)} MB of events`).toBeLessThanOrEqual(SHARED_BYTES);

    // A late reader of a running session from the start: every event once, in order; what the budget dropped came from the upstream.
    const replays = async () => (await scrape(b.url)).value('pollcast_replays_total', { source: 'upstream' });
    const before = await replays();
    const late = record(`${b.url}/sessions/${ids[0]}/events`);
    recorders.push(late);
    await late.until((x) => x.indices().length === EVENTS, 20_000);
    expect(late.indices()).toEqual(range(EVENTS));
    expect(await replays(), 'older history fetched again').toBe(before + 1);
    expect((await scrape(b.url)).value('pollcast_replay_buffer_bytes'), 'history read again is kept only within the share').toBeLessThanOrEqual(SHARED_BYTES);

    // Once finished, a session is bounded by its own SESSION_MAX_BYTES again: the history a late reader reads back is
    // kept, so the next late reader is served from memory (contract section 5), whatever the running sessions share.
    b.sim.finish(ids[1]!, { answer: 'done' });
    await recorders[1]!.ended(20_000);
    const first = record(`${b.url}/sessions/${ids[1]}/events`);
    recorders.push(first);
    await first.ended(20_000);
    expect(first.indices()).toEqual(range(EVENTS));
    const afterFirst = await replays();
    expect(afterFirst, 'the first late reader of the finished session read its start from the upstream').toBe(before + 2);
    const second = record(`${b.url}/sessions/${ids[1]}/events`);
    recorders.push(second);
    await second.ended(20_000);
    expect(second.indices()).toEqual(range(EVENTS));
    expect(await replays(), 'the second one was served from memory').toBe(afterFirst);
  });
});
