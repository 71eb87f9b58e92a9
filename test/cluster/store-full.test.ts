/**
 * Redis at its maxmemory (default policy noeviction) refuses the log's
 * appends: the session must not freeze. Each instance says so in an error
 * line, shows it in the status, serves its subscribers from the upstream
 * directly, and goes back to the shared log once Redis takes writes again.
 */
import { expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { startPollcast } from '../../src/server.ts';
import { createSimulator } from '../../src/simulator/index.ts';
import { BYPASS_REASON } from '../../src/transport/direct.ts';
import { logKeys } from '../../src/transport/redis-log.ts';
import { eventually, range, record, type Recorder } from '../helpers/harness.ts';
import { freePort } from '../helpers/harness.ts';
import { startRedis } from '../helpers/redis.ts';
import { CLUSTER_ENV, inProcessParts } from './helpers.ts';
import { captureLog } from '../helpers/log-capture.ts';

const parts = inProcessParts();
const { servers, recorders } = parts;


it('REDIS_URL pointing nowhere: sessions are served from upstream at once, the status names Redis, an error line says so', async () => {
  const sim = (parts.sim = await createSimulator({}));
  sim.createSession('down', { initialEvents: 5 });
  const logged = captureLog('info');
  const { log } = logged;
  const env = { ...CLUSTER_ENV, PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, REDIS_URL: `redis://127.0.0.1:${await freePort()}` };
  const server = await startPollcast(loadConfig(env), { log, processMetrics: false });
  servers.push(server);
  const sub = record(`${server.url}/sessions/down/events`);
  recorders.push(sub);
  await sub.until((x) => x.indices().length === 5, 10_000);
  expect(sub.statuses().some((s) => s.upstream_error === BYPASS_REASON.unreachable)).toBe(true);
  const status = await fetch(`${server.url}/sessions/down/status`, { signal: AbortSignal.timeout(10_000) });
  expect(status.status).toBe(200);
  // A session the upstream does not know is still refused as such.
  expect((await fetch(`${server.url}/sessions/missing/events`, { signal: AbortSignal.timeout(10_000) })).status).toBe(404);
  expect(logged.lines().some((l) => l.level === 50 && /redis unreachable/.test(l.msg))).toBe(true);
  expect(logged.lines().some((l) => /sessions API is unavailable/.test(l.msg))).toBe(false);
}, 30_000);

it('Redis full: an error line, subscribers on every instance told and served from upstream, and the shared log again once Redis takes writes', async () => {
  const redis = (parts.redis = await startRedis(['--maxmemory', '3mb']));
  const sim = (parts.sim = await createSimulator({}));
  // About 30 KB an event: 3 MB holds far fewer than the session has.
  sim.createSession('full', { initialEvents: 0, emitEveryMs: 50, batchSize: 1, emitCount: 300, detailBytes: 30_000 });
  const logged = captureLog('info');
  const { log } = logged;
  const env = { ...CLUSTER_ENV, PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, REDIS_URL: redis.url };
  for (let i = 0; i < 2; i++) servers.push(await startPollcast(loadConfig(env), { log, processMetrics: false }));
  const subs = servers.map((s) => record(`${s.url}/sessions/full/events`));
  recorders.push(...subs);
  const told = (r: Recorder) => r.statuses().some((s) => s.upstream_error === BYPASS_REASON.full);
  await Promise.all(subs.map((r) => r.until(told, 30_000)));
  expect(logged.lines().some((l) => l.level === 50 && /redis refuses writes \(out of memory/.test(l.msg))).toBe(true);
  // Room again: the log is written again (a leader's events reach it) before the session ends.
  await redis.command('CONFIG', 'SET', 'maxmemory', '0');
  const ends = await Promise.all(subs.map((r) => r.ended(40_000)));
  for (const [i, r] of subs.entries()) {
    expect(r.indices(), `instance ${i}`).toEqual(range(300));
    expect(ends[i].last_index).toBe(299);
  }
  await eventually(async () => (await redis.command('HGET', logKeys('pollcast:', 'full', true).meta, 'end')) === 'over', 10_000, 'the end in the log');
  expect(logged.lines().some((l) => l.level === 30 && /redis carries the sessions again/.test(l.msg))).toBe(true);
}, 90_000);
