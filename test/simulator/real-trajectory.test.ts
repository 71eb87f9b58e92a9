import { afterEach, describe, expect, it } from 'vitest';
import { createSimulator, DEFAULT_IMAGE_BYTES } from '../../src/simulator/index.ts';
import type { RealMetrics, RealTrajectoryChanges, SessionEvent, Simulator } from '../../src/simulator/index.ts';
import { changesUrl, get, parsePng } from './helpers.ts';

const opened: Simulator[] = [];

async function start(seed = 1): Promise<Simulator> {
  const sim = await createSimulator({ api: 'real', seed });
  opened.push(sim);
  return sim;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((sim) => sim.close()));
});

const START_TYPES = ['RequestStartEvent', 'RequestStartDispatchedEvent', 'AgentStartedEvent', 'LiveViewUrlEvent', 'ActiveStateChangeEvent'];
const STEP_KINDS = ['policy_event', 'tool_result', 'observation_event', 'message_event'];
const TOOLS = ['click', 'type', 'goto', 'scroll'];

const kinds = (events: SessionEvent[]) => events.map((e) => (e.type === 'AgentEvent' ? String(e.data.kind) : e.type));
const observations = (events: SessionEvent[]) => events.filter((e) => e.data.kind === 'observation_event');

describe('real dialect: trajectories', () => {
  it('start with the request, agent and live-view events, then steps of policy, tool_result, observation and metrics', async () => {
    const sim = await start();
    sim.createSession('t', { initialEvents: 60 });
    const events = sim.events('t');
    expect(events.slice(0, 5).map((e) => e.type)).toEqual(START_TYPES);
    expect(events[3]!.data.url).toMatch(/^https:\/\/live\.example\.invalid\/sessions\/t\?token=[0-9a-f]{8}$/);
    expect(events[4]!.data).toMatchObject({ state: 'running' });

    // The rest is a sequence of steps: policy_event, tool_result, observation_event, [message_event], MetricsUpdateEvent.
    const steps = kinds(events.slice(5)).join(' ').split(/(?= policy_event)/).map((s) => s.trim());
    for (const step of steps.slice(0, -1)) expect(step).toMatch(/^policy_event tool_result observation_event (message_event )?MetricsUpdateEvent$/);
    for (const kind of kinds(events.slice(5))) expect([...STEP_KINDS, 'MetricsUpdateEvent']).toContain(kind);
    sim.createSession('long', { initialEvents: 200, imageBytes: 0 });
    // message_event is occasional: over ~45 steps it shows up, but not in every step.
    const messages = kinds(sim.events('long')).filter((k) => k === 'message_event').length;
    expect(messages).toBeGreaterThan(0);
    expect(messages).toBeLessThan(sim.events('long').filter((e) => e.data.kind === 'policy_event').length / 2);

    for (const event of events) {
      expect(Object.keys(event).sort()).toEqual(['data', 'timestamp', 'type']);
      expect(typeof event.data.emitted_at_ms).toBe('number');
      if (event.type === 'AgentEvent') expect(STEP_KINDS).toContain(event.data.kind);
    }
    const policies = events.filter((e) => e.data.kind === 'policy_event');
    expect(policies.map((e) => e.data.step)).toEqual(policies.map((_, i) => i + 1));
    for (const policy of policies) {
      expect(policy.data.thought).toEqual(expect.any(String));
      const calls = policy.data.tool_calls as Array<{ name: string; args: unknown }>;
      expect(calls).toHaveLength(1);
      expect(TOOLS).toContain(calls[0]!.name);
      expect(calls[0]!.args).toEqual(expect.any(Object));
    }
  });

  it('grows the metrics step by step, as MetricsUpdateEvent and changes both show', async () => {
    const sim = await start();
    sim.createSession('m', { initialEvents: 40, imageBytes: 0 });
    const updates = sim.events('m').filter((e) => e.type === 'MetricsUpdateEvent').map((e) => (e.data as unknown as { metrics: RealMetrics }).metrics);
    expect(updates.length).toBeGreaterThan(4);
    for (let i = 1; i < updates.length; i++) {
      expect(updates[i]!.steps).toBe(updates[i - 1]!.steps + 1);
      expect(updates[i]!.total_cost).toBeGreaterThan(updates[i - 1]!.total_cost);
    }
    const body = (await (await get(changesUrl(sim, 'm'))).json()) as RealTrajectoryChanges;
    expect(body.metrics.steps).toBeGreaterThanOrEqual(updates.at(-1)!.steps);
    expect(body.metrics.cost_per_model[0]).toEqual({ name: expect.stringMatching(/^holo3-/), input_tokens: expect.any(Number), output_tokens: expect.any(Number), total_cost: expect.any(Number) });
  });

  it('observation events carry a valid PNG screenshot of about imageBytes (a few KB by default), a url and a title', async () => {
    const sim = await start();
    sim.createSession('o', { initialEvents: 30 });
    const seen = observations(sim.events('o'));
    expect(seen.length).toBeGreaterThanOrEqual(5);
    for (const event of seen) {
      const image = event.data.image as string;
      const png = parsePng(Buffer.from(image, 'base64'));
      expect(png).toMatchObject({ bitDepth: 8, colorType: 2, width: event.data.width, height: event.data.height });
      expect(image.length).toBeGreaterThan(DEFAULT_IMAGE_BYTES * 0.9);
      expect(image.length).toBeLessThan(DEFAULT_IMAGE_BYTES * 1.1);
      expect(event.data.url).toMatch(/^https:\/\/[a-z]+\.example\.(com|net|org)\//);
      expect(event.data.title).toEqual(expect.any(String));
    }
  });

  it('imageBytes makes events of about 200 KB, served whole over HTTP', async () => {
    const sim = await start();
    sim.createSession('big', { initialEvents: 9, imageBytes: 200_000 });
    const body = (await (await get(changesUrl(sim, 'big'))).json()) as RealTrajectoryChanges;
    const big = observations(body.new_events as SessionEvent[]);
    expect(big).toHaveLength(1);
    const size = JSON.stringify(big[0]).length;
    expect(size).toBeGreaterThan(180_000);
    expect(size).toBeLessThan(220_000);
    expect(parsePng(Buffer.from(big[0]!.data.image as string, 'base64')).width).toBeGreaterThan(320);
  });

  it('imageBytes 0 leaves the screenshot out; imageBytes is bounded', async () => {
    const sim = await start();
    sim.createSession('none', { initialEvents: 12, imageBytes: 0 });
    for (const event of observations(sim.events('none'))) expect(event.data.image).toBeUndefined();
    expect(() => sim.createSession('huge', { imageBytes: 100 * 1024 * 1024 })).toThrow(/imageBytes/);
  });

  it('is the same trajectory for the same seed and session id', async () => {
    const strip = (events: SessionEvent[]) => events.map(({ type, data }) => ({ type, data: { ...data, emitted_at_ms: 0 } }));
    const [a, b, c] = [await start(3), await start(3), await start(4)];
    for (const sim of [a, b, c]) sim.createSession('same', { initialEvents: 25 });
    expect(strip(a.events('same'))).toEqual(strip(b.events('same')));
    expect(strip(a.events('same'))).not.toEqual(strip(c.events('same')));
  });

  it('keeps the timer fields: emitEveryMs, batchSize, emitCount, finishAfterEmit', async () => {
    const sim = await start();
    sim.createSession('timed', { emitEveryMs: 10, batchSize: 3, emitCount: 14, imageBytes: 0 });
    const deadline = performance.now() + 5_000;
    while (sim.listSessions()[0]!.finished_at === null && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(sim.listSessions()[0]).toMatchObject({ status: 'completed', events: 14 });
    expect(sim.appendEvents('timed', 2)).toEqual([14, 15]);
  });
});
