/**
 * Contract section 5, "Retry-After is honoured", per cluster: a wait the
 * upstream asks of the session's loop binds the loop that takes over when
 * its leader stops, not only the leader that was told.
 */
import { expect, it } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import { eventually, range, record } from '../helpers/harness.ts';
import { startRedis } from '../helpers/redis.ts';
import { logKeys } from '../../src/transport/redis-log.ts';
import { inProcessParts, serverStarter } from './helpers.ts';

const parts = inProcessParts();
const RETRY_AFTER_SECONDS = 8;

it('a leader told to wait (429, Retry-After) stops; the instance that takes over makes no upstream call until the wait is over, then goes on exactly', async () => {
  parts.redis = await startRedis();
  parts.sim = await createSimulator({});
  const start = serverStarter(parts);
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
  // The leader heard it (not only the simulator sent it): the wait is on record for the cluster.
  const meta = logKeys('pollcast:', 'ra-1', true).meta;
  await eventually(async () => (await parts.redis!.command('HGET', meta, 'hold_until')) !== null, 5_000, 'the wait on record');
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
