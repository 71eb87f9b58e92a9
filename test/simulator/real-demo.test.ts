import { afterEach, describe, expect, it, vi } from 'vitest';
import { createSimulator, DEMO_KEEP_FINISHED, DEMO_KEEP_FIRST, DEMO_MIN_LIVE } from '../../src/simulator/index.ts';
import type { RealTrajectoryChanges, SessionEvent, Simulator } from '../../src/simulator/index.ts';
import { changesUrl, get } from './helpers.ts';

const opened: Simulator[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((sim) => sim.close()));
  vi.useRealTimers();
});

async function startDemo(seed: number): Promise<Simulator> {
  const sim = await createSimulator({ api: 'real', demo: true, seed });
  opened.push(sim);
  return sim;
}

const live = (sim: Simulator) => sim.listSessions().filter((s) => s.finished_at === null);
const label = (e: SessionEvent | undefined) => (e ? `${e.type}${e.type === 'AgentEvent' ? `:${String(e.data.kind)}` : ''}${e.data.reason ? `:${String(e.data.reason)}` : ''}` : '');

/** The last events a finished trajectory must end with, by status. */
const ENDINGS: Record<string, RegExp> = {
  completed: /AgentEvent:answer_event AgentCompletionEvent:finished$/,
  failed: /AgentEvent:error_event AgentErrorEvent$/,
  timed_out: /AgentCompletionEvent:timed_out$/,
  interrupted: /AgentCompletionEvent:interrupted$/,
};

describe('demo mode, real dialect', () => {
  it('serves at least three live demo-N sessions under /api/v2 right away', async () => {
    const sim = await startDemo(1);
    expect(live(sim).length).toBeGreaterThanOrEqual(DEMO_MIN_LIVE);
    const res = await get(changesUrl(sim, 'demo-1', { wait_for_seconds: 3 }));
    expect(res.status).toBe(200);
    const body = (await res.json()) as RealTrajectoryChanges;
    expect(body.new_events[0]!.type).toBe('RequestStartEvent');
    expect(body.status).toBe('running');
  });

  it('over ten simulated minutes: ≥3 live, mixed outcomes with the right closing events, some idle or paused on the way', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const sim = await startDemo(5);
    const finished = new Map<string, { status: string; ending: string }>();
    const pausedIn = new Map<string, Set<string>>();
    for (let second = 0; second < 600; second++) {
      vi.advanceTimersByTime(1_000);
      expect(live(sim).length).toBeGreaterThanOrEqual(DEMO_MIN_LIVE);
      for (const s of sim.listSessions()) {
        if (s.status === 'idle' || s.status === 'paused') {
          pausedIn.set(s.id, (pausedIn.get(s.id) ?? new Set()).add(s.status));
          // Going idle is announced by an event; a pause is a status change alone.
          const last = sim.events(s.id).at(-1)!;
          if (s.status === 'idle') expect(last).toMatchObject({ type: 'ActiveStateChangeEvent', data: { state: 'idle' } });
          else expect(last.type).toBe('MetricsUpdateEvent');
        }
        if (s.finished_at === null || finished.has(s.id)) continue;
        const events = sim.events(s.id);
        finished.set(s.id, { status: s.status, ending: events.slice(-2).map(label).join(' ') });
        const durationMs = Date.parse(s.finished_at) - Date.parse(s.started_at ?? s.finished_at);
        expect(durationMs).toBeGreaterThanOrEqual(28_000);
        expect(durationMs).toBeLessThanOrEqual(62_000);
        expect(events.length).toBeGreaterThanOrEqual(20);
        expect(events.slice(0, 5).map((e) => e.type)).toEqual(['RequestStartEvent', 'RequestStartDispatchedEvent', 'AgentStartedEvent', 'LiveViewUrlEvent', 'ActiveStateChangeEvent']);
      }
    }
    expect(sim.listSessions().filter((s) => s.finished_at !== null)).toHaveLength(DEMO_KEEP_FIRST + DEMO_KEEP_FINISHED);
    for (const [id, { status, ending }] of finished) expect(ending, `${id} ${status}`).toMatch(ENDINGS[status] ?? /^never$/);
    const count = (status: string) => [...finished.values()].filter((f) => f.status === status).length;
    expect(count('completed')).toBeGreaterThan(finished.size / 2);
    expect(count('failed')).toBeGreaterThan(0);
    expect(count('timed_out') + count('interrupted')).toBeGreaterThan(0);
    const pauses = [...pausedIn.values()];
    expect(pauses.some((states) => states.has('idle'))).toBe(true);
    expect(pauses.some((states) => states.has('paused'))).toBe(true);
    expect(pauses.length).toBeLessThan(finished.size);
  });

  it('is reproducible for a seed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const shape = (sim: Simulator) => sim.listSessions().map((s) => [s.id, s.status, sim.events(s.id).map(label).join(',')]);
    const a = await startDemo(9);
    const b = await startDemo(9);
    const c = await startDemo(10);
    vi.advanceTimersByTime(90_000);
    expect(shape(a)).toEqual(shape(b));
    expect(shape(a)).not.toEqual(shape(c));
  });
});
