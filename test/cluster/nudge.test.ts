/**
 * Contract section 3, forwarding, in cluster mode: a write forwarded through
 * any instance (here one that serves nothing of the session) makes the loop
 * that runs the session, on another instance, refresh its status at once,
 * so `paused` reaches every subscriber well before the loop's long-poll
 * (25 s) would have shown it.
 */
import { expect, it } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import { eventually, record } from '../helpers/harness.ts';
import { startRedis } from '../helpers/redis.ts';
import { inProcessParts, serverStarter } from './helpers.ts';

const parts = inProcessParts();
const KEY = 'operator-key-nudge-0123';

it('a pause forwarded through an instance that serves nothing of the session reaches the leader\'s subscribers within seconds, not at the end of its 25 s long-poll', async () => {
  parts.redis = await startRedis();
  parts.sim = await createSimulator({ demo: false, api: 'real', apiKey: KEY, maxWaitSeconds: 30 });
  const start = serverStarter(parts, { UPSTREAM_API_KEY: KEY, UPSTREAM_WAIT_SECONDS: '25' });
  const [leader, other] = [await start(), await start()];
  parts.sim.createSession('nd-1', { initialEvents: 2 });
  const watcher = record(`${leader.url}/sessions/nd-1/events`);
  parts.recorders.push(watcher);
  await eventually(() => watcher.indices().length === 2 && watcher.statuses().some((s) => s.status === 'running'), 10_000, 'the stream to read the session');
  await eventually(() => parts.sim!.stats('nd-1').inFlightChanges === 1, 10_000, 'the loop to long-poll');
  expect(other.hub.activeCount, 'the other instance serves nothing of the session').toBe(0);

  const path = new URL(parts.sim.url).pathname;
  const startedMs = Date.now();
  const res = await fetch(`${other.url}${path}/sessions/nd-1/pause`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` } });
  expect(res.status).toBe(202);
  await eventually(() => watcher.statuses().some((s) => s.status === 'paused'), 10_000, 'paused on the leader\'s stream');
  expect(Date.now() - startedMs, 'within seconds, not after the long-poll').toBeLessThan(5_000);
  expect(parts.sim.stats('nd-1').maxInFlightChanges, 'one loop for the cluster').toBe(1);
}, 40_000);
