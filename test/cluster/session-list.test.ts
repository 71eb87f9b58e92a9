/**
 * The session list in cluster mode: two pollcast instances on one real
 * redis-server, viewers of the same list on both, cost one upstream list poll
 * per interval for the cluster; a session created upstream reaches the
 * viewers of both; when the instance holding the list's lease stops, the
 * other one takes over the poll and its viewers go on.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { record, type Recorder } from '../helpers/harness.ts';
import { suiteRedis } from '../helpers/redis.ts';
import { listCalls, listOf } from '../helpers/session-list.ts';

const POLL_SECONDS = 1;
const LIST_EVENTS = ['snapshot', 'upsert', 'remove'];


async function create(sim: Simulator, message: string): Promise<string> {
  const res = await fetch(`${sim.url}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'web-agent', messages: message }) });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

describe('GET /sessions/events in cluster mode', () => {
  let sim: Simulator;
  let redis: Awaited<ReturnType<typeof suiteRedis>>;
  const instances: PollcastServer[] = [];
  const viewers: Recorder[] = [];

  beforeAll(async () => {
    redis = await suiteRedis();
    sim = await createSimulator({ api: 'real', run: { eventEveryMs: 200, events: 200 } });
    const env = {
      PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', AUTH: 'none', UPSTREAM_URL: sim.url, REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: `t${randomBytes(4).toString('hex')}:`, SESSION_LIST_POLL_SECONDS: String(POLL_SECONDS), SESSION_LIST_GRACE_SECONDS: '0',
    };
    for (let i = 0; i < 2; i++) instances.push(await startPollcast(loadConfig(env), { log: silentLogger(), processMetrics: false }));
  }, 30_000);

  afterAll(async () => {
    for (const v of viewers) v.close();
    for (const s of instances) await s.close();
    await sim?.close();
    await redis?.stop();
  });

  it('polls each list once per interval for the cluster, shows new sessions on both instances, and moves the poll when its holder stops', async () => {
    const first = await create(sim, 'listed before');
    for (const s of instances) for (let k = 0; k < 3; k++) viewers.push(record(`${s.url}/sessions/events`, { events: LIST_EVENTS }));
    await Promise.all(viewers.map((v) => v.until((x) => listOf(x).has(first), 15_000)));

    sim.clearRequests();
    const started = performance.now();
    const fresh = await create(sim, 'appears on both instances');
    await Promise.all(viewers.map((v) => v.until((x) => listOf(x).has(fresh), 15_000)));
    await new Promise((r) => setTimeout(r, 3 * POLL_SECONDS * 1000));
    const elapsedMs = performance.now() - started;
    // One poll per started interval for the whole cluster (two instances each polling would be twice that).
    expect(listCalls(sim)).toBeGreaterThanOrEqual(1);
    expect(listCalls(sim)).toBeLessThanOrEqual(Math.ceil(elapsedMs / (POLL_SECONDS * 1000)) + 1);
    // One instance polled, the other read its outcomes from Redis.
    expect(instances.filter((s) => s.lists.calls > 0)).toHaveLength(1);
    const holder = instances.findIndex((s) => s.lists.calls > 0);
    const other = 1 - holder;
    const before = instances[other]!.lists.calls;

    // The holder stops: the other instance takes the lease over and keeps its viewers' list moving.
    const otherViewers = viewers.slice(other * 3, other * 3 + 3);
    await instances[holder]!.close();
    const stoppedAt = performance.now();
    const later = await create(sim, 'after the takeover');
    // A holder that stops lets the lease go: the other polls at once, not once the lease (10 s at least) runs out.
    await Promise.all(otherViewers.map((v) => v.until((x) => listOf(x).has(later), 30_000)));
    expect(performance.now() - stoppedAt).toBeLessThan(POLL_SECONDS * 1000 + 3000);
    expect(instances[other]!.lists.calls).toBeGreaterThan(before);
  }, 90_000);
});
