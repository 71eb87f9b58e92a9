/**
 * Contract section 3 in cluster mode: a session the upstream stops knowing
 * while a leader's loop runs. The leader's refusal reaches the other
 * instances through the shared log; each answers new stream opens as one
 * process does (test/bridge/session-gone.test.ts): a 200 stream while the
 * refusal is fresh, 404 once it has lasted REFUSAL_SETTLED_MS as that
 * instance heard it, and drop-in calls 404 at once.
 */
import { expect, it } from 'vitest';
import { REFUSAL_SETTLED_MS } from '../../src/hub/hub.ts';
import { createSimulator } from '../../src/simulator/index.ts';
import { eventually, range, record } from '../helpers/harness.ts';
import { startRedis } from '../helpers/redis.ts';
import { inProcessParts, serverStarter } from './helpers.ts';

const parts = inProcessParts();

const NOT_FOUND = 'session not found upstream (404)';

it('a session deleted under a running leader: a follower answers new opens with a 200 stream while the refusal is fresh and 404 once it has settled, drop-in calls 404 at once, and its open stream keeps what it had', async () => {
  parts.redis = await startRedis();
  parts.sim = await createSimulator({});
  const start = serverStarter(parts, { UPSTREAM_GIVE_UP_SECONDS: '120' });
  const [leader, follower] = [await start(), await start()];
  parts.sim.createSession('gone-c', { initialEvents: 3 });
  const onLeader = record(`${leader.url}/sessions/gone-c/events`);
  parts.recorders.push(onLeader);
  await eventually(() => onLeader.indices().length === 3, 10_000, 'the leader\'s stream to read the three events');
  const onFollower = record(`${follower.url}/sessions/gone-c/events`);
  parts.recorders.push(onFollower);
  await eventually(() => onFollower.indices().length === 3, 10_000, 'the follower\'s stream to read the three events');

  parts.sim.deleteSession('gone-c');
  await eventually(() => onFollower.statuses().some((s) => s.upstream_error === NOT_FOUND), 15_000, 'the follower to hear the leader\'s 404');
  const heardMs = Date.now();
  // The control: a refusal heard a moment ago still gets a stream.
  const early = await fetch(`${follower.url}/sessions/gone-c/events`, { signal: AbortSignal.timeout(10_000) });
  expect(early.status, 'a fresh refusal: a 200 stream').toBe(200);
  await early.body?.cancel();
  const status = await fetch(`${follower.url}/sessions/gone-c/status`);
  expect(status.status, 'a drop-in status answers as the upstream does now').toBe(404);
  expect((await status.json()).code).toBe('session_not_found');

  await new Promise((r) => setTimeout(r, Math.max(0, heardMs + REFUSAL_SETTLED_MS + 500 - Date.now())));
  for (const [name, server] of [['follower', follower], ['leader', leader]] as const) {
    for (const path of ['/sessions/gone-c/events', '/sessions/gone-c/events?last_event_id=1', '/events?session=gone-c']) {
      const res = await fetch(`${server.url}${path}`, { signal: AbortSignal.timeout(10_000) });
      expect(res.status, `${name} ${path}`).toBe(404);
      expect((await res.json()).code, `${name} ${path}`).toBe('session_not_found');
    }
  }
  expect(parts.sim.stats('gone-c').maxInFlightChanges, 'one loop for the cluster, all along').toBeLessThanOrEqual(1);
  // The streams open before the deletion keep what they had and show the refusal, with no end before the give-up.
  for (const r of [onLeader, onFollower]) {
    expect(r.indices()).toEqual(range(3));
    expect(r.statuses().at(-1)!.upstream_error).toBe(NOT_FOUND);
    expect(r.messages.some((m) => m.type === 'end')).toBe(false);
  }
}, 60_000);
