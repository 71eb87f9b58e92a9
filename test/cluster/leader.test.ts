/**
 * A leader's terms: a lease lost under a running loop ends that loop and the
 * next term resumes from the log; a refusal on the new term's first
 * `/status` (a 404 or 401 blip) is an upstream error to retry, not the end of
 * leading, since the cluster already knows the session.
 */
import { afterEach, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { logKeys } from '../../src/transport/redis-log.ts';
import { eventually, range, record, type Recorder } from '../helpers/harness.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { CLUSTER_ENV } from './helpers.ts';

let redis: RedisServer | undefined;
let sim: Simulator | undefined;
let server: PollcastServer | undefined;
const recorders: Recorder[] = [];

afterEach(async () => {
  for (const r of recorders.splice(0)) r.close();
  await server?.close();
  await sim?.close();
  await redis?.stop();
  server = sim = redis = undefined;
});

it('a lease lost under the loop: the loop stops, the lease is taken again, and a 404 on the new term’s first /status does not end leading', async () => {
  redis = await startRedis();
  sim = await createSimulator({});
  sim.createSession('l1', { initialEvents: 2, emitEveryMs: 50, batchSize: 1, emitCount: 120 });
  server = await startPollcast(loadConfig({ ...CLUSTER_ENV, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: sim.url, REDIS_URL: redis.url }), { log: silentLogger(), processMetrics: false });
  const sub = record(`${server.url}/sessions/l1/events`);
  recorders.push(sub);
  await sub.until((x) => x.indices().length >= 15);
  expect(server.metrics.stats.leasesHeld).toBe(1);
  const statusBefore = sim.stats('l1').status;
  // The next /status (the new term's first contact) says 404 twice; then the lease vanishes under the loop.
  sim.faults.script([{ kind: 'http', status: 404 }, { kind: 'http', status: 404 }], { session: 'l1', endpoint: 'status' });
  await redis.command('DEL', logKeys('pollcast:', 'l1', true).lease);
  await eventually(() => sim!.stats('l1').status >= statusBefore + 3, 15_000, 'the new term to get past its refused first contacts');
  const end = await sub.ended(30_000);
  const total = sim.eventCount('l1');
  expect(sub.indices()).toEqual(range(total));
  expect(end.last_index).toBe(total - 1);
  expect(sim.stats('l1').maxInFlightChanges).toBe(1);
}, 45_000);
