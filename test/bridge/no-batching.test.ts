/**
 * Issue 21: push without batching delay (contract section 5, revised: the
 * rate bound counts only the loop's calls that came back empty or failed).
 * After an answer that brought events the next long-poll goes at once, so a
 * busy session costs no more upstream calls than a naive long-poll loop and
 * a single event is not held back; an upstream that answers empty at once
 * still meets the rate gate.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { naiveLongPoll } from '../../bench/naive-long-poll.ts';
import { eventually, record, startBridge, type Bridge } from '../helpers/harness.ts';
import { LOOP_REQUEST_BURST, LOOP_REQUESTS_PER_SECOND } from '../../src/upstream/backoff.ts';
import { HELD_MEANS_CAUGHT_UP_MS } from '../../src/upstream/poller.ts';
import { UNSETTLED_WAIT_MS } from '../../src/http/dropin-routes.ts';
import { logRequests, maxGatedRequestsWithin, maxInWindow, ONE_ADDRESS_ENV } from '../resilience/helpers.ts';

/** A busy session's rate (events per second) and how many it emits here. */
const EVENTS_PER_SECOND = 20;
const EVENTS = 60;
/** `wait_for_seconds` of the latency test: several seconds, so that a bound of a quarter of it is no timing race. */
const QUIET_WAIT_S = 8;
/** A burst of whole pages (the loop's and the naive loop's page size is 100). */
const BURST_EVENTS = 300;
/** Empty answers the hot upstream gives before it relents. */
const HOT_ANSWERS = 16;

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

/** The naive loop of the benchmark's baseline: one long-poll per answer, from the next index, until stopped. */
function runNaiveLoop(upstreamUrl: string, id: string): { next(): number; stop(): Promise<void> } {
  const client = naiveLongPoll(upstreamUrl);
  let next = 0;
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      const r = await client.changesText(id, next).catch(() => null);
      if (r?.status === 200) next += (JSON.parse(r.text) as { new_events: unknown[] }).new_events.length;
    }
  })();
  return {
    next: () => next,
    async stop() {
      stopped = true;
      client.close();
      await done;
    },
  };
}

const heldLongPoll = (b: Bridge, id: string) => b.sim.stats(id).inFlightChanges === 1;

/**
 * A subscriber of pollcast's session `id` beside the naive loop on `naiveId`, once both hold a long-poll,
 * with the simulator's counters reset: from here both get the same appends at the same moments.
 */
async function sideBySide(b: Bridge, id: string, naiveId: string) {
  b.sim.createSession(id);
  b.sim.createSession(naiveId);
  const sub = record(`${b.url}/sessions/${id}/events`);
  const naive = runNaiveLoop(b.sim.url, naiveId);
  const close = async () => {
    sub.close();
    await naive.stop();
  };
  try {
    await sub.until((x) => x.statuses().length > 0);
    await eventually(() => heldLongPoll(b, id) && heldLongPoll(b, naiveId), 10_000, 'both long-polls to be held');
  } catch (err) {
    await close();
    throw err;
  }
  b.sim.resetStats();
  return { sub, naive, close };
}

describe('no batching delay', () => {
  it('a session emitting 20 events/s costs no more changes calls than the naive long-poll loop', async () => {
    const b = (bridge = await startBridge(ONE_ADDRESS_ENV));
    // Counted from here: both loops are waiting, and each gets the same appends at the same moments.
    const { sub, naive, close } = await sideBySide(b, 'pushed', 'naive');
    try {
      const t0 = performance.now();
      for (let k = 0; k < EVENTS; k++) {
        b.sim.appendEvents('pushed', 1);
        b.sim.appendEvents('naive', 1);
        await new Promise((resolve) => setTimeout(resolve, 1000 / EVENTS_PER_SECOND));
      }
      const emittingS = (performance.now() - t0) / 1000;
      await sub.until((x) => x.indices().length === EVENTS, 20_000);
      await eventually(() => naive.next() === EVENTS, 20_000, 'the naive loop to read every event');
      // Both are back to a held long-poll, so the last call is counted on both sides.
      await eventually(() => heldLongPoll(b, 'pushed') && heldLongPoll(b, 'naive'), 10_000, 'both long-polls to be held again');
      const pushed = b.sim.stats('pushed').changes;
      const baseline = b.sim.stats('naive').changes;
      expect(pushed).toBeLessThanOrEqual(baseline);
      // Not batched: the gate (4 calls a second after its burst of 8) would have held pollcast to far fewer.
      expect(pushed).toBeGreaterThan(LOOP_REQUEST_BURST + LOOP_REQUESTS_PER_SECOND * emittingS + 1);
    } finally {
      await close();
    }
  });

  it('a burst of full pages on a live session costs one call per page, no empty catch-up call, as the naive loop', async () => {
    const b = (bridge = await startBridge(ONE_ADDRESS_ENV));
    const { sub, naive, close } = await sideBySide(b, 'burst', 'naive-burst');
    try {
      b.sim.appendEvents('burst', BURST_EVENTS);
      b.sim.appendEvents('naive-burst', BURST_EVENTS);
      await sub.until((x) => x.indices().length === BURST_EVENTS, 20_000);
      await eventually(() => naive.next() === BURST_EVENTS, 20_000, 'the naive loop to read every event');
      await eventually(() => heldLongPoll(b, 'burst') && heldLongPoll(b, 'naive-burst'), 10_000, 'both long-polls to be held again');
      const pushed = b.sim.stats('burst');
      // Counted since the reset (a call counts when it arrives): the two pages after the one the held long-poll
      // answered, and the long-poll held now. The old loop asked once more with wait 0 after the last full page.
      expect(b.sim.stats('naive-burst').changes).toBe(BURST_EVENTS / 100);
      expect(pushed.changes).toBeLessThanOrEqual(b.sim.stats('naive-burst').changes);
      expect(pushed.changesByWait.zero).toBe(0);
      expect(sub.indices()).toEqual(Array.from({ length: BURST_EVENTS }, (_, i) => i));
      // The held long-poll is what marks the loop caught up: a drop-in caller asking with wait 0 is told
      // "nothing new" about a second later, not after the unsettled wait (10 s).
      const t0 = performance.now();
      const res = await fetch(`${b.url}/sessions/burst/changes?from_index=${BURST_EVENTS}&wait_for_seconds=0`);
      expect(res.status).toBe(204);
      expect(performance.now() - t0).toBeLessThan(HELD_MEANS_CAUGHT_UP_MS + 2_000);
      expect(HELD_MEANS_CAUGHT_UP_MS + 2_000).toBeLessThan(UNSETTLED_WAIT_MS);
    } finally {
      await close();
    }
  });

  it('a single event on a quiet session arrives well under the wait (no gate), also right after a busy spell', async () => {
    const b = (bridge = await startBridge({ ...ONE_ADDRESS_ENV, UPSTREAM_WAIT_SECONDS: String(QUIET_WAIT_S) }));
    b.sim.createSession('quiet');
    const sub = record(`${b.url}/sessions/quiet/events`);
    try {
      await sub.until((x) => x.statuses().length > 0);
      // A busy spell first: with a gate on every call it would have spent the burst, and a following call would wait.
      for (let k = 0; k < 20; k++) {
        b.sim.appendEvents('quiet', 1);
        await new Promise((resolve) => setTimeout(resolve, 1000 / EVENTS_PER_SECOND));
      }
      await sub.until((x) => x.indices().length === 20, 20_000);
      for (let k = 0; k < 3; k++) {
        await eventually(() => heldLongPoll(b, 'quiet'), 10_000, 'the long-poll to be held');
        const t0 = performance.now();
        const [index] = b.sim.appendEvents('quiet', 1);
        await sub.until((x) => x.indices().includes(index!), QUIET_WAIT_S * 1000);
        expect(performance.now() - t0).toBeLessThan((QUIET_WAIT_S * 1000) / 4);
      }
      expect(sub.indices()).toEqual(Array.from({ length: 23 }, (_, i) => i));
    } finally {
      sub.close();
    }
  });

  it('an upstream answering 200 with no events at once stays within the rate bound', async () => {
    const b = (bridge = await startBridge({ ...ONE_ADDRESS_ENV, UPSTREAM_WAIT_SECONDS: '5' }));
    const log = logRequests(b.sim);
    // Events wait upstream, yet each of the first changes calls answers 200 with an empty list at once.
    b.sim.createSession('hot');
    b.sim.appendEvents('hot', 3);
    b.sim.faults.script(Array.from({ length: HOT_ANSWERS }, () => ({ kind: 'short-limit', max: 0 })), { session: 'hot', endpoint: 'changes' });
    const sub = record(`${b.url}/sessions/hot/events`);
    try {
      await eventually(() => b.sim.faults.pending() === 0, 30_000, 'every empty answer to be served');
      await sub.until((x) => x.indices().length === 3, 10_000);
      const requests = log.of('hot').filter((r) => r.t <= log.of('hot', 'changes').findLast((c) => c.fault)!.t);
      // The first contact's status, the first changes call (wait 0: reads what is there), then per empty
      // long-poll answer the status check it causes and the next call: all but that first changes call are gated.
      expect(requests.length).toBe(2 * HOT_ANSWERS - 1);
      const span = requests.at(-1)!.t - requests[0]!.t;
      expect(requests.length).toBeLessThanOrEqual(maxGatedRequestsWithin(span) + 1);
      expect(maxInWindow(requests.map((r) => r.t), 1000)).toBeLessThanOrEqual(maxGatedRequestsWithin(1000));
      // Past the burst each counted call waits its token: no hot loop however fast the upstream answers.
      expect(span).toBeGreaterThanOrEqual(((requests.length - 1 - LOOP_REQUEST_BURST - 1) / LOOP_REQUESTS_PER_SECOND) * 1000);
      expect(sub.indices()).toEqual([0, 1, 2]);
    } finally {
      sub.close();
    }
  });
});
