/**
 * A drop-in `changes` call on an instance that follows the log is not told "nothing new" while the leader's loop
 * cannot read the upstream (its calls failing after it had caught up): the leader's word on it travels through the
 * shared log with the rest of the loop's state.
 */
import { expect, it } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import { eventually, record } from '../helpers/harness.ts';
import { startRedis } from '../helpers/redis.ts';
import { inProcessParts, serverStarter } from './helpers.ts';

const parts = inProcessParts();
const get = (url: string) => fetch(url, { signal: AbortSignal.timeout(15_000) });

/**
 * Two instances on one Redis and a real-API simulator; session `id` with two events, read by a subscriber on the
 * first instance, which leads its loop (a dashboard); an SDK polls the drop-in `changes` at `path` through the other.
 */
async function leaderAndFollower(id: string) {
  parts.redis = await startRedis();
  parts.sim = await createSimulator({ api: 'real' });
  const sim = parts.sim;
  const start = serverStarter(parts);
  const [leader, follower] = [await start(), await start()];
  sim.createSession(id, { initialEvents: 2, imageBytes: 0 });
  const path = `${new URL(sim.url).pathname}/sessions/${id}/changes`;
  const sub = record(`${leader.url}/sessions/${id}/events`);
  parts.recorders.push(sub);
  await sub.until((x) => x.indices().length === 2, 10_000);
  return { sim, leader, follower, path, sub };
}

it('a follower answers 503 (Retry-After), not 204, while the leader\'s changes calls fail; the events once they are read again', async () => {
  const { sim, leader, follower, path, sub } = await leaderAndFollower('fl-1');
  expect((await get(`${follower.url}${path}?from_index=0`)).status).toBe(200);
  await eventually(() => sim.stats('fl-1').changesByWait.waiting >= 2, 10_000, 'the leader long-polling');
  expect((await get(`${follower.url}${path}?from_index=2`)).status).toBe(204);

  sim.faults.script(Array.from({ length: 5000 }, () => ({ kind: 'http' as const, status: 500 })), { session: 'fl-1', endpoint: 'changes' });
  await eventually(() => sim.stats('fl-1').faultsServed >= 1, 10_000, 'a failed changes call');
  sim.appendEvents('fl-1', 3);
  await eventually(async () => (await get(`${follower.url}${path}?from_index=2`)).status === 503, 5000, 'the follower told of the failing loop');
  const r = await get(`${follower.url}${path}?from_index=2`);
  expect(r.status).toBe(503);
  expect(r.headers.get('retry-after')).toBe('2');
  expect(((await r.json()) as { error: string }).error).toMatch(/failing/);

  sim.faults.clear();
  await eventually(async () => (await get(`${follower.url}${path}?from_index=2`)).status === 200, 15_000, 'the events once the leader reads again');
  expect(((await (await get(`${follower.url}${path}?from_index=2`)).json()) as { new_events: unknown[] }).new_events).toHaveLength(3);
  await sub.until((x) => x.indices().length === 5, 10_000);
}, 60_000);

it('a follower\'s 503 says when the leader asks again: a 429 with Retry-After: 20 is told as about 20 s on every instance, not 2', async () => {
  const { sim, leader, follower, path, sub } = await leaderAndFollower('fl-2');
  await eventually(() => sim.stats('fl-2').changesByWait.waiting >= 1, 10_000, 'the leader long-polling');
  sim.faults.script(Array.from({ length: 50 }, () => ({ kind: 'rate-limit' as const, retryAfterSeconds: 20 })), { session: 'fl-2', endpoint: 'changes' });
  sim.appendEvents('fl-2', 1);
  await eventually(() => sim.stats('fl-2').faultsServed >= 1, 10_000, 'a refused changes call');
  // The appended event reached the long-poll that was waiting; the next call is the one refused.
  await sub.until((x) => x.indices().length === 3, 10_000);
  const told = async (url: string) => {
    let r: Response | undefined;
    await eventually(async () => (r = await get(`${url}${path}?from_index=3`)).status === 503, 5000, `a 503 from ${url}`);
    await r!.body?.cancel();
    return Number(r!.headers.get('retry-after'));
  };
  for (const url of [follower.url, leader.url]) {
    const seconds = await told(url);
    expect(seconds).toBeGreaterThanOrEqual(15);
    expect(seconds).toBeLessThanOrEqual(20);
  }
  // Nothing more was asked of the upstream meanwhile: the wait is the leader's.
  expect(sim.stats('fl-2').faultsServed).toBe(1);
}, 60_000);
