/**
 * A reader that resumes far behind the shared log on an instance new to the
 * session: its history is read as a reader behind any buffer reads it (the
 * hub's shared history pages: a 429's Retry-After kept to, a session gone
 * said), while the session's other readers on that instance go on live. A
 * cluster audit (7 Dec 2026) found the instance's copy filling the gap first:
 * every reader of the session there waited for it (11.7 s for a reader at the
 * head), the Retry-After was not kept to (6 calls in 14 s under one of 30 s),
 * and a session deleted meanwhile held its readers for good.
 */
import { expect, it } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import { eventually, range, record } from '../helpers/harness.ts';
import { startRedis } from '../helpers/redis.ts';
import { inProcessParts, serverStarter } from './helpers.ts';

const parts = inProcessParts();

/** Redis, the simulator and two pollcast instances on them (with `env`), stopped after the test. */
async function twoInstances(env: Record<string, string> = {}) {
  const redis = (parts.redis = await startRedis());
  const sim = (parts.sim = await createSimulator({}));
  const start = serverStarter(parts, env);
  return { a: await start(), b: await start(), sim, redis };
}

/** The `from_index` of each upstream changes call for `id` since the last clear. */
function changesFrom(id: string): number[] {
  return parts
    .sim!.requests()
    .filter((r) => r.target.includes(`/sessions/${id}/changes`))
    .map((r) => Number(new URL(r.target, 'http://x').searchParams.get('from_index')));
}

it('a reader far behind on an instance new to the session keeps to a 429 on its history while the session\'s live readers there go on', async () => {
  // A long-poll held long enough that the leader's loop asks nothing while the test scripts the 429s: they are the
  // behind reader's (the leader's next call after the appended events takes one too, once they are delivered).
  const { a, b, sim } = await twoInstances({ UPSTREAM_WAIT_SECONDS: '25' });
  sim.createSession('cb', { initialEvents: 1500, imageBytes: 0 });
  // The leader's loop starts near the head: the log holds the last events only.
  const onA = record(`${a.url}/sessions/cb/events?from_index=1495`);
  parts.recorders.push(onA);
  await eventually(() => onA.indices().length === 5, 15_000, 'the leader\'s reader at the head');
  await eventually(() => sim.stats('cb').inFlightChanges === 1, 10_000, 'the leader\'s long-poll');
  sim.clearRequests();
  sim.faults.script(range(4).map(() => ({ kind: 'rate-limit' as const, retryAfterSeconds: 30 })), { session: 'cb', endpoint: 'changes' });

  const behind = record(`${b.url}/sessions/cb/events?from_index=20`);
  parts.recorders.push(behind);
  await eventually(() => changesFrom('cb').some((from) => from < 1494), 10_000, 'the behind reader\'s first history read');
  const head = record(`${b.url}/sessions/cb/events?from_index=1499`);
  parts.recorders.push(head);
  await head.until((x) => x.indices().includes(1499), 10_000);
  sim.appendEvents('cb', 2);
  await head.until((x) => x.indices().includes(1501), 10_000);
  expect(head.indices()).toEqual([1499, 1500, 1501]);
  // The history read under the 429 waits out its Retry-After: one call, whatever the reader's reconnects.
  await new Promise((r) => setTimeout(r, 4000));
  expect(changesFrom('cb').filter((from) => from < 1494)).toHaveLength(1);
  expect(behind.indices()).toEqual([]);
}, 60_000);

it('a finished session deleted upstream: a reader far behind on an instance new to it is told (its stream ends, then 404), and /status there still answers from the log', async () => {
  const { a, b, sim } = await twoInstances();
  sim.createSession('cd', { initialEvents: 1500, imageBytes: 0 });
  sim.finish('cd', { closingEvents: true });
  const last = sim.eventCount('cd') - 1;
  const onA = record(`${a.url}/sessions/cd/events?from_index=${last - 5}`);
  parts.recorders.push(onA);
  await onA.ended(15_000);
  sim.deleteSession('cd');

  const behind = record(`${b.url}/sessions/cd/events?from_index=20`);
  parts.recorders.push(behind);
  // Closed once the 404 has lasted, then refused on the reconnect: the EventSource stops for good.
  await eventually(() => behind.es.readyState === 2, 30_000, 'the behind reader\'s EventSource to stop');
  expect(behind.indices()).toEqual([]);
  const status = await fetch(`${b.url}/sessions/cd/status`);
  expect(status.status).toBe(200);
  expect(((await status.json()) as { status: string }).status).toBe('completed');
}, 60_000);

it('Redis away, a session the cluster never described (its streams already answered) and deleted upstream: the loop served around Redis ends the streams on its 404, once, not a /status call every tick', async () => {
  // A cluster audit (7 Dec 2026): such a loop stopped on its 404 as a refused open, and was started again at each
  // check while Redis was away: 24 /status calls and 24 error lines in 6 s.
  const { a, b, sim, redis } = await twoInstances();
  sim.createSession('cx', { initialEvents: 3, imageBytes: 0 });
  // The first contact fails: the streams open on "unavailable", the session not described yet.
  sim.faults.script(range(200).map(() => ({ kind: 'http' as const, status: 502 })), { session: 'cx', endpoint: 'status' });
  const subs = [record(`${a.url}/sessions/cx/events`), record(`${b.url}/sessions/cx/events`)];
  parts.recorders.push(...subs);
  for (const sub of subs) await sub.until((x) => x.statuses().some((s) => typeof s.upstream_error === 'string'), 20_000);
  expect(subs.every((sub) => sub.statuses().every((s) => s.status === 'unknown'))).toBe(true);
  sim.deleteSession('cx');
  await redis.stop();
  sim.faults.clear();
  sim.clearRequests();
  for (const sub of subs) await sub.ended(20_000);
  await new Promise((r) => setTimeout(r, 3000));
  const statusCalls = sim.requests().filter((r) => r.target.includes('/sessions/cx/status')).length;
  // One loop per instance around Redis, each ending on its first 404 (and a leader's paused loop, perhaps, once).
  expect(statusCalls).toBeLessThanOrEqual(4);
  for (const sub of subs) expect(sub.messages.find((m) => m.type === 'end')!.data.upstream_error).toMatch(/not found/);
}, 60_000);
