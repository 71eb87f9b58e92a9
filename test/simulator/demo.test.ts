import { afterEach, describe, expect, it, vi } from 'vitest';
import { createSimulator, DEMO_KEEP_FINISHED, DEMO_KEEP_FIRST, DEMO_MIN_LIVE } from '../../src/simulator/index.ts';
import type { Simulator } from '../../src/simulator/index.ts';
import { changesUrl, getChanges } from './helpers.ts';

const opened: Simulator[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((sim) => sim.close()));
  vi.useRealTimers();
});

async function startDemo(seed: number): Promise<Simulator> {
  const sim = await createSimulator({ demo: true, seed });
  opened.push(sim);
  return sim;
}

const live = (sim: Simulator) => sim.listSessions().filter((s) => s.finished_at === null);

describe('demo mode', () => {
  it('serves at least three live demo-N sessions over HTTP right away', async () => {
    const sim = await startDemo(1);
    const sessions = live(sim);
    expect(sessions.length).toBeGreaterThanOrEqual(DEMO_MIN_LIVE);
    for (const s of sessions) expect(s.id).toMatch(/^demo-\d+$/);
    // The first events come within 1.5 s; long-poll for one instead of sleeping.
    const body = await getChanges(changesUrl(sim, 'demo-1', { wait_for_seconds: 3 }));
    expect(body.new_events.length).toBeGreaterThan(0);
    expect(body.status).toBe('running');
  });

  it('is off by default', async () => {
    const sim = await createSimulator();
    opened.push(sim);
    expect(sim.listSessions()).toEqual([]);
  });

  it('over ten simulated minutes: always ≥3 live, finished ones end with answer/error, the first three and the 20 latest kept', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const sim = await startDemo(5);
    const seen = new Map<string, { status: string; lastType: string | undefined }>();
    for (let second = 0; second < 600; second++) {
      vi.advanceTimersByTime(1_000);
      expect(live(sim).length).toBeGreaterThanOrEqual(DEMO_MIN_LIVE);
      for (const s of sim.listSessions()) {
        if (s.finished_at !== null && !seen.has(s.id)) {
          const events = sim.events(s.id);
          seen.set(s.id, { status: s.status, lastType: events.at(-1)?.type });
          const durationMs = Date.parse(s.finished_at) - Date.parse(s.started_at ?? s.finished_at);
          expect(durationMs).toBeGreaterThanOrEqual(28_000);
          expect(durationMs).toBeLessThanOrEqual(62_000);
          // 30–60 s at one event every 0.3–1.5 s.
          expect(events.length).toBeGreaterThanOrEqual(15);
          expect(events.length).toBeLessThanOrEqual(210);
        }
      }
    }
    const finished = sim.listSessions().filter((s) => s.finished_at !== null);
    expect(finished.length).toBe(DEMO_KEEP_FIRST + DEMO_KEEP_FINISHED);
    expect(seen.size).toBeGreaterThan(DEMO_KEEP_FIRST + DEMO_KEEP_FINISHED);
    // The oldest finished sessions after the first three were deleted; the first three (the README's quick start
    // names them) are still readable ten minutes on.
    expect(sim.listSessions().some((s) => s.id === 'demo-4')).toBe(false);
    expect(() => sim.eventCount('demo-4')).toThrow();
    for (const id of ['demo-1', 'demo-2', 'demo-3']) expect(sim.eventCount(id)).toBeGreaterThan(0);
    for (const { status, lastType } of seen.values()) {
      expect(['completed', 'failed']).toContain(status);
      expect(lastType).toBe(status === 'completed' ? 'answer' : 'error');
    }
    const failed = [...seen.values()].filter((s) => s.status === 'failed').length;
    expect(failed).toBeGreaterThan(0);
    expect(failed).toBeLessThan(seen.size / 2);
  });

  it('is reproducible for a seed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const shape = (sim: Simulator) => sim.listSessions().map((s) => [s.id, s.status, sim.events(s.id).map((e) => e.type).join(',')]);
    const a = await startDemo(9);
    const b = await startDemo(9);
    const c = await startDemo(10);
    vi.advanceTimersByTime(90_000);
    expect(shape(a)).toEqual(shape(b));
    expect(shape(a)).not.toEqual(shape(c));
  });

  it('replaces a demo session that a test finishes or deletes', async () => {
    const sim = await startDemo(2);
    sim.finish('demo-1');
    sim.deleteSession('demo-2');
    expect(live(sim).length).toBeGreaterThanOrEqual(DEMO_MIN_LIVE);
    expect(sim.listSessions().map((s) => s.id)).toEqual(['demo-1', 'demo-3', 'demo-4', 'demo-5']);
  });
});
