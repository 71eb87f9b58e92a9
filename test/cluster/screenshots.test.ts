/**
 * Screenshot-sized events through the shared log: the leader writes each
 * event's log entry from the upstream's own text (no parse, no
 * re-serialising), and every instance's subscribers get the events exactly
 * as the upstream sent them.
 */
import { expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { startPollcast } from '../../src/server.ts';
import { createSimulator } from '../../src/simulator/index.ts';
import { range, record } from '../helpers/harness.ts';
import { silentLogger } from '../../src/log.ts';
import { startRedis } from '../helpers/redis.ts';
import { CLUSTER_ENV, inProcessParts } from './helpers.ts';

const parts = inProcessParts();
const { servers, recorders } = parts;

it('relays ~100 KB events through the shared log to subscribers of every instance, as the upstream sent them', async () => {
  const redis = (parts.redis = await startRedis());
  const sim = (parts.sim = await createSimulator({}));
  sim.createSession('shots', { initialEvents: 0, detailBytes: 100_000 });
  const env = { ...CLUSTER_ENV, PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, REDIS_URL: redis.url };
  for (let i = 0; i < 2; i++) servers.push(await startPollcast(loadConfig(env), { log: silentLogger(), processMetrics: false }));
  const subs = servers.map((s) => record(`${s.url}/sessions/shots/events`));
  recorders.push(...subs);
  await Promise.all(subs.map((r) => r.until((x) => x.statuses().length >= 1, 10_000)));
  for (let n = 1; n <= 4; n++) {
    sim.appendEvents('shots', 1);
    await Promise.all(subs.map((r) => r.until((x) => x.indices().length === n, 10_000)));
  }
  sim.finish('shots', {});
  await Promise.all(subs.map((r) => r.ended(20_000)));
  const upstream = (await (await fetch(`${sim.url}/sessions/shots/changes?from_index=0&limit=100&include_details=true`)).json()) as { new_events: Array<{ data: unknown }> };
  const sent = upstream.new_events.map((e) => e.data);
  expect(JSON.stringify(sent[0]).length).toBeGreaterThan(100_000);
  for (const [i, r] of subs.entries()) {
    expect(r.indices(), `instance ${i}`).toEqual(range(4));
    expect(r.messages.filter((m) => m.type === 'message').map((m) => m.data.data), `instance ${i}`).toEqual(sent);
  }
}, 60_000);
