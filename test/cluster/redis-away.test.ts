/**
 * Redis away while sessions stream: hung (SIGSTOP: its connections stay
 * open, nothing answers) or killed. Sessions already open must not freeze:
 * every instance serves its subscribers from the upstream directly (status
 * saying why), a session opened meanwhile opens, readiness names the state,
 * and once Redis answers again the instances go back to the shared log.
 * Every stream stays exact: each event once, in order, and the end.
 */
import { expect, it } from 'vitest';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { BYPASS_REASON } from '../../src/transport/direct.ts';
import { logKeys } from '../../src/transport/redis-log.ts';
import { range, record, type Recorder } from '../helpers/harness.ts';
import { startRedis } from '../helpers/redis.ts';
import { createSimulator } from '../../src/simulator/index.ts';
import { inProcessParts, serverStarter } from './helpers.ts';
import { connectRedis, REDIS_PROBE_INTERVAL_MS, REDIS_SILENT_MS } from '../../src/transport/redis-conn.ts';
import { silentLogger } from '../../src/log.ts';
import { Stats } from '../../src/metrics.ts';
import { eventually } from '../helpers/harness.ts';
import { startThrottleProxy } from '../helpers/throttle-proxy.ts';
import { watchLongPolls } from '../chaos/long-poll-watch.ts';
import { ACQUIRE, APPEND } from '../../src/transport/redis-log.ts';
import { UNKNOWN_SNAPSHOT } from '../../src/upstream/snapshot.ts';
import { loadConfig } from '../../src/config.ts';
import { startPollcast } from '../../src/server.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { CLUSTER_ENV } from './helpers.ts';

const parts = inProcessParts();

const told = (r: Recorder) => r.statuses().some((s) => s.upstream_error === BYPASS_REASON.unreachable);
/** The newest status a subscriber was sent. */
const lastStatus = (r: Recorder) => r.statuses().at(-1);

/** Lease attempts of the instance at `url` that Redis answered (from its /metrics). */
async function leaseAttempts(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  return Number(/^pollcast_redis_command_duration_seconds_count\{op="acquire"\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

const RUNNING = JSON.stringify({ snapshot: { ...UNKNOWN_SNAPSHOT, status: 'running' }, upstreamError: null, synced: true });

/**
 * The test takes the lease of `sessionId`'s log itself (as another instance would), with raw commands (its own
 * connection would be frozen with Redis): pollcast only follows. `append` writes through the leader's fenced script.
 */
async function holdLease(redis: { command(...args: string[]): Promise<unknown> }, sessionId: string) {
  const k = logKeys('pollcast:', sessionId, true);
  const [kind, , token] = (await redis.command('EVAL', ACQUIRE.source, '2', k.lease, k.meta, 'test', '600000', '600000', '', 'born-1')) as [string, string, number];
  expect(kind).toBe('acquired');
  const append = (from: number, evs: string[], state = '', resetTo = '') =>
    redis.command('EVAL', APPEND.source, '3', k.lease, k.meta, k.log, `${token}:test`, String(token), resetTo, String(from), '1000', '600000', state, '', '1', ...evs);
  return { append };
}

async function redisState(url: string): Promise<string> {
  const body = (await (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) })).json()) as { redis?: { state: string } };
  return body.redis?.state ?? 'none';
}

for (const how of ['hung', 'killed'] as const) {
  it(`Redis ${how} mid-session: open streams keep their events on every instance, a new session opens, and all go back to the log when Redis answers`, async () => {
    const redis = (parts.redis = await startRedis());
    const sim = (parts.sim = await createSimulator({}));
    // 10 events a second for 25 s: Redis goes away after ~1 s and comes back ~10 s later.
    sim.createSession('open', { initialEvents: 2, emitEveryMs: 100, batchSize: 1, emitCount: 250 });
    const start = serverStarter(parts);
    const servers = [await start(), await start()];
    const subs = servers.map((s) => record(`${s.url}/sessions/open/events`));
    parts.recorders.push(...subs);
    await Promise.all(subs.map((r) => r.until((x) => x.indices().length >= 10, 10_000)));
    expect(subs.some(told)).toBe(false);

    if (how === 'hung') redis.pause();
    else await redis.stop();
    const before = subs.map((r) => r.indices().length);
    // Once the lease taken before has run out (6 s), 30 new events (3 s of the session's) reach both instances while
    // Redis is away, and they say why.
    await Promise.all(subs.map((r, i) => r.until((x) => x.indices().length >= before[i]! + 30 && told(x), 15_000)));
    expect(await redisState(servers[0]!.url)).toBe(how === 'hung' ? 'not answering' : 'unreachable');
    // A session opened while Redis is away opens and streams.
    sim.createSession('fresh', { initialEvents: 3 });
    const fresh = record(`${servers[1]!.url}/sessions/fresh/events`);
    parts.recorders.push(fresh);
    await fresh.until((x) => x.indices().length === 3 && told(x), 10_000);

    if (how === 'hung') redis.resume();
    else await redis.start();
    // Back on the shared log: the status no longer names Redis, and the log is written again.
    await Promise.all(subs.map((r) => r.until((x) => told(x) && lastStatus(x)?.upstream_error == null, 20_000)));
    expect(await redisState(servers[0]!.url)).toBe('ok');
    const ends = await Promise.all(subs.map((r) => r.ended(40_000)));
    for (const [i, r] of subs.entries()) {
      expect(r.indices(), `instance ${i}`).toEqual(range(252));
      expect(ends[i].last_index).toBe(251);
      // The session's cost only grows: no status goes back to what the log held before Redis went away once the
      // stream has shown newer figures from the upstream.
      const costs = r.statuses().map((s) => s.metrics?.total_cost).filter((c) => typeof c === 'number');
      expect(costs, `instance ${i}: costs shown in order`).toEqual([...costs].sort((x, y) => x - y));
    }
    // The log holds the session's last events again (written after Redis came back).
    const tail = (await redis.command('XREVRANGE', logKeys('pollcast:', 'open', true).log, '+', '-', 'COUNT', '1')) as unknown[];
    expect(tail.length).toBe(1);
  }, 90_000);
}

it('a leader whose long-poll hangs when Redis goes away abandons it before another instance serves the session around Redis: never two long-polls at once', async () => {
  const redis = (parts.redis = await startRedis());
  const sim = (parts.sim = await createSimulator({}));
  // Found by the cluster chaos run (seed 1593808714): the leader's call hung by an upstream fault was still out,
  // waiting for its wait plus a 10 s margin, when an instance new to the session served it around Redis.
  const watch = await watchLongPolls(sim.url);
  try {
    sim.createSession('hung', { initialEvents: 2, emitEveryMs: 100, batchSize: 1, emitCount: 200 });
    const start = serverStarter(parts, { UPSTREAM_URL: watch.url });
    const [a, b] = [await start(), await start()];
    const onA = record(`${a.url}/sessions/hung/events`);
    parts.recorders.push(onA);
    await onA.until((x) => x.indices().length >= 5, 10_000);
    // The leader's next long-poll hangs: the upstream never answers it.
    sim.faults.script([{ kind: 'hang' }], { session: 'hung' });
    await eventually(() => sim.stats('hung').faultsServed >= 1, 5000, 'the hung long-poll');
    redis.pause();
    // New to B: served around Redis after STORE_DOWN_WAIT_MS, with its own loop.
    const onB = record(`${b.url}/sessions/hung/events`);
    parts.recorders.push(onB);
    // Events emitted after B began serving it reach B only through its own long-polls.
    await eventually(() => told(onB), 10_000, 'B serving around Redis');
    const emitted = sim.eventCount('hung');
    await onB.until((x) => x.indices().length >= emitted + 10, 15_000);
    expect(watch.maxInFlight('hung')).toBe(1);
  } finally {
    redis.resume();
    await watch.close();
  }
}, 60_000);

it('a Redis that stops answering: a waiting command fails once it is judged silent, new ones fail at once, the connection says "not answering", and "ok" once Redis answers', async () => {
  const redis = (parts.redis = await startRedis());
  const conn = connectRedis({ url: redis.url, log: silentLogger(), stats: new Stats() });
  try {
    await eventually(() => conn.state === 'ok', 5000, 'redis');
    redis.pause();
    const started = performance.now();
    const failed = await conn.call('ping', ['PING']).then(() => null, (err: Error) => err);
    const waitedMs = performance.now() - started;
    expect(failed?.message).toMatch(/not answering/);
    // Judged by the probe: a PING unanswered for REDIS_SILENT_MS, sent within REDIS_PROBE_INTERVAL_MS of the freeze.
    expect(waitedMs).toBeGreaterThanOrEqual(REDIS_SILENT_MS - REDIS_PROBE_INTERVAL_MS);
    expect(waitedMs).toBeLessThan(REDIS_SILENT_MS + 2000);
    expect(conn.state).toBe('not answering');
    expect(conn.awaySince).not.toBeNull();
    // Not written while Redis is silent (it would run when Redis answers): it fails at once.
    const next = performance.now();
    await expect(conn.call('set', ['SET', 'written-while-silent', '1'])).rejects.toThrow(/not answering/);
    expect(performance.now() - next).toBeLessThan(100);
    redis.resume();
    await eventually(() => conn.state === 'ok', 5000, 'redis answering again');
    expect(await conn.call('ping', ['PING'])).toBe('PONG');
    expect(await conn.call('exists', ['EXISTS', 'written-while-silent'])).toBe(0);
  } finally {
    redis.resume();
    await conn.close();
  }
});

/**
 * A TCP proxy to Redis that passes nothing, either way, on its `heldConnection`-th connection until `release()`:
 * that client stays "connecting". connectRedis opens its commands', reader's, subscriber's and probe's
 * connections in that order, so the 4th is the probe's.
 */
async function startHoldingProxy(targetPort: number, heldConnection: number): Promise<{ port: number; release(): void; close(): void }> {
  let accepted = 0;
  const held: Array<() => void> = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    for (const s of [client, upstream]) sockets.add(s.on('error', () => s.destroy()));
    const pass = () => client.pipe(upstream).pipe(client);
    if (++accepted === heldConnection) held.push(pass);
    else pass();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    release: () => held.splice(0).forEach((pass) => pass()),
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

it('a Redis that stops answering while the probe is still connecting: a waiting command still fails once it is judged silent (it waited for ever)', async () => {
  const redis = (parts.redis = await startRedis());
  const proxy = await startHoldingProxy(redis.port, 4);
  const conn = connectRedis({ url: `redis://127.0.0.1:${proxy.port}`, log: silentLogger(), stats: new Stats() });
  try {
    await eventually(() => conn.state === 'ok', 5000, 'redis');
    redis.pause();
    // The probe's connection gets through only now, to a Redis that no longer answers: it never becomes ready.
    proxy.release();
    const started = performance.now();
    const outcome = await Promise.race([
      conn.call('ping', ['PING']).then(() => 'answered', (err: Error) => err.message),
      new Promise<string>((resolve) => setTimeout(() => resolve('still waiting'), REDIS_SILENT_MS + 5000)),
    ]);
    expect(outcome).toMatch(/not answering/);
    expect(performance.now() - started).toBeLessThan(REDIS_SILENT_MS + 2000);
    expect(conn.state).toBe('not answering');
    redis.resume();
    await eventually(() => conn.state === 'ok', 5000, 'redis answering again');
    expect(await conn.call('ping', ['PING'])).toBe('PONG');
  } finally {
    redis.resume();
    await conn.close();
    proxy.close();
  }
});

it('a healthy Redis whose answer is slow to arrive (a 4 MB value over a 1 MB/s link) is not taken for a silent one', async () => {
  const redis = (parts.redis = await startRedis());
  await redis.command('SET', 'big', 'x'.repeat(4 * 1024 * 1024));
  const proxy = await startThrottleProxy(redis.port, 1024 * 1024);
  const conn = connectRedis({ url: `redis://127.0.0.1:${proxy.port}`, log: silentLogger(), stats: new Stats() });
  try {
    await eventually(() => conn.state === 'ok', 5000, 'redis');
    const states = new Set<string>();
    const sample = setInterval(() => states.add(conn.state), 50);
    // The answer takes about 4 s to arrive, past REDIS_COMMAND_TIMEOUT_MS: it is waited for, Redis being heard.
    const got = await conn.call<string>('get', ['GET', 'big']).then((v) => v.length, (err: Error) => err.message);
    clearInterval(sample);
    expect(got).toBe(4 * 1024 * 1024);
    expect([...states]).toEqual(['ok']);
  } finally {
    await conn.close();
    await proxy.close();
  }
});

it('Redis hung for less than a lease: a session this instance first served around it goes back to the log once Redis answers, while the session is quiet', async () => {
  const redis = (parts.redis = await startRedis());
  const sim = (parts.sim = await createSimulator({}));
  // Three events, then nothing: its leader has nothing new to write after Redis is back.
  sim.createSession('quiet', { initialEvents: 3 });
  const start = serverStarter(parts);
  const [a, b] = [await start(), await start()];
  const onA = record(`${a.url}/sessions/quiet/events`);
  parts.recorders.push(onA);
  await onA.until((x) => x.indices().length === 3, 10_000);

  redis.pause();
  // A subscriber new to B while Redis is silent: B serves the session around it.
  const onB = record(`${b.url}/sessions/quiet/events`);
  parts.recorders.push(onB);
  await onB.until((x) => x.indices().length === 3 && told(x), 10_000);
  redis.resume();
  // Back on the log: the status no longer names Redis, and stays so through several long-polls (a direct loop
  // still running would say it again at its next answer).
  await onB.until((x) => lastStatus(x)?.upstream_error == null, 10_000);
  await new Promise((r) => setTimeout(r, 5000));
  expect(lastStatus(onB)?.upstream_error ?? null).toBeNull();
  expect(onB.indices()).toEqual(range(3));
  expect(onA.indices()).toEqual(range(3));
}, 60_000);

it('only the probe\'s connection stalled while Redis answers: the connection is not left refusing commands', async () => {
  const redis = (parts.redis = await startRedis());
  const proxy = await startThrottleProxy(redis.port, 100 * 1024 * 1024);
  const conn = connectRedis({ url: `redis://127.0.0.1:${proxy.port}`, log: silentLogger(), stats: new Stats() });
  try {
    await eventually(() => conn.state === 'ok', 5000, 'redis');
    await new Promise((r) => setTimeout(r, 1000));
    // The probe's connection: nothing but PINGs after its handshake (the commands' one sent INFO).
    const isProbe = (sent: string) => (sent.match(/PING/g) ?? []).length >= 3 && !sent.includes('\r\nINFO\r\n');
    expect(proxy.stall(isProbe)).toBe(1);
    // Nothing else is sent meanwhile: may be judged silent, but not for good.
    await new Promise((r) => setTimeout(r, 3000));
    await eventually(() => conn.state === 'ok', 3000, 'silence ended by the commands\' connection');
    expect(await conn.call('ping', ['PING'])).toBe('PONG');
  } finally {
    await conn.close();
    await proxy.close();
  }
});

it('a lease term that begins while Redis is away (its hold after the log was replaced ran out meanwhile) starts no loop: no upstream call until Redis answers', async () => {
  const redis = (parts.redis = await startRedis());
  const sim = (parts.sim = await createSimulator({}));
  sim.createSession('term', { initialEvents: 3 });
  const { append } = await holdLease(redis, 'term');
  expect(await append(0, sim.events('term').map((e) => JSON.stringify(e)), RUNNING, '0')).toEqual(['ok', 3]);
  // A lease of 9 s: a term on a replaced log holds 3.5 s before its loop, and a session this instance knows is
  // served around Redis only after 9 s away.
  const b = await serverStarter(parts, { REDIS_LEASE_SECONDS: '9' })();
  const sub = record(`${b.url}/sessions/term/events`);
  parts.recorders.push(sub);
  await sub.until((x) => x.indices().length === 3 && x.statuses().some((st) => st.status === 'running'), 10_000);
  // B's keeper saw the log held (its identity born-1) before it is replaced.
  await eventually(async () => (await leaseAttempts(b.url)) >= 1, 10_000, 'a lease attempt of B\'s answered');
  const calls = () => sim.stats('term').status + sim.stats('term').changes;
  const before = calls();
  // Redis flushed: B's next lease attempt takes the lease of a new log, and holds it (a leader of the old log may
  // still run until its next renewal) before it starts a loop.
  await redis.command('FLUSHALL');
  await eventually(() => b.metrics.stats.leasesHeld === 1, 10_000, 'B holding the new log\'s lease');
  redis.pause();
  try {
    // The hold runs out with Redis silent for more than LEADER_PAUSE_AFTER_MS: the term ends without a loop.
    await eventually(() => b.metrics.stats.leasesHeld === 0, 10_000, 'B\'s term over');
    // (Any call a loop had started would have reached the simulator by now.)
    await new Promise((r) => setTimeout(r, 500));
    expect(calls(), 'upstream calls from a term begun while Redis was away').toBe(before);
  } finally {
    redis.resume();
  }
  // Redis answers: B's lease is confirmed and its loop runs.
  await eventually(() => calls() > before, 10_000, 'B\'s loop calling the upstream once Redis answers');
}, 60_000);

it('a session served around Redis goes back to the log as soon as Redis answers, not at the instance\'s next lease attempt', async () => {
  const redis = (parts.redis = await startRedis());
  const sim = (parts.sim = await createSimulator({}));
  sim.createSession('back', { initialEvents: 3 });
  // Another leader holds the lease and has written nothing yet: B knows nothing of the session.
  const { append } = await holdLease(redis, 'back');
  const logged = captureLog('info');
  // A lease of 45 s: B, finding the lease held, tries again only a third of a lease (15 s) later.
  const env = { ...CLUSTER_ENV, PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, REDIS_URL: redis.url, REDIS_LEASE_SECONDS: '45' };
  const b = await startPollcast(loadConfig(env), { log: logged.log, processMetrics: false });
  parts.servers.push(b);
  const sub = record(`${b.url}/sessions/back/events`);
  parts.recorders.push(sub);
  await eventually(async () => (await leaseAttempts(b.url)) >= 1, 10_000, 'a lease attempt of B\'s answered');
  redis.pause();
  try {
    // Redis silent for STORE_DOWN_WAIT_MS: B serves the session around it, with a loop of its own.
    await sub.until((x) => x.indices().length === 3 && told(x), 15_000);
    await eventually(() => sim.stats('back').inFlightChanges === 1, 5000, 'B\'s own long-poll');
  } finally {
    redis.resume();
  }
  // Redis answers: B's own loop stops at once (its next lease attempt is still seconds away), its long-poll abandoned.
  await eventually(() => logged.lines().some((l) => /redis carries the sessions again/.test(l.msg)), 5000, 'B back on the shared log');
  await eventually(() => sim.stats('back').inFlightChanges === 0, 5000, 'B\'s own long-poll abandoned');
  // The notice of serving around Redis goes with it, before the leader writes anything.
  await sub.until((x) => lastStatus(x)?.upstream_error === undefined, 5000);
  // The leader's first write reaches B's subscriber through the log: the notice is gone.
  expect(await append(0, sim.events('back').map((e) => JSON.stringify(e)), RUNNING, '0')).toEqual(['ok', 3]);
  await sub.until((x) => lastStatus(x)?.upstream_error === undefined && lastStatus(x)?.status === 'running', 10_000);
  expect(sub.indices()).toEqual(range(3));
}, 60_000);

it('a Redis that needs a password REDIS_URL lacks: said in the log and by /readyz, sessions served from the upstream, and back to the log once it accepts', async () => {
  // An operator audit (7 Dec 2026): /readyz said "ok", nothing was logged, and a stream got no event for 25 s.
  const redis = (parts.redis = await startRedis());
  await redis.command('CONFIG', 'SET', 'requirepass', 'a-password');
  const sim = (parts.sim = await createSimulator({}));
  sim.createSession('noauth', { initialEvents: 5, imageBytes: 0 });
  const logged = captureLog('info');
  const env = { ...CLUSTER_ENV, PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, REDIS_URL: redis.url };
  const server = await startPollcast(loadConfig(env), { log: logged.log, processMetrics: false });
  parts.servers.push(server);
  const sub = record(`${server.url}/sessions/noauth/events`);
  parts.recorders.push(sub);
  await sub.until((x) => x.indices().length === 5, 20_000);
  expect(await redisState(server.url)).toBe('refusing pollcast (NOAUTH)');
  expect(logged.lines().filter((l) => /redis refuses pollcast/.test(l.msg))).toHaveLength(1);
  // The password dropped at Redis: pollcast goes back to the shared log, and the stream goes on exactly.
  await redisCommandAuthed(redis.port, 'a-password', 'CONFIG', 'SET', 'requirepass', '');
  await eventually(async () => (await redisState(server.url)) === 'ok', 10_000, '/readyz to say ok');
  sim.appendEvents('noauth', 2);
  sim.finish('noauth', { closingEvents: true });
  await sub.ended(20_000);
  expect(sub.indices()).toEqual(range(sim.eventCount('noauth')));
}, 60_000);

it('a REDIS_URL whose password Redis refuses (WRONGPASS while connecting): said as a refusal, not as Redis away, sessions served from the upstream, and back to the log once it accepts', async () => {
  // A secrets audit (7 Dec 2026): /readyz said "unreachable" for minutes and the log "redis unreachable".
  const redis = (parts.redis = await startRedis());
  await redis.command('CONFIG', 'SET', 'requirepass', 'the-right-one');
  const sim = (parts.sim = await createSimulator({}));
  sim.createSession('wrongpass', { initialEvents: 5, imageBytes: 0 });
  const logged = captureLog('info');
  const url = new URL(redis.url);
  url.password = 'a-wrong-one';
  const env = { ...CLUSTER_ENV, PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, REDIS_URL: url.href };
  const server = await startPollcast(loadConfig(env), { log: logged.log, processMetrics: false });
  parts.servers.push(server);
  const sub = record(`${server.url}/sessions/wrongpass/events`);
  parts.recorders.push(sub);
  await sub.until((x) => x.indices().length === 5, 20_000);
  await eventually(async () => (await redisState(server.url)) === 'refusing pollcast (WRONGPASS)', 10_000, '/readyz to say WRONGPASS');
  expect(logged.lines().filter((l) => /redis refuses pollcast/.test(l.msg))).toHaveLength(1);
  expect(logged.lines().filter((l) => /redis unreachable \(never connected/.test(l.msg))).toEqual([]);
  expect(logged.text()).not.toContain('a-wrong-one');
  // Redis takes that password now: pollcast connects, goes back to the shared log, and the stream goes on exactly.
  await redisCommandAuthed(redis.port, 'the-right-one', 'CONFIG', 'SET', 'requirepass', 'a-wrong-one');
  await eventually(async () => (await redisState(server.url)) === 'ok', 15_000, '/readyz to say ok');
  sim.appendEvents('wrongpass', 2);
  sim.finish('wrongpass', { closingEvents: true });
  await sub.ended(20_000);
  expect(sub.indices()).toEqual(range(sim.eventCount('wrongpass')));
}, 60_000);

/** One command on a connection that authenticates first (the helper's redisCommand opens one per command). */
async function redisCommandAuthed(port: number, password: string, ...args: string[]): Promise<void> {
  const socket = connect({ host: '127.0.0.1', port });
  const encode = (parts: string[]) => `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join('')}`;
  socket.write(encode(['AUTH', password]) + encode(args));
  let text = '';
  socket.setEncoding('utf8');
  for await (const chunk of socket) {
    text += chunk as string;
    if ((text.match(/\r\n/g) ?? []).length >= 2) break;
  }
  socket.destroy();
  expect(text).toBe('+OK\r\n+OK\r\n');
}

it('Redis back empty: the leader that writes the new log from its copy of a caught-up session does not read its history again from 0', async () => {
  // A cluster re-audit (7 Dec 2026): its first answer (nothing new) was taken for a start past the session's events,
  // and the session was read again from 0: 52 calls for 5,000 events, at the moment Redis came back.
  const redis = (parts.redis = await startRedis());
  const sim = (parts.sim = await createSimulator({}));
  const start = serverStarter(parts);
  const [a, b] = [await start(), await start()];
  sim.createSession('back-empty', { initialEvents: 500, imageBytes: 0 });
  const subs = [record(`${a.url}/sessions/back-empty/events?from_index=497`), record(`${b.url}/sessions/back-empty/events?from_index=497`)];
  parts.recorders.push(...subs);
  for (const sub of subs) await sub.until((x) => x.indices().length === 3, 15_000);
  await redis.stop();
  await new Promise((r) => setTimeout(r, 1000));
  sim.clearRequests();
  await redis.start();
  // A leader again: its first call answers that nothing is new; then the session goes on.
  await eventually(() => sim.requests().some((r) => r.target.includes('/sessions/back-empty/changes')), 20_000, 'the new leader\'s first call');
  await new Promise((r) => setTimeout(r, 1500));
  sim.appendEvents('back-empty', 2);
  for (const sub of subs) await sub.until((x) => x.indices().includes(501), 20_000);
  for (const sub of subs) expect(sub.indices()).toEqual(range(5, 497));
  const froms = sim.requests().filter((r) => r.target.includes('/sessions/back-empty/changes')).map((r) => Number(new URL(r.target, 'http://x').searchParams.get('from_index')));
  expect(froms.filter((from) => from < 497)).toEqual([]);
}, 60_000);
