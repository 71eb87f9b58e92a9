import { afterEach, describe, expect, it } from 'vitest';
import { createSimulator, UNKNOWN_STATS_MAX_IDS } from '../../src/simulator/index.ts';
import type { Simulator } from '../../src/simulator/index.ts';
import { changesUrl, get, within } from './helpers.ts';

const opened: Simulator[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((sim) => sim.close()));
});

/** Probes of random ids, as a scanner or a buggy client would send them. */
const PROBES = 10_000;
/** Requests in flight at once while probing. */
const PROBE_CONCURRENCY = 32;

async function probe(sim: Simulator, count: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const n = next++;
      const res = await get(n % 2 === 0 ? changesUrl(sim, `probe-${n}-${Math.random().toString(36).slice(2)}`) : `${sim.url}/sessions/probe-${n}/status`);
      expect(res.status).toBe(404);
      await res.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: PROBE_CONCURRENCY }, worker));
}

const heapUsed = (): number | undefined => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return undefined;
  gc();
  return process.memoryUsage().heapUsed;
};

describe('stats stay bounded', () => {
  it(`${PROBES} requests for random unknown ids in demo mode keep at most ${UNKNOWN_STATS_MAX_IDS} unknown ids`, async () => {
    const sim = await createSimulator({ demo: true, seed: 4 });
    opened.push(sim);
    await probe(sim, 1_000);
    const heapBefore = heapUsed();
    await within(probe(sim, PROBES), 60_000, 'probes');
    const size = sim.statsSize();
    expect(size.unknown).toBeLessThanOrEqual(UNKNOWN_STATS_MAX_IDS);
    expect(size.sessions).toBeLessThanOrEqual(sim.listSessions().length);
    expect(Object.keys(sim.allStats()).length).toBe(size.sessions + size.unknown);
    // Totals are running sums: forgetting old probes does not rewrite history.
    expect(sim.totals()).toMatchObject({ requests: PROBES + 1_000, changes: (PROBES + 1_000) / 2, status: (PROBES + 1_000) / 2 });
    const heapAfter = heapUsed();
    if (heapBefore !== undefined && heapAfter !== undefined) expect(heapAfter - heapBefore).toBeLessThan(8 * 1024 * 1024);
  });

  it('keeps a recent probe checkable and counts it exactly once the session exists', async () => {
    const sim = await createSimulator();
    opened.push(sim);
    await get(changesUrl(sim, 'later'));
    expect(sim.stats('later').changes).toBe(1);
    sim.createSession('later', { initialEvents: 1 });
    await get(changesUrl(sim, 'later'));
    expect(sim.stats('later').changes).toBe(2);
    expect(sim.statsSize()).toEqual({ sessions: 1, unknown: 0 });
  });

  it('moves a deleted session into the LRU, where newer probes eventually push it out', async () => {
    const sim = await createSimulator();
    opened.push(sim);
    sim.createSession('gone', { initialEvents: 1 });
    await get(changesUrl(sim, 'gone'));
    sim.deleteSession('gone');
    expect(sim.statsSize()).toEqual({ sessions: 0, unknown: 1 });
    expect(sim.stats('gone').changes).toBe(1);
    await probe(sim, UNKNOWN_STATS_MAX_IDS);
    expect(sim.stats('gone').changes).toBe(0);
    expect(sim.statsSize().unknown).toBe(UNKNOWN_STATS_MAX_IDS);
  });
});
