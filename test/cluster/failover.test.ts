/**
 * Failover with the default lease and the default long-poll (25 s wait, 10 s
 * margin): the lease is renewed on its own timer, so it need not outlast a
 * long-poll, and a dead leader's sessions move within about the lease.
 */
import { afterEach, expect, it } from 'vitest';
import { eventually, range, record, type Recorder } from '../helpers/harness.ts';
import { startCluster, type Cluster } from './helpers.ts';

let cluster: Cluster | undefined;
const recorders: Recorder[] = [];

afterEach(async () => {
  for (const r of recorders.splice(0)) r.close();
  await cluster?.close();
  cluster = undefined;
});

it('SIGKILL of the leader with the default lease and long-poll: a survivor gets new events within 20 s, exact to the end', async () => {
  // '' is the default (CLUSTER_ENV shortens the lease for the other tests).
  cluster = await startCluster(2, { UPSTREAM_WAIT_SECONDS: '25', UPSTREAM_TIMEOUT_MARGIN_SECONDS: '10', REDIS_LEASE_SECONDS: '' });
  const c = cluster;
  c.sim.createSession('f-kill', { initialEvents: 3, emitEveryMs: 100, batchSize: 1, emitCount: 300 });
  const subs = [0, 1].map((i) => record(`${c.urlOf(i)}/sessions/f-kill/events`, { fetch: c.balancer(i) }));
  recorders.push(...subs);
  await Promise.all(subs.map((r) => r.until((x) => x.indices().length >= 10, 20_000)));
  let leaders: number[] = [];
  await eventually(async () => (leaders = await c.leaders()).length === 1, 5000, 'one leader');
  const dead = leaders[0]!;
  const survivor = subs[1 - dead]!;
  await c.kill(dead);
  const killedAt = performance.now();
  const seenAtKill = c.sim.eventCount('f-kill');
  await survivor.until((x) => x.indices().length > seenAtKill, 20_000);
  console.log(`[failover] default lease: a survivor got new events ${Math.round(performance.now() - killedAt)} ms after the leader's SIGKILL`);
  for (const r of subs) await r.ended(60_000);
  for (const r of subs) expect(r.indices()).toEqual(range(c.sim.eventCount('f-kill')));
}, 120_000);
