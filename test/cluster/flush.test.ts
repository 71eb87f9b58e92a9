/**
 * A lease key that vanishes before its time (evicted, deleted, FLUSHALL):
 * the leader that held it may still be long-polling until its next renewal
 * finds the lease gone. Nobody else may start a loop before then: one
 * long-poll per session in flight at any time, streams exact.
 */
import { afterEach, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { logKeys } from '../../src/transport/redis-log.ts';
import { watchLongPolls, type LongPollWatch } from '../chaos/long-poll-watch.ts';
import { range, record, type Recorder } from '../helpers/harness.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { CLUSTER_ENV } from './helpers.ts';

let redis: RedisServer | undefined;
let sim: Simulator | undefined;
let watch: LongPollWatch | undefined;
const servers: PollcastServer[] = [];
const recorders: Recorder[] = [];

afterEach(async () => {
  for (const r of recorders.splice(0)) r.close();
  for (const s of servers.splice(0)) await s.close();
  await watch?.close();
  await sim?.close();
  await redis?.stop();
  watch = sim = redis = undefined;
});

it('a lease key deleted, then FLUSHALL, under a live session: never two long-polls at once, every subscriber exact', async () => {
  redis = await startRedis();
  sim = await createSimulator({});
  watch = await watchLongPolls(sim.url);
  // Idle: the leader sits in its long-poll, as it does on a quiet session.
  sim.createSession('fl', { initialEvents: 2 });
  const env = { ...CLUSTER_ENV, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: watch.url, REDIS_URL: redis.url };
  const start = async () => {
    const s = await startPollcast(loadConfig(env), { log: silentLogger(), processMetrics: false });
    servers.push(s);
    const r = record(`${s.url}/sessions/fl/events`);
    recorders.push(r);
    await r.until((x) => x.indices().length === 2, 20_000);
    return r;
  };
  const quietly = (ms: number) => new Promise((r) => setTimeout(r, ms));
  // The leader first; the others a while later, so their attempts at the lease are out of step with its renewals.
  const subs = [await start()];
  await quietly(700);
  subs.push(await start(), await start());
  const k = logKeys('pollcast:', 'fl', true);
  // Right after a renewal (the lease back at its full length), the leader's next look at it is a third of a lease away.
  const justRenewed = async () => {
    const full = Number(CLUSTER_ENV.REDIS_LEASE_SECONDS) * 1000;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && ((await redis!.command('PTTL', k.lease)) as number) < full - 50) await quietly(10);
  };
  await justRenewed();
  await redis.command('DEL', k.lease);
  await quietly(4000);
  sim.appendEvents('fl', 3);
  await Promise.all(subs.map((r) => r.until((x) => x.indices().length === 5, 20_000)));
  await justRenewed();
  await redis.command('FLUSHALL');
  await quietly(4000);
  sim.appendEvents('fl', 3);
  sim.finish('fl');
  await Promise.all(subs.map((r) => r.ended(30_000)));
  for (const r of subs) expect(r.indices()).toEqual(range(sim.eventCount('fl')));
  expect(watch.maxInFlight('fl')).toBe(1);
}, 90_000);
