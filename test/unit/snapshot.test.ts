/** Merging what /changes and /status each say of a session. */
import { describe, expect, it } from 'vitest';
import { changesClaimOver, isKnown, statusDropInBody, statusSaysOver, UNKNOWN_SNAPSHOT, withChanges, withStatus } from '../../src/upstream/snapshot.ts';
import type { ChangesTop } from '../../src/upstream/types.ts';

const top = (over: Partial<ChangesTop> = {}): ChangesTop => ({
  status: 'running',
  started_at: '2026-05-07T14:30:02Z',
  finished_at: null,
  error: null,
  answer: null,
  metrics: { steps: 3, total_cost: 0.01 },
  extra: {},
  ...over,
});
const realStatus = (status: string, extra: Record<string, unknown> = {}) => ({ status, error: null, steps: 2, usage_per_model: [], subagent_session_ids: [], ...extra });

describe('snapshot merge', () => {
  it('a /status answer never blanks what only changes carries', () => {
    const s1 = withChanges(UNKNOWN_SNAPSHOT, top());
    const s2 = withStatus(s1, realStatus('idle'), 1000);
    expect(s2).toMatchObject({ status: 'idle', started_at: '2026-05-07T14:30:02Z', metrics: { steps: 3, total_cost: 0.01 }, statusAtMs: 1000 });
    expect(isKnown(UNKNOWN_SNAPSHOT)).toBe(false);
    expect(isKnown(s2)).toBe(true);
  });

  it('once /status answered, a disagreeing changes answer does not move the status (no flapping)', () => {
    let s = withStatus(withChanges(UNKNOWN_SNAPSHOT, top()), realStatus('running'));
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) {
      s = withChanges(s, top({ status: 'completed', finished_at: '2026-05-07T14:31:00Z' }));
      seen.push(s.status);
      s = withStatus(s, realStatus('running'));
      seen.push(s.status);
    }
    expect(new Set(seen)).toEqual(new Set(['running']));
    // Fields changes alone carries still pass through.
    expect(s.finished_at).toBe('2026-05-07T14:31:00Z');
  });

  it('before any /status answer, changes sets the status; answer and finished_at are kept once given', () => {
    const s1 = withChanges(UNKNOWN_SNAPSHOT, top({ status: 'completed', answer: 'done', finished_at: 'f' }));
    expect(s1.status).toBe('completed');
    const s2 = withChanges(s1, top({ answer: null, finished_at: null }));
    expect(s2).toMatchObject({ answer: 'done', finished_at: 'f' });
  });

  it('a finished_at from a claim of the end that /status denied goes once changes says null while the session runs', () => {
    let s = withStatus(withChanges(UNKNOWN_SNAPSHOT, top()), realStatus('running'));
    s = withChanges(s, top({ status: 'completed', finished_at: '2026-12-06T00:00:00Z' }));
    s = withStatus(s, realStatus('running'));
    s = withChanges(s, top({ finished_at: null }));
    expect(s).toMatchObject({ status: 'running', finished_at: null });
    // Over: a later answer without it keeps it.
    s = withChanges(withStatus(s, realStatus('completed')), top({ status: 'completed', finished_at: 'f' }));
    expect(withChanges(s, top({ status: 'completed', finished_at: null })).finished_at).toBe('f');
    // A simplified upstream's /status says the end by its finished_at, whatever its status word: kept too.
    const simple = withStatus(withChanges(UNKNOWN_SNAPSHOT, top({ finished_at: 'F' })), { status: 'done', finished_at: 'F' });
    expect(withChanges(simple, top({ status: 'done', finished_at: null })).finished_at).toBe('F');
  });

  it('knows the terminal statuses and the simplified upstream finished_at; idle and paused are not the end', () => {
    for (const st of ['completed', 'failed', 'timed_out', 'interrupted']) expect(statusSaysOver({ status: st })).toBe(true);
    for (const st of ['pending', 'running', 'paused', 'idle']) expect(statusSaysOver({ status: st })).toBe(false);
    expect(statusSaysOver({ status: 'whatever', finished_at: '2026-01-01' })).toBe(true);
    expect(changesClaimOver(top({ finished_at: 'x' }))).toBe(true);
    expect(changesClaimOver(top({ status: 'idle' }))).toBe(false);
  });

  it('answers the drop-in /status in the upstream shape with what the loop learnt since', () => {
    const s = withChanges(withStatus(withChanges(UNKNOWN_SNAPSHOT, top()), realStatus('running', { usage_per_model: [{ name: 'm' }] })), top({ metrics: { steps: 9 } }));
    expect(statusDropInBody(s)).toEqual({ status: 'running', error: null, steps: 9, usage_per_model: [{ name: 'm' }], subagent_session_ids: [] });
    // A simplified upstream's whole-snapshot /status keeps its shape, refreshed from changes.
    const simple = withChanges(withStatus(UNKNOWN_SNAPSHOT, { status: 'running', started_at: null, finished_at: null, error: null, answer: null, metrics: {} }), top({ answer: 'a' }));
    expect(statusDropInBody(simple)).toEqual({ status: 'running', started_at: '2026-05-07T14:30:02Z', finished_at: null, error: null, answer: 'a', metrics: { steps: 3, total_cost: 0.01 } });
    // No /status held: the real API's shape from the snapshot.
    expect(statusDropInBody(withChanges(UNKNOWN_SNAPSHOT, top()))).toEqual({ status: 'running', error: null, steps: 3, usage_per_model: [], subagent_session_ids: [] });
  });
});
