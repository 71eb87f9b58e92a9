/**
 * AUTH=upstream in cluster mode without UPSTREAM_API_KEY: two pollcast
 * instances on one real redis-server, each with keyed viewers of one session.
 * The cluster runs one loop (on the leader's accepted key), both instances'
 * viewers get the whole session and its end, and no key is ever written to
 * Redis.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { eventually, range, record } from '../helpers/harness.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { ONE_ADDRESS_ENV } from '../resilience/helpers.ts';
import { NOBODY_LEADS } from '../../src/transport/redis.ts';
import { JWT_SECRET, startKeylessDelayProxy, token } from './helpers.ts';

const KEY_1 = 'sk-cluster-one-Tb8Nq3Xr6Ly2';
const KEY_2 = 'sk-cluster-two-Fw5Mc9Kd1Hs4';

let redis: RedisServer | undefined;
let sim: Simulator | undefined;
const servers: PollcastServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await sim?.close();
  await redis?.stop();
});

/** An instance's environment on this test's simulator and Redis: AUTH=upstream, no UPSTREAM_API_KEY, short waits; `extra` on top. */
function clusterEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { ...ONE_ADDRESS_ENV, PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim!.url, AUTH: 'upstream', REDIS_URL: redis!.url, LOG_LEVEL: 'silent', UPSTREAM_WAIT_SECONDS: '2', UPSTREAM_TIMEOUT_MARGIN_SECONDS: '1', ...extra };
}

/** Starts one instance with `env` (closed after the test). */
async function startInstance(env: Record<string, string>): Promise<PollcastServer> {
  const server = await startPollcast(loadConfig(env), { log: silentLogger(), processMetrics: false });
  servers.push(server);
  return server;
}

/**
 * Combined mode (tokens, no UPSTREAM_API_KEY) on two instances: session `id` (3 events) read on `a` by a keyed
 * reader; `jwt` is a token for it, for a reader on `b`, whose readers then bring no key. `extra` env on top.
 */
async function keyedReaderThenToken(id: string, extra: Record<string, string>) {
  redis = await startRedis();
  sim = await createSimulator({ api: 'real', apiKeys: { [KEY_1]: 'org' } });
  sim.createSession(id, { organisation: 'org', initialEvents: 3 });
  const env = clusterEnv({ AUTH_JWT_SECRET: JWT_SECRET, REDIS_LEASE_SECONDS: '3', ...extra });
  const [a, b] = [await startInstance(env), await startInstance(env)];
  const keyed = record(`${a.url}/sessions/${id}/events?access_token=${KEY_1}`);
  await keyed.until((r) => r.indices().length === 3, 15_000);
  return { a, b, keyed, jwt: await token([id]) };
}

/** The upstream calls made with no key since the simulator's log was last cleared. */
function keylessCalls(): string[] {
  return sim!.requests().filter((r) => r.headers.authorization === undefined).map((r) => `${r.method} ${r.target}`);
}

/** Every value Redis holds, as text (keys, strings, hashes, streams, sets, lists). */
async function everythingIn(r: RedisServer): Promise<string> {
  const keys = (await r.command('KEYS', '*')) as string[];
  const parts: unknown[] = [keys];
  for (const key of keys) {
    const type = (await r.command('TYPE', key)) as string;
    if (type === 'string') parts.push(await r.command('GET', key));
    else if (type === 'hash') parts.push(await r.command('HGETALL', key));
    else if (type === 'stream') parts.push(await r.command('XRANGE', key, '-', '+'));
    else if (type === 'set') parts.push(await r.command('SMEMBERS', key));
    else if (type === 'zset') parts.push(await r.command('ZRANGE', key, '0', '-1'));
    else if (type === 'list') parts.push(await r.command('LRANGE', key, '0', '-1'));
    else parts.push(`unread type ${type}`);
  }
  return JSON.stringify(parts);
}

describe('AUTH=upstream in cluster mode, without UPSTREAM_API_KEY', () => {
  it('keyed viewers on two instances share one loop, get the whole session, and no key reaches Redis', async () => {
    redis = await startRedis();
    sim = await createSimulator({ api: 'real', apiKeys: { [KEY_1]: 'org', [KEY_2]: 'org' } });
    sim.createSession('cl', { organisation: 'org', emitEveryMs: 100, emitCount: 40 });
    const env = clusterEnv({ REDIS_LEASE_SECONDS: '6' });
    for (let i = 0; i < 2; i++) await startInstance(env);
    const viewers = [
      record(`${servers[0]!.url}/sessions/cl/events?access_token=${KEY_1}`),
      record(`${servers[1]!.url}/sessions/cl/events`, { headers: { authorization: `Bearer ${KEY_2}` } }),
      record(`${servers[1]!.url}/sessions/cl/events?access_token=${KEY_1}`),
    ];
    for (const v of viewers) {
      const end = await v.ended(60_000);
      expect(v.indices()).toEqual(range(40));
      expect(end.last_index).toBe(39);
    }
    expect(sim.stats('cl').maxInFlightChanges).toBe(1);
    const stored = await everythingIn(redis);
    // Redis did hold the session (the check reads something real), and none of the keys.
    expect(stored.includes(`\\"type\\":\\"${sim.events('cl')[0]!.type}`), 'the session is in Redis').toBe(true);
    for (const key of [KEY_1, KEY_2]) expect(stored.includes(key), 'a key is in Redis').toBe(false);
  }, 120_000);

  it('while Redis is away, an instance serving a session around it calls the upstream on its callers\' keys, never with none', async () => {
    redis = await startRedis();
    sim = await createSimulator({ api: 'real', apiKeys: { [KEY_1]: 'org' } });
    sim.createSession('away', { organisation: 'org', initialEvents: 3 });
    const env = clusterEnv();
    for (let i = 0; i < 2; i++) await startInstance(env);
    const first = record(`${servers[0]!.url}/sessions/away/events?access_token=${KEY_1}`);
    await first.until((x) => x.indices().length === 3, 15_000);
    redis.pause();
    try {
      // New to the second instance while Redis is silent: it serves the session itself, on this viewer's key.
      const late = record(`${servers[1]!.url}/sessions/away/events?access_token=${KEY_1}`);
      await late.until((x) => x.statuses().some((st) => typeof st.upstream_error === 'string' && /cluster store/.test(st.upstream_error)), 15_000);
      sim.appendEvents('away', 2);
      await late.until((x) => x.indices().length === 5, 10_000);
      expect(late.indices()).toEqual(range(5));
      expect(late.statuses().map((st) => st.upstream_error).filter((e) => typeof e === 'string' && /credential|401/.test(e))).toEqual([]);
      late.close();
    } finally {
      redis.resume();
    }
    first.close();
    const sessionCalls = sim.requests().filter((r) => r.target.includes('/sessions/away/'));
    expect(sessionCalls.length).toBeGreaterThan(0);
    expect(sessionCalls.filter((r) => r.headers.authorization === undefined).map((r) => `${r.method} ${r.target}`)).toEqual([]);
  }, 60_000);

  it('an instance whose readers brought no key (tokens, combined mode) does not take over a known session\'s lease: a keyed reader\'s instance does, and every reader gets the whole session', async () => {
    redis = await startRedis();
    sim = await createSimulator({ api: 'real', apiKeys: { [KEY_1]: 'org', [KEY_2]: 'org' } });
    sim.createSession('tk', { organisation: 'org', emitEveryMs: 150, emitCount: 60 });
    const env = clusterEnv({ AUTH_JWT_SECRET: JWT_SECRET, REDIS_LEASE_SECONDS: '3' });
    const start = () => startInstance(env);
    const [a, b] = [await start(), await start()];
    const keyed = record(`${a.url}/sessions/tk/events?access_token=${KEY_1}`);
    await keyed.until((r) => r.indices().length >= 3, 10_000);
    // A token reader on the second instance: it brings no upstream key.
    const tokenReader = record(`${b.url}/sessions/tk/events?access_token=${await token(['tk'])}`);
    await tokenReader.until((r) => r.indices().length >= 3, 10_000);
    // The keyed reader's instance goes: the token reader's instance must not lead on no key (401 on every call).
    keyed.close();
    await a.close();
    servers.splice(servers.indexOf(a), 1);
    // A token reader on a fresh instance too: its feed is new there (not yet caught up with the log when its
    // keeper first asks for the free lease).
    const d = await start();
    const fresh = record(`${d.url}/sessions/tk/events?access_token=${await token(['tk'])}`);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const c = await start();
    const late = record(`${c.url}/sessions/tk/events`, { headers: { authorization: `Bearer ${KEY_2}` } });
    for (const v of [tokenReader, fresh, late]) {
      await v.ended(30_000);
      expect(v.indices()).toEqual(range(60));
    }
  }, 60_000);

  it('a token holder on an instance with no key: /status answers from the shared log with no upstream call; once no instance leads, its stream says why; a keyed reader elsewhere brings the rest and the end', async () => {
    const { a, b, keyed, jwt } = await keyedReaderThenToken('nl', { IDLE_GRACE_SECONDS: '1' });
    sim!.clearRequests();
    // The drop-in /status with a token where no reader brought a key: the log's status, not a keyless call (502).
    for (let i = 0; i < 3; i++) {
      const st = await fetch(`${b.url}/api/v2/sessions/nl/status`, { headers: { authorization: `Bearer ${jwt}` } });
      expect(st.status).toBe(200);
      expect(((await st.json()) as { status: string }).status).toBe('running');
    }
    const reader = record(`${b.url}/sessions/nl/events?access_token=${jwt}`);
    await reader.until((r) => r.indices().length === 3, 10_000);
    // The keyed reader leaves; its instance lets the lease go after the idle grace: nobody leads.
    keyed.close();
    await reader.until((r) => r.statuses().some((st) => st.upstream_error === NOBODY_LEADS), 15_000);
    expect(keylessCalls()).toEqual([]);
    // A keyed reader comes back: the session goes on for everyone, the notice is taken down, and the end arrives.
    const back = record(`${a.url}/sessions/nl/events?access_token=${KEY_1}`);
    sim!.appendEvents('nl', 2);
    sim!.finish('nl', { status: 'completed', answer: 'done', closingEvents: false });
    const end = await reader.ended(20_000);
    expect(reader.indices()).toEqual(range(5));
    expect(end).toMatchObject({ status: 'completed', last_index: 4 });
    expect(end.upstream_error).toBeUndefined();
    back.close();
  }, 60_000);

  it('while Redis is away, an instance whose readers brought no key does not call the upstream with none: its readers are told why and go on exactly once Redis is back', async () => {
    const { b, keyed, jwt } = await keyedReaderThenToken('ka', { UPSTREAM_GIVE_UP_SECONDS: '4' });
    const reader = record(`${b.url}/sessions/ka/events?access_token=${jwt}`);
    await reader.until((r) => r.indices().length === 3, 10_000);
    sim!.clearRequests();
    redis!.pause();
    try {
      await reader.until((r) => r.statuses().some((st) => typeof st.upstream_error === 'string' && /unreachable, and no reader on this instance brought an upstream API key/.test(st.upstream_error)), 15_000);
      // Past the give-up time: no 401s heard, so no refusal's end either.
      await new Promise((r) => setTimeout(r, 5000));
      expect(reader.messages.filter((m) => m.type === 'end')).toEqual([]);
    } finally {
      redis!.resume();
    }
    expect(keylessCalls()).toEqual([]);
    // The keyed instance leads through the log again (it holds the lease) before the session moves on: what it read
    // around Redis reached only its own readers (docs/auth-upstream.md).
    await eventually(async () => {
      const leases = (await redis!.command('KEYS', '*lease*')) as string[];
      return leases.length === 1 && ((await redis!.command('PTTL', leases[0]!)) as number) > 0;
    }, 15_000, 'a leader again');
    await reader.until((r) => r.statuses().at(-1)?.upstream_error === undefined, 10_000);
    sim!.appendEvents('ka', 2);
    sim!.finish('ka', { status: 'completed', answer: 'done', closingEvents: false });
    const end = await reader.ended(30_000);
    expect(reader.indices()).toEqual(range(5));
    expect(end).toMatchObject({ status: 'completed', last_index: 4 });
    keyed.close();
  }, 60_000);

  it('a token reader on an instance with no key, of history older than the shared log, is refused 502 at once (as in one process), not held on a gap it can never fill', async () => {
    redis = await startRedis();
    sim = await createSimulator({ api: 'real', apiKeys: { [KEY_1]: 'org' } });
    sim.createSession('old', { organisation: 'org', initialEvents: 300, imageBytes: 0 });
    const env = clusterEnv({ AUTH_JWT_SECRET: JWT_SECRET, REDIS_LEASE_SECONDS: '3', REDIS_LOG_MAX_ENTRIES: '100' });
    for (let i = 0; i < 2; i++) await startInstance(env);
    const keyed = record(`${servers[0]!.url}/sessions/old/events?access_token=${KEY_1}`);
    await keyed.until((r) => r.indices().length === 300, 20_000);
    const started = performance.now();
    const res = await fetch(`${servers[1]!.url}/sessions/old/events?access_token=${await token(['old'])}`, { signal: AbortSignal.timeout(20_000) });
    expect(res.status).toBe(502);
    expect(await res.json()).toMatchObject({ code: 'upstream_auth' });
    // Well before the 15 s after which an instance opens with "no answer from the session leader yet".
    expect(performance.now() - started).toBeLessThan(10_000);
    keyed.close();
  }, 60_000);
});

describe('AUTH=upstream with tokens in cluster mode, without UPSTREAM_API_KEY: a session the cluster has never seen', () => {
  it('a token holder\'s /status does not refuse a keyed stream opening meanwhile: its keyless first contact (502) is its own, and the loop starts again on the key', async () => {
    redis = await startRedis();
    sim = await createSimulator({ api: 'real', apiKeys: { [KEY_1]: 'org' } });
    sim.createSession('never-seen', { organisation: 'org', initialEvents: 2, imageBytes: 0 });
    // Calls with no key are held a second on their way upstream: the keyed opening lands inside that window.
    const proxy = await startKeylessDelayProxy(sim.origin, 1000);
    try {
      const a = await startInstance(clusterEnv({ UPSTREAM_URL: `${proxy.url}/api/v2`, AUTH_JWT_SECRET: JWT_SECRET }));
      const status = fetch(`${a.url}/api/v2/sessions/never-seen/status`, { headers: { authorization: `Bearer ${await token(['never-seen'])}` } });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const keyed = record(`${a.url}/sessions/never-seen/events?access_token=${KEY_1}`);
      try {
        await keyed.until((r) => r.indices().length === 2, 10_000);
        expect(keyed.indices()).toEqual([0, 1]);
      } finally {
        keyed.close();
      }
      expect((await status).status).toBe(502);
    } finally {
      await Promise.all(servers.splice(0).map((s) => s.close()));
      await proxy.close();
    }
  });
});

describe('AUTH=upstream in cluster mode, without UPSTREAM_API_KEY: a leader whose keys the upstream stops accepting', () => {
  const giveUpEnv = async () => {
    redis = await startRedis();
    sim = await createSimulator({ api: 'real', apiKeys: { [KEY_1]: 'org', [KEY_2]: 'org' } });
    return clusterEnv({ REDIS_LEASE_SECONDS: '3', UPSTREAM_GIVE_UP_SECONDS: '3' });
  };
  /** Two instances reading session `id`: the first leads on its reader's KEY_1, the second's reader brought KEY_2. */
  const twoKeyedReaders = async (id: string, emit: { emitEveryMs: number; emitCount: number }, secondAt: number) => {
    const env = await giveUpEnv();
    sim!.createSession(id, { organisation: 'org', ...emit });
    for (let i = 0; i < 2; i++) await startInstance(env);
    const first = record(`${servers[0]!.url}/sessions/${id}/events?access_token=${KEY_1}`);
    await first.until((r) => r.indices().length >= 3, 10_000);
    const second = record(`${servers[1]!.url}/sessions/${id}/events`, { headers: { authorization: `Bearer ${KEY_2}` } });
    await second.until((r) => r.indices().length >= secondAt, 10_000);
    return [first, second] as const;
  };

  it('lets the lease go to an instance whose reader\'s key still works, instead of ending the session for every instance', async () => {
    const [leaderReader, other] = await twoKeyedReaders('rv', { emitEveryMs: 150, emitCount: 80 }, 5);
    sim!.revokeKey(KEY_1);
    // Past the give-up time (3 s) many times over: the leader's refusals must not end the other instance's stream.
    const end = await other.ended(60_000);
    expect(other.indices()).toEqual(range(80));
    expect(end.last_index).toBe(79);
    expect(end.upstream_error ?? null).toBeNull();
    leaderReader.close();
  }, 90_000);

  it('does not take the lease back, call after call, for a revoked key that a reader\'s cached verdict keeps bringing in', async () => {
    const env = await giveUpEnv();
    sim!.createSession('churn', { organisation: 'org', emitEveryMs: 1000, emitCount: 400 });
    const a = await startInstance(env);
    const reader = record(`${a.url}/sessions/churn/events?access_token=${KEY_1}`);
    await reader.until((r) => r.indices().length >= 2, 10_000);
    sim!.revokeKey(KEY_1);
    sim!.clearRequests();
    // A drop-in status poller with the revoked key: pollcast's verdict on it is cached (accepted), so each call
    // hands it to the session's loop again.
    const started = performance.now();
    while (performance.now() - started < 5000) {
      const res = await fetch(`${a.url}/sessions/churn/status`, { headers: { authorization: `Bearer ${KEY_1}` } });
      await res.arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const upstreamCalls = sim!.requests().filter((r) => r.target.includes('/sessions/churn/')).length;
    // One instance retaking the lease at once after each refused term made 409 calls here; the loop's backoff allows a handful.
    expect(upstreamCalls).toBeGreaterThan(0);
    expect(upstreamCalls).toBeLessThan(30);
    reader.close();
  }, 60_000);

  it('a session never described to the cluster (its first status failed), then refused, still ends, and a later good key reads it', async () => {
    const env = await giveUpEnv();
    sim!.createSession('blip', { organisation: 'org', emitEveryMs: 300, emitCount: 400 });
    // The reader's key is judged (passes), the loop's first /status fails (503), its next is refused (401).
    sim!.faults.script([{ kind: 'patch', body: {} }, { kind: 'http', status: 503 }, { kind: 'http', status: 401 }], { session: 'blip', endpoint: 'status' });
    const a = await startInstance(env);
    const first = record(`${a.url}/sessions/blip/events?access_token=${KEY_1}`);
    const end = await first.ended(30_000);
    expect(String(end.upstream_error)).toMatch(/401/);
    const late = record(`${a.url}/sessions/blip/events?access_token=${KEY_1}`);
    await late.until((r) => r.indices().length >= 5, 20_000);
    late.close();
  }, 90_000);

  it('ends every instance\'s readers with the refusal once no instance holds a key the upstream accepts (none waits for good)', async () => {
    const [first, second] = await twoKeyedReaders('gone', { emitEveryMs: 200, emitCount: 400 }, 3);
    sim!.revokeKey(KEY_1);
    sim!.revokeKey(KEY_2);
    for (const v of [first, second]) {
      const end = await v.ended(45_000);
      expect(String(end.upstream_error)).toMatch(/401/);
    }
  }, 90_000);
});
