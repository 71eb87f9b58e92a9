import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import type { RealSessionStatus, RealTrajectoryChanges, Simulator, TerminalStatus } from '../../src/simulator/index.ts';
import { changesUrl, control, get } from './helpers.ts';

let sim: Simulator;

beforeEach(async () => {
  sim = await createSimulator({ api: 'real' });
});

afterEach(async () => {
  await sim.close();
});

const status = async (id: string) => (await (await get(`${sim.url}/sessions/${id}/status`)).json()) as RealSessionStatus;
const changes = async (id: string) => (await (await get(changesUrl(sim, id))).json()) as RealTrajectoryChanges;
const summary = (id: string) => sim.listSessions().find((s) => s.id === id)!;

describe('real dialect: statuses', () => {
  it('goes pending → running → idle → running → paused → running → completed', async () => {
    sim.createSession('life', { imageBytes: 0 });
    expect((await status('life')).status).toBe('pending');
    expect(summary('life').started_at).toBeNull();
    sim.appendEvents('life', 1);
    expect((await status('life')).status).toBe('running');
    expect(summary('life').started_at).toEqual(expect.any(String));
    for (const next of ['idle', 'running', 'paused', 'running']) {
      sim.setStatus('life', { status: next });
      expect(await status('life')).toMatchObject({ status: next, error: null });
      expect((await changes('life')).finished_at).toBeNull();
    }
    sim.finish('life');
    expect(await status('life')).toMatchObject({ status: 'completed', error: null });
    expect(await changes('life')).toMatchObject({ status: 'completed', finished_at: expect.any(String), answer: expect.any(String), error: null });
  });

  it.each(['failed', 'timed_out', 'interrupted'] as const)('ends %s with an error and no answer', async (terminal) => {
    sim.createSession('t', { initialEvents: 6, imageBytes: 0 });
    sim.finish('t', { status: terminal });
    expect(await status('t')).toMatchObject({ status: terminal, error: expect.any(String) });
    expect(await changes('t')).toMatchObject({ status: terminal, finished_at: expect.any(String), answer: null, error: expect.any(String) });
  });

  it('an error without a status means failed; timed_out may carry an answer', async () => {
    sim.createSession('f', { initialEvents: 1, imageBytes: 0 });
    sim.finish('f', { error: 'browser crashed' });
    expect(await status('f')).toMatchObject({ status: 'failed', error: 'browser crashed' });
    sim.createSession('to', { initialEvents: 1, imageBytes: 0 });
    sim.finish('to', { status: 'timed_out', answer: { partial: true } });
    expect(await changes('to')).toMatchObject({ status: 'timed_out', answer: { partial: true }, error: expect.any(String) });
  });

  it('refuses outcomes the Agent API cannot produce', () => {
    sim.createSession('x');
    expect(() => sim.finish('x', { status: 'exploded' as TerminalStatus })).toThrow(/status must be one of/);
    expect(() => sim.finish('x', { status: 'completed', error: 'no' })).toThrow(/no error/);
    expect(() => sim.finish('x', { status: 'failed', answer: 'no' })).toThrow(/no answer/);
    expect(() => sim.finish('x', { status: 'interrupted', answer: 'no' })).toThrow(/no answer/);
    expect(summary('x').status).toBe('pending');
  });

  it('setStatus takes pending, running, idle and paused only, and nothing after the end', () => {
    sim.createSession('s');
    for (const terminal of ['completed', 'failed', 'timed_out', 'interrupted', 'queued']) {
      expect(() => sim.setStatus('s', { status: terminal })).toThrow(/status must be one of/);
    }
    sim.finish('s', { status: 'interrupted' });
    expect(() => sim.setStatus('s', { status: 'running' })).toThrow(/already finished/);
    expect(summary('s').status).toBe('interrupted');
  });

  it('closingEvents appends the events that end a trajectory of that outcome', async () => {
    const kindOf = (e: { type: string; data: Record<string, unknown> } | undefined) => (e ? [e.type, e.data.kind ?? e.data.reason ?? null] : undefined);
    const outcomes = [
      ['ok', {}, ['AgentEvent', 'answer_event'], ['AgentCompletionEvent', 'finished']],
      ['ko', { error: 'boom' }, ['AgentEvent', 'error_event'], ['AgentErrorEvent', null]],
      ['late', { status: 'timed_out', answer: 'partial' }, ['AgentEvent', 'answer_event'], ['AgentCompletionEvent', 'timed_out']],
      ['stop', { status: 'interrupted' }, undefined, ['AgentCompletionEvent', 'interrupted']],
    ] as const;
    for (const [id, outcome, beforeLast, last] of outcomes) {
      sim.createSession(id, { initialEvents: 9, imageBytes: 0 });
      sim.finish(id, { ...outcome, closingEvents: true });
      const events = sim.events(id);
      expect(kindOf(events.at(-1))).toEqual(last);
      if (beforeLast) expect(kindOf(events.at(-2))).toEqual(beforeLast);
      else expect(events).toHaveLength(10);
    }
    expect(sim.events('ko').at(-1)!.data).toMatchObject({ error: 'boom', trace: expect.any(String) });
    // The answer_event carries the same answer that changes reports.
    expect(sim.events('ok').at(-2)!.data.answer).toEqual((await changes('ok')).answer);
  });
});

describe('real dialect: control API', () => {
  it('finishes with a status and changes the active status', async () => {
    await control(sim, 'POST', 'sessions', { id: 'c', initialEvents: 2, imageBytes: 0 });
    expect((await control(sim, 'POST', 'sessions/c/status', { status: 'paused' })).body.status).toBe('paused');
    expect((await status('c')).status).toBe('paused');
    expect((await control(sim, 'POST', 'sessions/c/status', { status: 'completed' })).status).toBe(400);
    const done = await control(sim, 'POST', 'sessions/c/finish', { status: 'timed_out', closingEvents: true });
    expect(done).toMatchObject({ status: 200, body: { status: 'timed_out', error: expect.any(String), finished_at: expect.any(String) } });
    expect(sim.events('c').at(-1)).toMatchObject({ type: 'AgentCompletionEvent', data: { reason: 'timed_out' } });
    expect((await control(sim, 'POST', 'sessions/c/status', { status: 'running' })).status).toBe(400);
    expect((await control(sim, 'POST', 'sessions/c/finish', {})).status).toBe(400);
    await control(sim, 'POST', 'sessions', { id: 'd' });
    expect((await control(sim, 'POST', 'sessions/d/finish', { status: 'nope' })).status).toBe(400);
    expect((await control(sim, 'POST', 'sessions/d/finish', { closingEvents: 'yes' })).status).toBe(400);
  });
});
