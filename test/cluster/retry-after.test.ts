/**
 * Contract section 5, "Retry-After is honoured", per cluster: a wait the
 * upstream asks of the session's loop binds the loop that takes over when
 * its leader stops, not only the leader that was told.
 */
import { expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast } from '../../src/server.ts';
import { createSimulator } from '../../src/simulator/index.ts';
import { eventually, range, record } from '../helpers/harness.ts';
import { startRedis } from '../helpers/redis.ts';
import { CLUSTER_ENV, inProcessParts } from './helpers.ts';

const parts = inProcessParts();
const RETRY_AFTER_SECONDS = 8;

it('a leader told to wait (429, Retry-After) stops; the instance that takes over makes no upstream call until the wait is over, then goes on exactly', async () => {
  parts.redis = await startRedis();
  parts.sim = await createSimulator({});
  const config = loadConfig({ ...CLUSTER_ENV, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: parts.sim.url, REDIS_URL: parts.redis.url });
  const start = async () => {
    const s = await startPollcast(config, { log: silentLogger(), processMetrics: false });
    parts.servers.push(s);
    return s;
  };
  const [leader, other] = [await start(), await start()];
  const sim = parts.sim;
  sim.createSession('ra-1', { initialEvents: 2 });
  const onLeader = record(`${leader.url}/sessions/ra-1/events`);
  parts.recorders.push(onLeader);
  await eventually(() => onLeader.indices().length === 2, 10_000, 'the leader\'s stream');
  const onOther = record(`${other.url}/sessions/ra-1/events`);
  parts.recorders.push(onOther);
  await eventually(() => onOther.indices().length === 2, 10_000, 'the other stream');

  sim.faults.script([{ kind: 'rate-limit', retryAfterSeconds: RETRY_AFTER_SECONDS }], { session: 'ra-1', endpoint: 'changes' });
  // The loop's long-poll (2 s) comes back; its next call is refused with the Retry-After.
  await eventually(() => sim.stats('ra-1').faultsServed === 1, 10_000, 'the 429');
  const toldMs = Date.now();
  const calls = () => sim.stats('ra-1').changes + sim.stats('ra-1').status;
  const before = calls();
  // The leader stops (its lease released): the other instance takes the session over at once.
  parts.servers.splice(parts.servers.indexOf(leader), 1);
  await leader.close();
  await new Promise((r) => setTimeout(r, (RETRY_AFTER_SECONDS - 2) * 1000 - (Date.now() - toldMs)));
  expect(calls(), 'no upstream call while the Retry-After lasts').toBe(before);
  expect(other.hub.activeCount).toBe(1);

  sim.appendEvents('ra-1', 1);
  await eventually(() => onOther.indices().length === 3, 15_000, 'the event after the wait');
  expect(Date.now() - toldMs, 'not before the Retry-After was over').toBeGreaterThanOrEqual(RETRY_AFTER_SECONDS * 1000 - 500);
  expect(onOther.indices()).toEqual(range(3));
}, 60_000);
